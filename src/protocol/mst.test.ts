import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { Prng } from '../../sim/prng.ts';
import { readFixtureJson, readFixtureLines } from '../../test/support/interop-fixtures.ts';
import { utf8Encode } from './bytes.ts';
import { encodeCbor } from './cbor.ts';
import { type Cid, cidForCbor, parseCid } from './cid.ts';
import {
  InvalidMstError,
  InvalidMstKeyError,
  isValidMstKey,
  keyHeight,
  MissingBlockError,
  Mst,
} from './mst.ts';
import { commonPrefixLength } from './mst-key.ts';
import { mstNodeData, nodeDecodersForTests } from './mst-node.ts';

const CID1 = parseCid('bafyreie5cvv4h45feadgeuwhbcutmh6t2ceseocckahdoe6uat64zmz454');
const EMPTY_ROOT = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm';
const rec = (k: string) => `com.example.record/${k}`;

function treeOf(keys: string[], value: Cid = CID1): Mst {
  return Mst.fromEntries(keys.map((k) => [k, value] as const));
}

function blockMapOf(tree: Mst): { get(cid: Cid): Uint8Array | undefined } {
  const m = new Map<string, Uint8Array>();
  for (const [cid, bytes] of tree.nodeBlocks()) m.set(cid.$link, bytes);
  return { get: (cid: Cid) => m.get(cid.$link) };
}

