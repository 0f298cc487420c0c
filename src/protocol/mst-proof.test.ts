import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Prng } from '../../sim/prng.ts';
import { readFixtureJson, readFixtureLines } from '../../test/support/interop-fixtures.ts';
import { BlockMap } from './car.ts';
import { encodeCbor } from './cbor.ts';
import { type Cid, cidForCbor, parseCid } from './cid.ts';
import { Mst } from './mst.ts';
import { commitProofBlocks, type ProofOp, verifyCommitProof } from './mst-proof.ts';

interface ProofFixture {
  comment: string;
  leafValue: string;
  keys: string[];
  adds: string[];
  dels: string[];
  rootBeforeCommit: string;
  rootAfterCommit: string;
  blocksInProof: string[];
}

function blockMap(entries: Iterable<[Cid, Uint8Array]>): BlockMap {
  const m = new BlockMap();
  for (const [c, b] of entries) m.set(c, b);
  return m;
}

const fixtures = readFixtureJson<ProofFixture[]>('firehose/commit-proof-fixtures.json');

describe('commit proof fixtures', () => {
  it('has the fixtures', () => assert.ok(fixtures.length >= 6));
  for (const f of fixtures) {
    it(f.comment, () => {
      const leaf = parseCid(f.leafValue);
      const tree = Mst.fromEntries(f.keys.map((k) => [k, leaf] as const));
      const before = tree.rootCid();
      assert.equal(before.$link, f.rootBeforeCommit);
      for (const k of f.adds) tree.add(k, leaf);
      for (const k of f.dels) tree.delete(k);
      const after = tree.rootCid();
      assert.equal(after.$link, f.rootAfterCommit);

      const proof = commitProofBlocks(tree, [...f.adds, ...f.dels]);
      assert.deepEqual(proof.map(([c]) => c.$link).sort(), [...f.blocksInProof].sort());

      const ops: ProofOp[] = [
        ...f.adds.map((path) => ({ action: 'create' as const, path, cid: leaf })),
        ...f.dels.map((path) => ({ action: 'delete' as const, path, cid: null, prev: leaf })),
      ];
      const blocks = blockMap(proof);
      assert.deepEqual(verifyCommitProof({ blocks, dataRoot: after, prevData: before, ops }), { ok: true });
      // Op order within the commit does not matter for the inversion.
      const reversed = [...ops].reverse();
      assert.deepEqual(verifyCommitProof({ blocks, dataRoot: after, prevData: before, ops: reversed }), {
        ok: true,
      });
      // Wrong prevData.
      const r1 = verifyCommitProof({ blocks, dataRoot: after, prevData: after, ops });
      assert.equal(r1.ok, false);
      assert.equal(!r1.ok && r1.reason, 'prev-data-mismatch');
      // Without the new root nothing can be checked.
      const noRoot = blockMap(proof.filter(([c]) => c.$link !== after.$link));
      const r2 = verifyCommitProof({ blocks: noRoot, dataRoot: after, prevData: before, ops });
      assert.equal(!r2.ok && r2.reason, 'missing-blocks');
    });
  }
});

