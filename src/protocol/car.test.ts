import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fromUint8Array } from '@atcute/car';
import { TINY_BLOCK_SECTION_BYTES, tinyBlocksCar } from '../../sim/hostile-repo.ts';
import { concatBytes, utf8Encode } from './bytes.ts';
import {
  BlockMap,
  CarError,
  DEFAULT_MAX_CAR_BLOCKS,
  DEFAULT_MAX_CAR_BYTES,
  indexCar,
  readCar,
  writeCar,
} from './car.ts';
import { encodeCbor } from './cbor.ts';
import { type Cid, CidLinkWrapper, cidEquals, cidForCbor, cidForRaw, cidMatchesBlock } from './cid.ts';

function sampleBlocks(n: number): Array<[Cid, Uint8Array]> {
  const out: Array<[Cid, Uint8Array]> = [];
  for (let i = 0; i < n; i++) {
    const data = encodeCbor({ $type: 'app.bsky.feed.post', text: `post ${i}`, n: i });
    out.push([cidForCbor(data), data]);
  }
  const raw = utf8Encode('raw blob bytes');
  out.push([cidForRaw(raw), raw]);
  return out;
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof CarError, `expected CarError, got ${e}`);
    return e.reason;
  }
  assert.fail('did not throw');
}

const header = (v: unknown): Uint8Array => {
  const h = encodeCbor(v);
  return concatBytes([new Uint8Array([h.length]), h]);
};

describe('readCar / writeCar', () => {
  const blocks = sampleBlocks(5);
  const root = blocks[0][0];
  const car = writeCar([root], blocks);

  it('round-trips roots and blocks', () => {
    const { roots, blocks: map } = readCar(car);
    assert.equal(roots.length, 1);
    assert.ok(cidEquals(roots[0], root));
    assert.equal(map.size, blocks.length);
    for (const [cid, data] of blocks) assert.deepEqual(map.get(cid), data);
    assert.deepEqual(writeCar(roots, map), car);
  });

  it('agrees with @atcute/car', () => {
    const theirs = fromUint8Array(car);
    const ours = readCar(car);
    let n = 0;
    for (const entry of theirs) {
      assert.deepEqual(ours.blocks.get(new CidLinkWrapper(entry.cid.bytes)), entry.bytes);
      n++;
    }
    assert.equal(n, ours.blocks.size);
  });

  it('accepts a CAR with no roots and no blocks', () => {
    const { roots, blocks: map } = readCar(writeCar([], []));
    assert.equal(roots.length, 0);
    assert.equal(map.size, 0);
  });

  it('rejects every truncation', () => {
    for (let i = 0; i < car.length; i++) {
      const cut = car.subarray(0, i);
      let threw = false;
      try {
        readCar(cut);
      } catch (e) {
        assert.ok(e instanceof CarError);
        threw = true;
      }
      // Cutting exactly at a section boundary leaves a valid, shorter CAR.
      if (!threw) assert.ok(readCar(cut).blocks.size < blocks.length);
    }
    assert.equal(
      reasonOf(() => readCar(car.subarray(0, car.length - 1))),
      'truncated',
    );
    assert.equal(
      reasonOf(() => readCar(new Uint8Array(0))),
      'truncated',
    );
  });

  it('detects a corrupted block', () => {
    const bad = car.slice();
    bad[bad.length - 1] ^= 1;
    assert.equal(
      reasonOf(() => readCar(bad)),
      'hash-mismatch',
    );
  });

  it('rejects CIDs outside the atproto profile', () => {
    const data = encodeCbor({ a: 1 });
    const cid = cidForCbor(data).bytes.slice();
    for (const [i, v] of [
      [0, 0x00],
      [1, 0x70],
      [2, 0x13],
      [3, 0x10],
    ] as const) {
      const b = cid.slice();
      b[i] = v;
      const section = concatBytes([new Uint8Array([b.length + data.length]), b, data]);
      const file = concatBytes([header({ version: 1, roots: [] }), section]);
      assert.equal(
        reasonOf(() => readCar(file)),
        'bad-cid',
      );
    }
    const short = concatBytes([header({ version: 1, roots: [] }), new Uint8Array([3, 1, 2, 3])]);
    assert.equal(
      reasonOf(() => readCar(short)),
      'bad-cid',
    );
  });

  it('rejects malformed varints', () => {
    assert.equal(
      reasonOf(() => readCar(new Uint8Array([0x80, 0x00]))),
      'bad-varint',
    );
    assert.equal(
      reasonOf(() => readCar(new Uint8Array(9).fill(0xff))),
      'bad-varint',
    );
    assert.equal(
      reasonOf(() => readCar(new Uint8Array([0x80]))),
      'truncated',
    );
    const tail = concatBytes([header({ version: 1, roots: [] }), new Uint8Array([0xa5, 0x00])]);
    assert.equal(
      reasonOf(() => readCar(tail)),
      'bad-varint',
    );
  });

  it('rejects bad headers', () => {
    const cases: unknown[] = [
      { version: 2, roots: [] },
      { version: 1 },
      { version: 1, roots: ['x'] },
      { version: 1, roots: [], extra: true },
      [1, []],
      'car',
    ];
    for (const h of cases)
      assert.equal(
        reasonOf(() => readCar(header(h))),
        'bad-header',
        JSON.stringify(h),
      );
    assert.equal(
      reasonOf(() => readCar(new Uint8Array([0]))),
      'bad-header',
    );
    assert.equal(
      reasonOf(() => readCar(new Uint8Array([2, 0x18, 0x05]))),
      'bad-header',
    );
  });

  it('fuzz: corrupted input yields a CarError or a hash-checked result, never another error', () => {
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let i = 0; i < 2000; i++) {
      const bad = car.slice();
      const flips = 1 + Math.floor(rand() * 3);
      for (let j = 0; j < flips; j++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
      try {
        const out = readCar(bad);
        for (const [cid, data] of out.blocks) assert.ok(cidMatchesBlock(cid, data));
      } catch (e) {
        assert.ok(e instanceof CarError, String(e));
      }
    }
  });

  it('enforces maxBytes and maxBlocks', () => {
    assert.equal(
      reasonOf(() => readCar(car, { maxBytes: car.length - 1 })),
      'too-large',
    );
    readCar(car, { maxBytes: car.length });
    assert.equal(
      reasonOf(() => readCar(car, { maxBlocks: blocks.length - 1 })),
      'too-many-blocks',
    );
    readCar(car, { maxBlocks: blocks.length });
    assert.equal(
      reasonOf(() => readCar(new Uint8Array(2_000_001))),
      'too-large',
    );
  });

  it('bounds the block count by default, also for a caller that raises maxBytes', () => {
    // 60,000 tiny blocks: 2.4 MB, more blocks than 2,000,000 bytes can hold
    const tiny = tinyBlocksCar(60_000);
    assert.equal(
      reasonOf(() => readCar(tiny, { maxBytes: 10_000_000 })),
      'too-many-blocks',
    );
    assert.equal(readCar(tiny, { maxBytes: 10_000_000, maxBlocks: 60_000 }).blocks.size, 60_000);
    // frames keep their limits: a 2,000,000-byte CAR of the smallest blocks still loads by default
    const most = tinyBlocksCar(Math.floor((2_000_000 - 20) / TINY_BLOCK_SECTION_BYTES));
    assert.ok(most.length <= 2_000_000);
    assert.ok(readCar(most).blocks.size > 48_000);
  });
});