/** Deterministic shuffle (seeded Prng) so tests do not depend on Math.random. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = items.slice();
  const prng = new Prng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = prng.int(i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('mst keys', () => {
  it('key heights match the interop fixture', () => {
    const cases = readFixtureJson<{ key: string; height: number }[]>('mst/key_heights.json');
    assert.ok(cases.length > 5);
    for (const c of cases) assert.equal(keyHeight(c.key), c.height, c.key);
  });

  it('common prefix lengths match the interop fixture', () => {
    const cases = readFixtureJson<{ left: string; right: string; len: number }[]>('mst/common_prefix.json');
    for (const c of cases) {
      assert.equal(
        commonPrefixLength(utf8Encode(c.left), utf8Encode(c.right)),
        c.len,
        `${c.left}|${c.right}`,
      );
    }
  });

  it('validates key syntax', () => {
    for (const k of ['app.bsky.feed.post/3jqfcqzm3fo2j', 'a/b', 'com.x/self', 'col/a:b~c_d-e.f']) {
      assert.ok(isValidMstKey(k), k);
    }
    const long = `a/${'x'.repeat(1023)}`;
    for (const k of [
      '',
      'nocollection',
      '/rkey',
      'col/',
      'a/b/c',
      'a b/c',
      'col/jalapeño',
      long,
      'col/a\0',
    ]) {
      assert.ok(!isValidMstKey(k), k);
    }
    assert.ok(isValidMstKey(`a/${'x'.repeat(1022)}`));
    assert.throws(() => Mst.empty().add('bad key', CID1), InvalidMstKeyError);
  });
});

describe('mst trees', () => {
  it('has the known empty and small roots', () => {
    assert.equal(Mst.empty().rootCid().$link, EMPTY_ROOT);
    assert.equal(
      treeOf([rec('3jqfcqzm3fo2j')]).rootCid().$link,
      'bafyreibj4lsc3aqnrvphp5xmrnfoorvru4wynt6lwidqbm2623a6tatzdu',
    );
    assert.equal(
      treeOf([rec('3jqfcqzm3fx2j')]).rootCid().$link,
      'bafyreih7wfei65pxzhauoibu3ls7jgmkju4bspy4t2ha2qdjnzqvoy33ai',
    );
    assert.equal(
      treeOf(
        ['3jqfcqzm3fp2j', '3jqfcqzm3fr2j', '3jqfcqzm3fs2j', '3jqfcqzm3ft2j', '3jqfcqzm4fc2j'].map(rec),
      ).rootCid().$link,
      'bafyreicmahysq4n6wfuxo522m6dpiy7z7qzym3dzs756t5n7nfdgccwq7m',
    );
  });

  it('trims the top of the tree on delete', () => {
    const t = treeOf(
      [
        '3jqfcqzm3fn2j',
        '3jqfcqzm3fo2j',
        '3jqfcqzm3fp2j',
        '3jqfcqzm3fs2j',
        '3jqfcqzm3ft2j',
        '3jqfcqzm3fu2j',
      ].map(rec),
    );
    assert.equal(t.rootLayer(), 1);
    assert.equal(t.rootCid().$link, 'bafyreifnqrwbk6ffmyaz5qtujqrzf5qmxf7cbxvgzktl4e3gabuxbtatv4');
    t.delete(rec('3jqfcqzm3fs2j'));
    assert.equal(t.rootLayer(), 0);
    assert.equal(t.rootCid().$link, 'bafyreie4kjuxbwkhzg2i5dljaswcroeih4dgiqq6pazcmunwt2byd725vi');
  });

  it('handles an insertion that splits two layers down', () => {
    const keys = [
      '3jqfcqzm3fo2j',
      '3jqfcqzm3fp2j',
      '3jqfcqzm3fr2j',
      '3jqfcqzm3fs2j',
      '3jqfcqzm3ft2j',
      '3jqfcqzm3fz2j',
    ];
    keys.push('3jqfcqzm4fc2j', '3jqfcqzm4fd2j', '3jqfcqzm4ff2j', '3jqfcqzm4fg2j', '3jqfcqzm4fh2j');
    const t = treeOf(keys.map(rec));
    const l1 = 'bafyreiettyludka6fpgp33stwxfuwhkzlur6chs4d2v4nkmq2j3ogpdjem';
    assert.equal(t.rootCid().$link, l1);
    assert.equal(t.rootLayer(), 1);
    t.add(rec('3jqfcqzm3fx2j'), CID1);
    assert.equal(t.rootLayer(), 2);
    assert.equal(t.rootCid().$link, 'bafyreid2x5eqs4w4qxvc5jiwda4cien3gw2q6cshofxwnvv7iucrmfohpm');
    t.delete(rec('3jqfcqzm3fx2j'));
    assert.equal(t.rootLayer(), 1);
    assert.equal(t.rootCid().$link, l1);
  });

  it('handles new layers two above the existing top', () => {
    const t = treeOf([rec('3jqfcqzm3ft2j'), rec('3jqfcqzm3fz2j')]);
    const l0 = 'bafyreidfcktqnfmykz2ps3dbul35pepleq7kvv526g47xahuz3rqtptmky';
    const l2 = 'bafyreiavxaxdz7o7rbvr3zg2liox2yww46t7g6hkehx4i4h3lwudly7dhy';
    assert.equal(t.rootCid().$link, l0);
    t.add(rec('3jqfcqzm3fx2j'), CID1);
    assert.equal(t.rootCid().$link, l2);
    t.delete(rec('3jqfcqzm3fx2j'));
    assert.equal(t.rootLayer(), 0);
    assert.equal(t.rootCid().$link, l0);
    t.add(rec('3jqfcqzm3fx2j'), CID1);
    t.add(rec('3jqfcqzm4fd2j'), CID1);
    assert.equal(t.rootLayer(), 2);
    assert.equal(t.rootCid().$link, 'bafyreig4jv3vuajbsybhyvb7gggvpwh2zszwfyttjrj6qwvcsp24h6popu');
    t.delete(rec('3jqfcqzm4fd2j'));
    assert.equal(t.rootCid().$link, l2);
  });

  it('is insertion-order independent and deletes back to empty (example keys)', () => {
    const keys = readFixtureLines('mst/example_keys.txt');
    assert.ok(keys.length > 100);
    const ref = treeOf(keys);
    const root = ref.rootCid();
    assert.deepEqual(
      [...ref.entries()].map(([k]) => k),
      [...keys].sort(),
    );
    for (const seed of [1, 2, 3]) {
      const t = treeOf(shuffled(keys, seed));
      assert.equal(t.rootCid().$link, root.$link);
    }
    // Incremental: hash after every write; a tree built by deleting half
    // must equal a tree built from the other half.
    const t = Mst.empty();
    for (const k of shuffled(keys, 9)) {
      t.add(k, CID1);
      t.rootCid();
    }
    assert.equal(t.rootCid().$link, root.$link);
    const dels = shuffled(keys, 10).slice(0, keys.length >> 1);
    for (const k of dels) {
      assert.equal(t.delete(k).$link, CID1.$link);
      t.rootCid();
    }
    const rest = keys.filter((k) => !dels.includes(k));
    assert.equal(t.rootCid().$link, treeOf(rest).rootCid().$link);
    for (const k of rest) t.delete(k);
    assert.equal(t.rootCid().$link, EMPTY_ROOT);
    assert.equal(t.rootLayer(), 0);
  });

  it('get / update / put / delete semantics', () => {
    const cid2 = cidForCbor(encodeCbor({ x: 2 }));
    const t = treeOf(readFixtureLines('mst/example_keys.txt').slice(0, 40));
    const k = readFixtureLines('mst/example_keys.txt')[7];
    assert.equal(t.get(k)?.$link, CID1.$link);
    assert.equal(t.get('zz/none'), null);
    const before = t.rootCid();
    assert.equal(t.update(k, cid2).$link, CID1.$link);
    assert.equal(t.get(k)?.$link, cid2.$link);
    assert.notEqual(t.rootCid().$link, before.$link);
    assert.equal(t.put(k, CID1)?.$link, cid2.$link);
    assert.equal(t.rootCid().$link, before.$link);
    assert.throws(() => t.add(k, CID1));
    assert.throws(() => t.update('zz/none', CID1));
    assert.throws(() => t.delete('zz/none'));
    assert.equal(t.rootCid().$link, before.$link);
  });

  it('encodes nodes exactly as the generic DAG-CBOR encoder does', () => {
    const t = treeOf(readFixtureLines('mst/example_keys.txt'));
    let n = 0;
    for (const [cid, bytes] of t.nodeBlocks()) {
      const data = mstNodeData(bytes);
      assert.deepEqual(encodeCbor(data), bytes);
      assert.equal(cidForCbor(bytes).$link, cid.$link);
      n++;
    }
    assert.ok(n > 10);
  });

  it('reports only the re-encoded nodes as new blocks', () => {
    const keys = readFixtureLines('mst/example_keys.txt');
    const t = treeOf(keys);
    const all = new Set([...t.nodeBlocks()].map(([c]) => c.$link));
    t.add('zzz/new', CID1);
    const fresh: string[] = [];
    t.rootCid((cid) => fresh.push(cid.$link));
    assert.ok(fresh.length >= 1 && fresh.length <= 6, `fresh ${fresh.length}`);
    for (const c of fresh) assert.ok(!all.has(c));
    const fresh2: string[] = [];
    t.rootCid((cid) => fresh2.push(cid.$link));
    assert.equal(fresh2.length, 0);
  });
});

describe('mst loading', () => {
  it('loads lazily and round-trips', () => {
    const keys = readFixtureLines('mst/example_keys.txt');
    const full = treeOf(keys);
    const root = full.rootCid();
    const loaded = Mst.load(blockMapOf(full), root);
    assert.equal(loaded.rootCid().$link, root.$link);
    const flat = (t: Mst) => [...t.entries()].map(([k, v]) => `${k}=${v.$link}`);
    assert.deepEqual(flat(loaded), flat(full));
    loaded.add('zzz/new', CID1);
    full.add('zzz/new', CID1);
    assert.equal(loaded.rootCid().$link, full.rootCid().$link);
  });

  it('re-encodes loaded nodes (patched from their blocks) exactly as a tree built from scratch', () => {
    const keys = readFixtureLines('mst/example_keys.txt');
    const cid2 = cidForCbor(encodeCbor({ x: 2 }));
    const full = treeOf(keys);
    const t = Mst.load(blockMapOf(full), full.rootCid());
    const model = new Map(keys.map((k) => [k, CID1] as const));
    const prng = new Prng(7);
    const rnd = (n: number) => prng.int(n);
    for (let step = 0; step < 300; step++) {
      const present = [...model.keys()];
      const r = rnd(3);
      if (r === 0 || present.length === 0) {
        const k = `com.example.record/${step.toString(36)}x${rnd(1000)}`;
        if (model.has(k)) continue;
        t.add(k, CID1);
        model.set(k, CID1);
      } else if (r === 1) {
        const k = present[rnd(present.length)];
        t.update(k, cid2);
        model.set(k, cid2);
      } else {
        const k = present[rnd(present.length)];
        t.delete(k);
        model.delete(k);
      }
      if (step % 10 === 0) {
        const fresh: [Cid, Uint8Array][] = [];
        t.rootCid((c, b) => fresh.push([c, b]));
        for (const [c, b] of fresh) assert.equal(cidForCbor(encodeCbor(mstNodeData(b))).$link, c.$link);
        assert.equal(t.rootCid().$link, Mst.fromEntries(model).rootCid().$link, `step ${step}`);
      }
    }
    assert.equal(t.rootCid().$link, Mst.fromEntries(model).rootCid().$link);
  });

  it('firstKeyAtOrAfter finds the smallest key at or after any bound, loading one path per call', () => {
    const keys = shuffled(
      Array.from({ length: 600 }, (_, i) => `c${i % 7}.x/${String(i).padStart(4, '0')}`),
      5,
    );
    const built = treeOf(keys);
    const blocks = blockMapOf(built);
    let reads = 0;
    const counting = {
      get: (cid: Cid) => {
        reads++;
        return blocks.get(cid);
      },
    };
    const sorted = [...keys].sort();
    const bounds = [
      '',
      'a',
      'c3',
      'c3.x/',
      'c3.x/0100',
      sorted[10],
      `${sorted[10]}!`,
      'c6.x0',
      'zzz',
      'c0.x0',
    ];
    for (const bound of bounds) {
      const loaded = Mst.load(counting, built.rootCid());
      reads = 0;
      const want = sorted.find((k) => k >= bound) ?? null;
      assert.equal(loaded.firstKeyAtOrAfter(bound), want, JSON.stringify(bound));
      assert.ok(reads <= loaded.rootLayer() + 1, `${reads} nodes read for one seek`);
    }
    assert.equal(Mst.empty().firstKeyAtOrAfter(''), null);
  });

  it('throws MissingBlockError only when a missing node is touched', () => {
    const keys = readFixtureLines('mst/example_keys.txt');
    const full = treeOf(keys);
    const root = full.rootCid();
    const rootBytes = [...full.nodeBlocks()][0][1];
    const only = { get: (c: Cid) => (c.$link === root.$link ? rootBytes : undefined) };
    const t = Mst.load(only, root);
    assert.equal(t.rootCid().$link, root.$link);
    assert.throws(() => t.get(keys[0]), MissingBlockError);
    assert.throws(() => Mst.load({ get: () => undefined }, root).get(keys[0]), MissingBlockError);
  });

  it('rejects malformed nodes', () => {
    const bad = (data: unknown) => {
      const bytes = encodeCbor(data);
      const cid = cidForCbor(bytes);
      return () => Mst.load({ get: () => bytes }, cid).get('a/b');
    };
    const e = (k: string, p = 0, t: Cid | null = null) => ({ p, k: utf8Encode(k), v: CID1, t });
    assert.throws(bad({ l: null }), InvalidMstError);
    assert.throws(bad({ l: null, e: [], x: 1 }), InvalidMstError);
    assert.throws(bad({ l: null, e: [{ p: 0, k: 'a/b', v: CID1, t: null }] }), InvalidMstError);
    assert.throws(bad({ l: null, e: [e('a/b', 1)] }), InvalidMstError);
    assert.throws(bad({ l: null, e: [e('bad')] }), InvalidMstError);
    assert.throws(bad({ l: CID1, e: [] }), InvalidMstError);
    // out of order / wrong layer
    const k0 = ['A0/374913', 'C0/451630'];
    assert.equal(keyHeight(k0[0]), keyHeight(k0[1]));
    assert.throws(bad({ l: null, e: [e(k0[1]), e(k0[0])] }), InvalidMstError);
    const hs = readFixtureLines('mst/example_keys.txt').map((k) => [k, keyHeight(k)] as const);
    const h0 = hs.find(([, h]) => h === 0)![0];
    const h1 = hs.find(([, h]) => h === 1)![0];
    assert.throws(bad({ l: null, e: [e(h1), e(h0, commonPrefixLength(utf8Encode(h1), utf8Encode(h0)))] }));
    assert.throws(bad({ l: null, e: [e(h0, 0, CID1)] }), InvalidMstError); // layer 0 with subtree
    assert.throws(() => Mst.load({ get: () => new Uint8Array([1, 2]) }, CID1).get('a/b'), InvalidMstError);
  });
});

describe('mst key hashing', () => {
  it('heights agree with a reference count over node:crypto digests', () => {
    const ref = (k: string) => {
      const d = createHash('sha256').update(k).digest();
      let z = 0;
      for (const b of d) {
        if (b === 0) {
          z += 8;
          continue;
        }
        z += Math.clz32(b) - 24;
        break;
      }
      return z >> 1;
    };
    for (const k of readFixtureLines('mst/example_keys.txt')) assert.equal(keyHeight(k), ref(k), k);
    for (let i = 0; i < 2000; i++) {
      const k = `com.example.record/${i.toString(36)}`;
      assert.equal(keyHeight(k), ref(k), k);
    }
    // inputs beyond any key's length take the node:crypto path
    for (const n of [4096, 4097, 10_000]) {
      const k = `a/${'x'.repeat(n)}${n}`;
      assert.equal(keyHeight(k), ref(k), `length ${n}`);
    }
  });
});

describe('mst fast node decoder', () => {
  const { generic } = nodeDecodersForTests;
  // The fast decoder's output less the link offsets only it records.
  const fast = (bytes: Uint8Array, lo: string | null, hi: string | null) => {
    const got = nodeDecodersForTests.fast(bytes, lo, hi);
    if (got === null) return null;
    const { linkAt: _, ...rest } = got;
    return rest;
  };
  const nodes = () => [...treeOf(readFixtureLines('mst/example_keys.txt')).nodeBlocks()];

  /** The generic decoder's verdict: the decoded node, or 'invalid'. */
  const genericVerdict = (bytes: Uint8Array, lo: string | null, hi: string | null) => {
    try {
      return generic(bytes, CID1, lo, hi);
    } catch (err) {
      assert.ok(err instanceof InvalidMstError, String(err));
      return 'invalid' as const;
    }
  };

  it('decodes every canonical node itself, exactly as the generic decoder', () => {
    let n = 0;
    for (const [, bytes] of nodes()) {
      const got = fast(bytes, null, null);
      assert.ok(got !== null, 'fast path declined a canonical node');
      assert.deepEqual(got, generic(bytes, CID1, null, null));
      n++;
    }
    assert.ok(n > 10);
  });

  it('never accepts what the generic decoder rejects, and agrees on what both accept (byte mutations)', () => {
    let accepted = 0;
    let declined = 0;
    // Mid-sized nodes (some entries with prefixes, subtrees and nulls) of a generated tree.
    const keys500 = Array.from({ length: 500 }, (_, i) => rec(`3l${i.toString(36).padStart(11, '0')}`));
    const picked = [...treeOf(keys500).nodeBlocks()].filter(([, b]) => b.length > 150 && b.length < 600);
    assert.ok(picked.length >= 3);
    for (const [, original] of picked.slice(0, 3)) {
      const variants: Uint8Array[] = [
        original.subarray(0, original.length - 1),
        new Uint8Array([...original, 0]),
      ];
      for (let pos = 0; pos < original.length; pos++) {
        for (const v of [original[pos] ^ 0x01, original[pos] ^ 0x20, 0x00, 0x18, 0xf6]) {
          if (v === original[pos]) continue;
          const m = original.slice();
          m[pos] = v;
          variants.push(m);
        }
      }
      const data = mstNodeData(original);
      const keys = generic(original, CID1, null, null).entries.map((e) => e.key);
      const bounds: [string | null, string | null][] = [
        [null, null],
        [keys[0], null],
        [null, keys[keys.length - 1]],
      ];
      for (const bytes of variants) {
        for (const [lo, hi] of bounds) {
          const want = genericVerdict(bytes, lo, hi);
          const got = fast(bytes, lo, hi);
          if (got === null) declined++;
          else {
            accepted++;
            assert.notEqual(
              want,
              'invalid',
              `fast accepted a node the generic path rejects (${data.e.length} entries)`,
            );
            assert.deepEqual(got, want);
          }
        }
      }
    }
    assert.ok(accepted > 100 && declined > 1000, `accepted ${accepted} declined ${declined}`);
  });

  it('defers non-canonical but decodable shapes to the generic path', () => {
    const e = { k: utf8Encode('a/b'), p: 0, t: null, v: CID1 };
    const bytes = encodeCbor({ e: [e], l: null });
    assert.ok(fast(bytes, null, null) !== null);
    // p as a float64 (0xfb + 8 bytes) instead of an integer
    const i = bytes.indexOf(0x70) + 1; // after "p"
    assert.equal(bytes[i], 0x00);
    const floatP = new Uint8Array([
      ...bytes.subarray(0, i),
      0xfb,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      ...bytes.subarray(i + 1),
    ]);
    assert.equal(fast(floatP, null, null), null);
    assert.deepEqual(genericVerdict(floatP, null, null), generic(bytes, CID1, null, null));
    // a CID link with a non-sha256 multihash, and an extra map key, are the generic path's to reject
    const j = bytes.lastIndexOf(0x12);
    const badHash = bytes.slice();
    badHash[j] = 0x13;
    assert.equal(fast(badHash, null, null), null);
    assert.equal(genericVerdict(badHash, null, null), 'invalid');
    const extra = encodeCbor({ e: [e], l: null, x: 1 });
    assert.equal(fast(extra, null, null), null);
    assert.equal(genericVerdict(extra, null, null), 'invalid');
  });

  it('checks key syntax, prefixes and order on bytes exactly as the generic path does', () => {
    const node = (...es: [string, number][]) =>
      encodeCbor({ e: es.map(([k, p]) => ({ k: utf8Encode(k), p, t: null, v: CID1 })), l: null });
    const cases: [Uint8Array, boolean][] = [
      [node(['a/b', 0], ['c', 2]), true], // a/c
      [node(['a/b', 0], ['c/d', 1]), true], // ac/d
      [node(['a/b', 0], ['/c', 3]), false], // a/b/c: second slash after the prefix's
      [node(['a/b', 0], ['/', 1]), false], // a/: slash last
      [node(['a/b', 0], ['', 2]), false], // a/
      [node(['a/b', 0], ['', 3]), false], // duplicate
      [node(['a/b', 0], ['/c', 1]), false], // a/c with a non-canonical prefix
      [node(['a/bc', 0], ['', 3]), false], // a/b after a/bc
      [node(['/ab', 0]), false],
      [node(['ab/', 0]), false],
      [node(['ab', 0]), false],
      [node(['a/b', 1]), false], // first entry with a prefix
      [node(['a/b', 0], ['c', 4]), false], // prefix longer than the previous key
      [node(['a/b c', 0]), false],
      [node([`a/${'x'.repeat(1022)}`, 0]), true],
      [node([`a/${'x'.repeat(1023)}`, 0]), false],
      [node(['a/b', 0], [`${'x'.repeat(1021)}`, 3]), true],
      [node(['a/b', 0], [`${'x'.repeat(1022)}`, 3]), false],
      [
        encodeCbor({ e: [{ k: new Uint8Array([0x61, 0x2f, 0xc3, 0xa9]), p: 0, t: null, v: CID1 }], l: null }),
        false,
      ],
    ];
    for (const [bytes, valid] of cases) {
      const want = genericVerdict(bytes, null, null);
      assert.equal(
        want !== 'invalid',
        valid,
        mstNodeData(bytes)
          .e.map((e) => Buffer.from(e.k).toString())
          .join('|'),
      );
      const got = fast(bytes, null, null);
      if (valid) assert.deepEqual(got, want);
      else assert.equal(got, null);
    }
  });
});
