// The bounded CBOR scanner: it agrees with the strict decoder on what a
// value's extent is (differential, random values), refuses every head
// DAG-CBOR forbids, enforces depth, item and string limits, and stops
// reading early on hostile input (work is asserted as heads read, not time).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../sim/prng.ts';
import { concatBytes } from './bytes.ts';
import { decodeCborFirst, encodeCbor } from './cbor.ts';
import { CborScanError, type CborScanErrorReason, CborScanner, type ScanLimits } from './cbor-scan.ts';
import { cidForCbor } from './cid.ts';

const OPEN: ScanLimits = { maxDepth: 64, maxItems: 1_000_000, maxStringBytes: 10_000_000 };

function scanError(bytes: Uint8Array, limits: ScanLimits = OPEN): CborScanError {
  try {
    new CborScanner(bytes, limits).skip();
  } catch (e) {
    assert.ok(e instanceof CborScanError, `expected CborScanError, got ${e}`);
    return e;
  }
  assert.fail(`accepted ${Buffer.from(bytes).toString('hex').slice(0, 40)}`);
}

function reason(bytes: Uint8Array, limits: ScanLimits = OPEN): CborScanErrorReason {
  return scanError(bytes, limits).reason;
}

/** A random DAG-CBOR value, with its nesting depth (containers and CID tags) and head count. */
function randomValue(rand: () => number, depth: number): { value: unknown; depth: number; items: number } {
  const pick = Math.floor(rand() * (depth > 5 ? 7 : 10));
  switch (pick) {
    case 0:
      return { value: Math.floor(rand() * 2 ** (rand() * 53)), depth: 0, items: 1 };
    case 1:
      return { value: -Math.floor(rand() * 2 ** (rand() * 52)) - 1, depth: 0, items: 1 };
    case 2:
      return {
        value: 'é€😀abc'.slice(0, Math.floor(rand() * 8)).repeat(Math.floor(rand() * 40)),
        depth: 0,
        items: 1,
      };
    case 3:
      return { value: new Uint8Array(Math.floor(rand() * 300)), depth: 0, items: 1 };
    case 4:
      return { value: [true, false, null][Math.floor(rand() * 3)], depth: 0, items: 1 };
    case 5:
      return { value: rand() * 1e6 + 0.5, depth: 0, items: 1 };
    case 6:
      return { value: cidForCbor(Uint8Array.of(Math.floor(rand() * 256))), depth: 1, items: 2 };
    case 7:
    case 8: {
      const n = Math.floor(rand() * 5);
      const arr: unknown[] = [];
      let d = 0;
      let items = 1;
      for (let i = 0; i < n; i++) {
        const v = randomValue(rand, depth + 1);
        arr.push(v.value);
        d = Math.max(d, v.depth);
        items += v.items;
      }
      return { value: arr, depth: d + 1, items };
    }
    default: {
      const n = Math.floor(rand() * 5);
      const obj: Record<string, unknown> = {};
      let d = 0;
      let items = 1;
      for (let i = 0; i < n; i++) {
        const v = randomValue(rand, depth + 1);
        const key = `k${Math.floor(rand() * 1000)}`;
        if (key in obj) continue;
        obj[key] = v.value;
        d = Math.max(d, v.depth);
        items += v.items + 1;
      }
      return { value: obj, depth: d + 1, items };
    }
  }
}