describe('indexCar', () => {
  const limits = { maxBytes: DEFAULT_MAX_CAR_BYTES, maxBlocks: DEFAULT_MAX_CAR_BLOCKS };
  const outcome = (fn: () => { roots: Cid[]; get(c: Cid): Uint8Array | undefined }, cids: Cid[]) => {
    try {
      const r = fn();
      return { roots: r.roots.map((c) => c.$link), blocks: cids.map((c) => r.get(c)) };
    } catch (e) {
      assert.ok(e instanceof CarError, `expected CarError, got ${e}`);
      return { reason: e.reason };
    }
  };

  it('agrees with readCar on valid and corrupted input (accepts, reason, every block)', () => {
    const blocks = sampleBlocks(20);
    const car = writeCar([blocks[0][0]], blocks);
    const cids = blocks.map(([c]) => c);
    assert.deepEqual(
      outcome(() => indexCar(car, limits), cids),
      outcome(() => {
        const r = readCar(car);
        return { roots: r.roots, get: (c: Cid) => r.blocks.get(c) };
      }, cids),
    );
    let seed = 11;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x80000000;
    };
    for (let i = 0; i < 2000; i++) {
      const bad = rand() < 0.2 ? car.subarray(0, Math.floor(rand() * car.length)) : car.slice();
      if (bad.length === car.length) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
      assert.deepEqual(
        outcome(() => indexCar(bad, limits), cids),
        outcome(() => {
          const r = readCar(bad);
          return { roots: r.roots, get: (c: Cid) => r.blocks.get(c) };
        }, cids),
        `mutation ${i}`,
      );
    }
  });

  it('finds every one of many blocks (the table grows), absent ones are absent, repeats count once', () => {
    const n = 50_000;
    const car = tinyBlocksCar(n);
    const index = indexCar(car, { maxBytes: car.length, maxBlocks: n });
    assert.equal(index.size, n);
    const read = readCar(car, { maxBytes: car.length, maxBlocks: n });
    for (const [cid, data] of read.blocks) assert.deepEqual(index.get(cid), data);
    const [[other]] = sampleBlocks(1);
    assert.equal(index.get(other), undefined);
    assert.equal(index.has(other), false);
    const twice = concatBytes([car, car.subarray(writeCar([], []).length)]);
    assert.equal(indexCar(twice, { maxBytes: twice.length, maxBlocks: 2 * n }).size, n);
  });

  it('enforces both limits while reading', () => {
    const car = tinyBlocksCar(1000);
    assert.equal(
      reasonOf(() => indexCar(car, { maxBytes: car.length - 1, maxBlocks: 1000 })),
      'too-large',
    );
    assert.equal(
      reasonOf(() => indexCar(car, { maxBytes: car.length, maxBlocks: 999 })),
      'too-many-blocks',
    );
    assert.equal(indexCar(car, { maxBytes: car.length, maxBlocks: 1000 }).size, 1000);
  });
});

