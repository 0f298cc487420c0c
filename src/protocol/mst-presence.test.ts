// Exactness of "is any record of this collection left?" from a commit's
// blocks: checked against the repo's ground truth over many random trees,
// with adversarial collection names, and with blocks removed (then the
// answer may be 'unknown' but never wrong).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  indexed,
  newRepo,
  Prng,
  randomBatch,
  TRICKY_COLLECTIONS,
} from '../../test/support/collection-repos.ts';
import { BlockMap } from './car.ts';
import { collectionStillPresent, neighboursOf } from './mst-presence.ts';
import { verifyCommitProof } from './mst-proof.ts';

describe('collectionStillPresent', () => {
  it('decides every delete of every verified commit exactly (random trees, tricky names)', () => {
    let deletes = 0;
    let gone = 0;
    for (let seed = 0; seed < 12; seed++) {
      const prng = new Prng(`presence:${seed}`);
      const repo = newRepo(`did:plc:presence${seed}`);
      // Many sparse collections next to the tricky ones, so last records go often.
      const colls = [...TRICKY_COLLECTIONS, ...Array.from({ length: 25 }, (_, i) => `a.b.c${i}`)];
      // Grow so trees are several layers deep, churn, then drain the repo completely.
      for (let step = 0; ; step++) {
        const draining = step >= 120;
        const left = [...repo.records()].map(([k]) => k);
        if (draining && left.length === 0) break;
        const writes = draining
          ? left
              .slice(prng.int(left.length))
              .slice(0, 1 + prng.int(3))
              .map((path) => {
                const slash = path.indexOf('/');
                return {
                  action: 'delete' as const,
                  collection: path.slice(0, slash),
                  rkey: path.slice(slash + 1),
                };
              })
          : randomBatch(prng, repo, colls, step < 60 ? 0.1 : 0.55);
        if (writes.length === 0) continue;
        const res = repo.applyWrites(writes);
        const c = indexed(res);
        const proof = verifyCommitProof({
          blocks: c.blocks,
          dataRoot: res.dataCid,
          prevData: res.prevData,
          ops: res.ops,
        });
        assert.deepEqual(proof, { ok: true });
        const truth = new Set(repo.collections());
        for (const op of res.ops) {
          if (op.action !== 'delete') continue;
          const coll = op.path.slice(0, op.path.indexOf('/'));
          const got = collectionStillPresent(c.blocks, res.dataCid, coll, op.path);
          assert.equal(got, truth.has(coll), `${op.path} seed ${seed} step ${step}`);
          deletes++;
          if (!got) gone++;
        }
      }
    }
    assert.ok(deletes > 300, `exercised ${deletes} deletes`);
    assert.ok(gone > 100, `exercised ${gone} last-record deletes`);
  });

  it('finds the true neighbours of a deleted key', () => {
    const prng = new Prng('neighbours');
    const repo = newRepo('did:plc:neighbours');
    for (let i = 0; i < 40; i++) repo.applyWrites(randomBatch(prng, repo, TRICKY_COLLECTIONS, 0));
    for (let i = 0; i < 30; i++) {
      const keys = [...repo.records()].map(([k]) => k);
      const victim = keys[prng.int(keys.length)];
      const slash = victim.indexOf('/');
      const res = repo.applyWrites([
        { action: 'delete', collection: victim.slice(0, slash), rkey: victim.slice(slash + 1) },
      ]);
      const idx = keys.indexOf(victim);
      const n = neighboursOf(indexed(res).blocks, res.dataCid, victim);
      assert.deepEqual(n, { left: keys[idx - 1] ?? null, right: keys[idx + 1] ?? null });
    }
  });

  it('deleting the very last record leaves an empty tree: not present', () => {
    const repo = newRepo('did:plc:last');
    repo.applyWrites([{ action: 'create', collection: 'a.b.c', rkey: 'one' }]);
    const res = repo.applyWrites([{ action: 'delete', collection: 'a.b.c', rkey: 'one' }]);
    assert.equal(collectionStillPresent(indexed(res).blocks, res.dataCid, 'a.b.c', 'a.b.c/one'), false);
  });

  it('with blocks missing, answers unknown or the truth, never a wrong boolean', () => {
    let unknown = 0;
    let decided = 0;
    for (let seed = 0; seed < 6; seed++) {
      const prng = new Prng(`partial:${seed}`);
      const repo = newRepo(`did:plc:partial${seed}`);
      for (let step = 0; step < 100; step++) {
        const writes = randomBatch(prng, repo, TRICKY_COLLECTIONS, step < 50 ? 0.1 : 0.6);
        if (writes.length === 0) continue;
        const res = repo.applyWrites(writes);
        const full = indexed(res).blocks;
        const partial = new BlockMap();
        for (const [cid, bytes] of full) if (prng.next() < 0.6) partial.set(cid, bytes);
        const truth = new Set(repo.collections());
        for (const op of res.ops) {
          if (op.action !== 'delete') continue;
          const coll = op.path.slice(0, op.path.indexOf('/'));
          const got = collectionStillPresent(partial, res.dataCid, coll, op.path);
          if (got === 'unknown') unknown++;
          else {
            decided++;
            assert.equal(got, truth.has(coll), op.path);
          }
        }
      }
    }
    assert.ok(unknown > 0 && decided > 0, `unknown ${unknown}, decided ${decided}`);
  });
});