describe('commit proof negatives', () => {
  const keys = readFixtureLines('mst/example_keys.txt');
  const v1 = cidForCbor(encodeCbor({ v: 1 }));
  const v2 = cidForCbor(encodeCbor({ v: 2 }));
  const tree = Mst.fromEntries(keys.slice(0, 100).map((k) => [k, v1] as const));
  const before = tree.rootCid();
  const created = keys[120];
  const updated = keys[10];
  const deleted = keys[20];
  tree.add(created, v2);
  tree.update(updated, v2);
  tree.delete(deleted);
  const after = tree.rootCid();
  const proof = commitProofBlocks(tree, [created, updated, deleted]);
  const blocks = blockMap(proof);
  const ops: ProofOp[] = [
    { action: 'create', path: created, cid: v2 },
    { action: 'update', path: updated, cid: v2, prev: v1 },
    { action: 'delete', path: deleted, cid: null, prev: v1 },
  ];
  const check = (o: ProofOp[], extra: Partial<Parameters<typeof verifyCommitProof>[0]> = {}) =>
    verifyCommitProof({ blocks, dataRoot: after, prevData: before, ops: o, ...extra });
  const reason = (r: ReturnType<typeof verifyCommitProof>) => (r.ok ? 'ok' : r.reason);

  it('accepts the honest mixed commit', () => {
    assert.deepEqual(check(ops), { ok: true });
    assert.deepEqual(check(ops, { prevData: null }), { ok: true });
  });

  it('rejects a missing op (the tree changed more than the ops say)', () => {
    assert.equal(reason(check(ops.slice(0, 2))), 'prev-data-mismatch');
  });

  it('rejects ops inconsistent with the tree', () => {
    assert.equal(reason(check([{ ...ops[0], cid: v1 }, ops[1], ops[2]])), 'op-mismatch');
    assert.equal(reason(check([ops[0], { ...ops[1], cid: v1 }, ops[2]])), 'op-mismatch');
    assert.equal(reason(check([ops[0], ops[1], { ...ops[2], path: updated }])), 'duplicate-path');
    assert.equal(
      reason(check([{ action: 'delete', path: created, cid: null, prev: v2 }, ops[1], ops[2]])),
      'op-mismatch',
    );
    // an update claimed for what was a create: the old value comes back, so the root differs
    assert.equal(
      reason(check([{ ...ops[0], action: 'update', prev: v1 }, ops[1], ops[2]])),
      'prev-data-mismatch',
    );
    // wrong prev on an update: the inverted root differs
    assert.equal(reason(check([ops[0], { ...ops[1], prev: v2 }, ops[2]])), 'prev-data-mismatch');
  });

  it('rejects malformed ops and duplicate paths', () => {
    assert.equal(reason(check([...ops, ops[0]])), 'duplicate-path');
    assert.equal(reason(check([{ action: 'create', path: created, cid: null }])), 'invalid-op');
    assert.equal(reason(check([{ action: 'update', path: updated, cid: v2 }])), 'invalid-op');
    assert.equal(reason(check([{ action: 'delete', path: deleted, cid: v1, prev: v1 }])), 'invalid-op');
    assert.equal(reason(check([{ action: 'create', path: 'bad path', cid: v2 }])), 'invalid-op');
    assert.equal(
      reason(check([{ action: 'upsert', path: created, cid: v2 } as unknown as ProofOp])),
      'invalid-op',
    );
    assert.equal(reason(check([null as unknown as ProofOp])), 'invalid-op');
    assert.equal(reason(check('x' as unknown as ProofOp[])), 'invalid-op');
  });

  it('fails on missing blocks and hostile blocks without throwing', () => {
    assert.equal(reason(check(ops, { blocks: new BlockMap() })), 'missing-blocks');
    const junk = new Uint8Array([0xa1, 0x61, 0x78, 0x01]);
    const bad = new BlockMap().set(after, junk);
    assert.equal(reason(check(ops, { blocks: bad })), 'invalid-tree');
    const notCbor = new BlockMap().set(after, new Uint8Array([0xff, 0x00]));
    assert.equal(reason(check(ops, { blocks: notCbor })), 'invalid-tree');
    assert.equal(reason(check(ops, { dataRoot: 'x' as unknown as Cid })), 'invalid-op');
  });
});

describe('commit proof, randomized', () => {
  it('covering proofs suffice for random multi-op commits on trees of many sizes', () => {
    const rng = new Prng(12345);
    const val = (i: number) => cidForCbor(encodeCbor({ i }));
    const mk = () => `c${rng.int(3)}/${rng.int(1e6).toString(36)}`;
    let commits = 0;
    for (let trial = 0; trial < 40; trial++) {
      const size = trial % 2 === 0 ? rng.int(20) : rng.int(400);
      const live = new Set<string>();
      while (live.size < size) live.add(mk());
      const tree = Mst.fromEntries([...live].map((k, i) => [k, val(i)] as const));
      for (let round = 0; round < 10; round++) {
        const before = tree.rootCid();
        const ops: ProofOp[] = [];
        const n = 1 + rng.int(6);
        for (let i = 0; i < n; i++) {
          const r = rng.next();
          if (r < 0.4 || live.size === 0) {
            const k = mk();
            if (live.has(k) || ops.some((o) => o.path === k)) continue;
            const v = val(rng.int(1e9));
            tree.add(k, v);
            live.add(k);
            ops.push({ action: 'create', path: k, cid: v });
            continue;
          }
          const k = [...live][rng.int(live.size)];
          if (ops.some((o) => o.path === k)) continue;
          if (r < 0.7) {
            const v = val(rng.int(1e9));
            ops.push({ action: 'update', path: k, cid: v, prev: tree.update(k, v) });
          } else {
            live.delete(k);
            ops.push({ action: 'delete', path: k, cid: null, prev: tree.delete(k) });
          }
        }
        const after = tree.rootCid();
        const blocks = blockMap(
          commitProofBlocks(
            tree,
            ops.map((o) => o.path),
          ),
        );
        assert.deepEqual(verifyCommitProof({ blocks, dataRoot: after, prevData: before, ops }), { ok: true });
        commits++;
      }
    }
    assert.equal(commits, 400);
  });
});