describe('BlockMap', () => {
  it('get/has/set/delete/size/byteLength/iteration', () => {
    const [[c1, d1], [c2, d2]] = sampleBlocks(2);
    const m = new BlockMap();
    m.set(c1, d1).set(c2, d2);
    assert.equal(m.size, 2);
    assert.equal(m.byteLength, d1.length + d2.length);
    assert.ok(m.has(c1));
    // Lookups are by value, not object identity.
    assert.deepEqual(m.get(cidForCbor(d1)), d1);
    m.set(c1, d1);
    assert.equal(m.size, 2);
    assert.equal(m.byteLength, d1.length + d2.length);
    assert.deepEqual(
      [...m].map(([c]) => c.$link),
      [c1.$link, c2.$link],
    );
    assert.deepEqual(
      [...m.entries()].map(([, d]) => d),
      [d1, d2],
    );
    assert.ok(m.delete(c1));
    assert.ok(!m.delete(c1));
    assert.equal(m.get(c1), undefined);
    assert.equal(m.size, 1);
    assert.equal(m.byteLength, d2.length);
  });
  it('keeps CIDs apart whose key bits collide, and one digest under two codecs', () => {
    // Same codec and digest bytes 4..7 (the map's key), different digests.
    const cid = (codec: number, tail: number) => {
      const b = new Uint8Array(36);
      b.set([0x01, codec, 0x12, 0x20, 0xaa, 0xbb, 0xcc, 0x1d]);
      b[35] = tail;
      return new CidLinkWrapper(b);
    };
    const a = cid(0x71, 1);
    const b = cid(0x71, 2);
    const raw = cid(0x55, 1);
    const m = new BlockMap();
    m.set(a, utf8Encode('a')).set(b, utf8Encode('bb')).set(raw, utf8Encode('ccc'));
    assert.equal(m.size, 3);
    assert.equal(m.byteLength, 6);
    assert.deepEqual(m.get(cid(0x71, 2)), utf8Encode('bb'));
    assert.deepEqual(m.get(cid(0x71, 1)), utf8Encode('a'));
    assert.deepEqual(m.get(cid(0x55, 1)), utf8Encode('ccc'));
    assert.equal(m.get(cid(0x71, 3)), undefined);
    m.set(cid(0x71, 2), utf8Encode('dddd')); // replaces, in the overflow too
    assert.equal(m.size, 3);
    assert.equal(m.byteLength, 8);
    assert.deepEqual(
      [...m].map(([c]) => c.bytes[35] + c.bytes[1]),
      [1 + 0x71, 1 + 0x55, 2 + 0x71],
    );
    assert.ok(m.delete(cid(0x71, 1)));
    assert.ok(m.has(cid(0x71, 2)), 'the overflowed CID survives the other one’s delete');
    // set again once its key came free: held once, not in both places
    m.set(cid(0x71, 2), utf8Encode('ee'));
    assert.equal(m.size, 2);
    assert.equal(m.byteLength, 5);
    assert.deepEqual(m.get(cid(0x71, 2)), utf8Encode('ee'));
    assert.ok(m.delete(cid(0x71, 2)));
    assert.ok(!m.delete(cid(0x71, 2)));
    assert.equal(m.size, 1);
    assert.equal(m.byteLength, 3);
  });
});