describe('CborScanner.skip', () => {
  it('finds the same end as the strict decoder, counts every head, on random values', () => {
    const rand = seededRandom(12);
    for (let i = 0; i < 2000; i++) {
      const { value, depth, items } = randomValue(rand, 0);
      const bytes = concatBytes([encodeCbor(value), Uint8Array.of(0x01, 0x02)]);
      const [, rest] = decodeCborFirst(bytes);
      const s = new CborScanner(bytes, { ...OPEN, maxDepth: depth });
      assert.equal(s.skip(), bytes.length - rest.length, `value ${i}`);
      assert.equal(s.items, items, `items of value ${i}`);
      if (depth > 0)
        assert.equal(reason(bytes, { ...OPEN, maxDepth: depth - 1 }), 'too-deep', `depth of value ${i}`);
    }
  });

  it('refuses what DAG-CBOR forbids', () => {
    const cases: [string, number[]][] = [
      ['indefinite byte string', [0x5f, 0x41, 0x00, 0xff]],
      ['indefinite text string', [0x7f, 0xff]],
      ['indefinite array', [0x9f, 0xff]],
      ['indefinite map', [0xbf, 0xff]],
      ['reserved info 28', [0x1c]],
      ['non-minimal 1-byte', [0x18, 0x05]],
      ['non-minimal 2-byte', [0x19, 0x00, 0xff]],
      ['non-minimal 4-byte', [0x1a, 0x00, 0x00, 0xff, 0xff]],
      ['non-minimal 8-byte', [0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]],
      ['beyond the safe range', [0x1b, 0x00, 0x20, 0, 0, 0, 0, 0, 0]],
      ['tag 1', [0xc1, 0x00]],
      ['tag 42 around text', [0xd8, 0x2a, 0x61, 0x61]],
      ['undefined', [0xf7]],
      ['simple value 16', [0xf0]],
      ['simple value in a byte', [0xf8, 0x20]],
      ['float16', [0xf9, 0x3c, 0x00]],
      ['float32', [0xfa, 0x3f, 0x80, 0x00, 0x00]],
      ['NaN', [0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]],
      ['infinity', [0xfb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0]],
      ['negative infinity', [0xfb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0]],
      ['integer map key', [0xa1, 0x01, 0x02]],
      ['nested integer map key', [0x81, 0xa1, 0x41, 0x00, 0x02]],
    ];
    for (const [name, bytes] of cases) assert.equal(reason(Uint8Array.from(bytes)), 'not-dag-cbor', name);
    // a finite float64 is fine
    assert.equal(new CborScanner(Uint8Array.of(0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0), OPEN).skip(), 9);
  });

  it('refuses every truncation of a value', () => {
    const value = encodeCbor({ a: [1, 'two', new Uint8Array(40)], b: { c: cidForCbor(Uint8Array.of(1)) } });
    for (let cut = 0; cut < value.length; cut++) {
      assert.equal(reason(value.subarray(0, cut)), 'truncated', `cut at ${cut}`);
    }
  });

  it('stops at the depth limit after reading only that many heads', () => {
    const deep = new Uint8Array(5_000_001).fill(0x81);
    const e = scanError(deep, { ...OPEN, maxDepth: 8 });
    assert.equal(e.reason, 'too-deep');
    assert.ok(e.offset <= 9, `read ${e.offset} bytes`);
    const maps = concatBytes(Array.from({ length: 20 }, () => Uint8Array.of(0xa1, 0x61, 0x6b)));
    assert.equal(reason(maps, { ...OPEN, maxDepth: 19 }), 'too-deep');
    const exactly = concatBytes([new Uint8Array(8).fill(0x81), Uint8Array.of(0x80)]);
    assert.equal(reason(exactly, { ...OPEN, maxDepth: 8 }), 'too-deep', 'an empty container counts');
    assert.equal(new CborScanner(exactly, { ...OPEN, maxDepth: 9 }).skip(), exactly.length);
  });

  it('stops at the item limit, whatever the announced counts', () => {
    const flat = concatBytes([Uint8Array.of(0x9a, 0x00, 0x4c, 0x4b, 0x40), new Uint8Array(5_000_000)]);
    const s = new CborScanner(flat, { ...OPEN, maxItems: 1000 });
    assert.throws(
      () => s.skip(),
      (e: unknown) => e instanceof CborScanError && e.reason === 'too-many-items',
    );
    assert.equal(s.items, 1001);
    // an array announcing 2^32 - 1 items over a few bytes ends at the end of the bytes
    assert.equal(reason(Uint8Array.of(0x9a, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00)), 'truncated');
  });

  it('refuses strings over the string limit before looking at their bytes', () => {
    assert.equal(
      reason(Uint8Array.of(0x5a, 0x00, 0x10, 0x00, 0x00), { ...OPEN, maxStringBytes: 100 }),
      'too-long',
    );
    assert.equal(reason(encodeCbor('x'.repeat(101)), { ...OPEN, maxStringBytes: 100 }), 'too-long');
  });
});

describe('CborScanner readers', () => {
  const body = encodeCbor({
    seq: 42,
    repo: 'did:plc:abc',
    blocks: new Uint8Array([1, 2, 3]),
    ops: [{ action: 'create' }],
    message: 'héllo wörld',
  });

  it('visits map keys with the scanner at each value, skipping what the visitor leaves', () => {
    const s = new CborScanner(body, OPEN);
    const seen: string[] = [];
    let seq: number | undefined;
    let repo: string | undefined;
    let blocks: Uint8Array | undefined;
    const n = s.forEachMapEntry((v) => {
      seen.push(v.keyText());
      if (v.keyIs('seq')) seq = v.readUint();
      else if (v.keyIs('repo')) repo = v.readText(64);
      else if (v.keyIs('blocks')) blocks = v.readBytes(16);
    });
    assert.equal(n, 5);
    assert.deepEqual(seen, ['ops', 'seq', 'repo', 'blocks', 'message']);
    assert.equal(seq, 42);
    assert.equal(repo, 'did:plc:abc');
    assert.deepEqual(blocks, Uint8Array.of(1, 2, 3));
    assert.ok(s.atEnd());
    assert.equal(s.depth, 0);
  });

  it('stops a visit early when the visitor returns false', () => {
    const s = new CborScanner(body, OPEN);
    const seen: string[] = [];
    s.forEachMapEntry((v) => {
      seen.push(v.keyText());
      return !v.keyIs('seq');
    });
    assert.deepEqual(seen, ['ops', 'seq']);
  });

  it('applies the depth limit inside a visit', () => {
    const nestedValue = encodeCbor({ a: [[[1]]] });
    assert.throws(
      () => new CborScanner(nestedValue, { ...OPEN, maxDepth: 3 }).forEachMapEntry(() => {}),
      (e: unknown) => e instanceof CborScanError && e.reason === 'too-deep',
    );
    new CborScanner(nestedValue, { ...OPEN, maxDepth: 4 }).forEachMapEntry(() => {});
  });

  it('reads text with a cap, or a prefix of it cut at a character boundary', () => {
    const text = encodeCbor('ééééé'); // 10 bytes
    assert.equal(new CborScanner(text, OPEN).readText(10), 'ééééé');
    assert.throws(() => new CborScanner(text, OPEN).readText(9), /too-long/);
    assert.deepEqual(new CborScanner(text, OPEN).readTextPrefix(5), { text: 'éé', truncated: true });
    assert.deepEqual(new CborScanner(text, OPEN).readTextPrefix(64), { text: 'ééééé', truncated: false });
    const s = new CborScanner(concatBytes([text, encodeCbor(7)]), OPEN);
    s.readTextPrefix(3);
    assert.equal(s.readUint(), 7, 'the whole string was passed');
    assert.throws(() => new CborScanner(Uint8Array.of(0x62, 0xc3, 0x28), OPEN).readText(), /bad-utf8/);
    assert.throws(() => new CborScanner(encodeCbor(5), OPEN).readText(), /unexpected-type/);
    assert.throws(() => new CborScanner(encodeCbor('x'), OPEN).readUint(), /unexpected-type/);
    assert.throws(() => new CborScanner(encodeCbor([]), OPEN).readMapHead(), /unexpected-type/);
    assert.equal(new CborScanner(encodeCbor([1, 2]), OPEN).readArrayHead(), 2);
  });
});

describe('CborScanner.findMapKey and fixed-shape readers', () => {
  const body = encodeCbor({ ops: [{ a: [1, 2] }], rev: 'r', seq: 9, time: 't', blocks: new Uint8Array(3) });

  it('walks to a key and leaves the scanner at its value, inside the map', () => {
    const s = new CborScanner(body, OPEN);
    assert.ok(s.findMapKey('seq'));
    assert.equal(s.readUint(), 9);
    assert.equal(s.depth, 1);
    assert.ok(new CborScanner(body, OPEN).findMapKey('blocks'));
    assert.equal(new CborScanner(body, OPEN).findMapKey('nope'), false);
  });

  it('with canonical order, stops at the first key sorting after the name', () => {
    // keys in order: ops rev seq time blocks; "sez" sorts after "seq", before "time"
    const s = new CborScanner(body, OPEN);
    assert.equal(s.findMapKey('sez', true), false);
    assert.ok(s.pos < body.length, 'stopped before the end');
    // map, ops + its value (6 heads), rev + value, seq + value, then the key time
    assert.equal(s.items, 1 + 1 + 6 + 2 + 2 + 1, 'read heads up to the key "time" only');
    const found = new CborScanner(body, OPEN);
    assert.ok(found.findMapKey('seq', true));
    assert.equal(found.readUint(), 9);
  });

  it('counts the map in the depth limit and refuses non-text keys', () => {
    const nested = encodeCbor({ a: [[1]], z: 1 });
    assert.throws(
      () => new CborScanner(nested, { ...OPEN, maxDepth: 2 }).findMapKey('z'),
      (e: unknown) => e instanceof CborScanError && e.reason === 'too-deep',
    );
    assert.ok(new CborScanner(nested, { ...OPEN, maxDepth: 3 }).findMapKey('z'));
    // {1: 2}: a map with an integer key
    assert.throws(
      () => new CborScanner(Uint8Array.of(0xa1, 0x01, 0x02), OPEN).findMapKey('z'),
      /not-dag-cbor/,
    );
  });

  it('reads fixed keys, byte strings, CID links and nulls', () => {
    const cid = cidForCbor(new Uint8Array([1]));
    const bytes = concatBytes([
      encodeCbor('k'),
      encodeCbor(new Uint8Array([7, 8])),
      encodeCbor(cid),
      encodeCbor(null),
      encodeCbor(1),
    ]);
    const s = new CborScanner(bytes, OPEN);
    assert.equal(s.readTextIs('k'), true);
    const start = s.readBytesStart(2);
    assert.deepEqual(bytes.subarray(start, s.pos), Uint8Array.of(7, 8));
    const cidStart = s.readCidLinkStart();
    assert.deepEqual(bytes.subarray(cidStart, s.pos), cid.bytes);
    assert.equal(s.readNull(), true);
    assert.equal(s.readNull(), false, 'not null: nothing read');
    assert.equal(s.readUint(), 1);
    assert.equal(new CborScanner(encodeCbor('kk'), OPEN).readTextIs('k'), false);
    assert.throws(() => new CborScanner(encodeCbor(new Uint8Array(3)), OPEN).readBytesStart(2), /too-long/);
    // tag 42 around bytes lacking the 0x00 prefix, and around a text string
    assert.throws(
      () => new CborScanner(Uint8Array.of(0xd8, 42, 0x41, 0x01), OPEN).readCidLinkStart(),
      /not-dag-cbor/,
    );
    assert.throws(
      () => new CborScanner(Uint8Array.of(0xd8, 42, 0x61, 0x61), OPEN).readCidLinkStart(),
      /not-dag-cbor/,
    );
    assert.throws(() => new CborScanner(encodeCbor(1), OPEN).readCidLinkStart(), /unexpected-type/);
    assert.throws(() => new CborScanner(new Uint8Array(0), OPEN).readNull(), /truncated/);
  });

  it('counts items and checks lengths on the in-place paths too (short keys, 37-byte CID links)', () => {
    const link = encodeCbor(cidForCbor(new Uint8Array([1]))); // d8 2a 58 25 00 …
    assert.equal(link[2], 0x58);
    const one = { ...OPEN, maxItems: 1 };
    assert.throws(() => new CborScanner(link, one).readCidLinkStart(), /too-many-items/);
    assert.throws(
      () => new CborScanner(encodeCbor('k'), { ...OPEN, maxItems: 0 }).readTextIs('k'),
      /too-many-items/,
    );
    assert.throws(
      () => new CborScanner(link, { ...OPEN, maxStringBytes: 36 }).readCidLinkStart(),
      /too-long/,
    );
    assert.throws(
      () => new CborScanner(link.subarray(0, link.length - 1), OPEN).readCidLinkStart(),
      /truncated/,
    );
    assert.throws(() => new CborScanner(encodeCbor('k').subarray(0, 1), OPEN).readTextIs('k'), /truncated/);
    const s = new CborScanner(concatBytes([link, encodeCbor('abc')]), OPEN);
    s.readCidLinkStart();
    assert.equal(s.items, 2);
    assert.equal(s.readTextIs('abd'), false);
    assert.equal(s.items, 3);
    assert.ok(s.atEnd());
  });
});

describe('CborScanner against mutated input', () => {
  it('throws nothing but CborScanError, and accepts whatever the strict decoder accepts', () => {
    const rand = seededRandom(99);
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const bytes = encodeCbor(randomValue(rand, 0).value);
      const m = bytes.slice();
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++)
        m[Math.floor(rand() * m.length)] = Math.floor(rand() * 256);
      let scanned: number | undefined;
      try {
        scanned = new CborScanner(m, OPEN).skip();
      } catch (e) {
        assert.ok(e instanceof CborScanError, `mutation ${i}: ${e}`);
      }
      let decodedEnd: number | undefined;
      try {
        decodedEnd = m.length - decodeCborFirst(m)[1].length;
      } catch {
        decodedEnd = undefined;
      }
      if (decodedEnd !== undefined) {
        accepted++;
        assert.equal(
          scanned,
          decodedEnd,
          `mutation ${i}: decoder accepted ${Buffer.from(m).toString('hex')}`,
        );
      }
    }
    assert.ok(accepted > 100, `only ${accepted} mutations decoded`);
  });
});
