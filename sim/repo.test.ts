import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCar } from '../src/protocol/car.ts';
import { cidEquals } from '../src/protocol/cid.ts';
import { decodeCommit, verifyCommitSignature } from '../src/protocol/commit.ts';
import { Keypair } from '../src/protocol/keys.ts';
import { Mst } from '../src/protocol/mst.ts';
import { verifyCommitProof } from '../src/protocol/mst-proof.ts';
import { TidClock } from '../src/protocol/tid.ts';
import { Prng } from './prng.ts';
import { type CommitResult, type RepoWrite, SimRepo } from './repo.ts';

const DID = 'did:plc:ewvi7nxzyoun6zhxrhs64oiz';
const EMPTY_ROOT = Mst.empty().rootCid();

/** A deterministic rev clock: a frozen wall clock, so revs just count up. */
function testClock(): TidClock {
  return new TidClock({ clockId: 7, now: () => 1_700_000_000_000 });
}

/** Everything a relay checks on a #commit, using only the event's own blocks. */
function verifyAsRelay(res: CommitResult, key: Keypair, expectPrevData: boolean): void {
  const car = readCar(res.blocks);
  assert.equal(car.roots.length, 1);
  assert.ok(cidEquals(car.roots[0], res.commitCid));
  const commitBytes = car.blocks.get(res.commitCid);
  assert.ok(commitBytes);
  const commit = decodeCommit(commitBytes);
  assert.equal(commit.did, DID);
  assert.equal(commit.rev, res.rev);
  assert.ok(cidEquals(commit.data, res.dataCid));
  assert.ok(verifyCommitSignature(commit, key.publicKey));
  for (const op of res.ops) {
    if (op.cid) assert.ok(car.blocks.has(op.cid), `record block for ${op.path}`);
  }
  const prevData = expectPrevData ? res.prevData : (res.prevData ?? EMPTY_ROOT);
  const proof = verifyCommitProof({ blocks: car.blocks, dataRoot: commit.data, prevData, ops: res.ops });
  assert.deepEqual(proof, { ok: true }, `rev ${res.rev}`);
}

describe('SimRepo', () => {
  const key = Keypair.generate('k256');

  it('emits verifiable commits across a long random write sequence, down to empty', () => {
    const repo = new SimRepo(DID, key, testClock());
    const rng = new Prng('sim-repo-test');
    const live: string[] = [];
    const collections = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow'];
    let rk = 0;
    let last: CommitResult | null = null;
    const steps = 600;
    for (let step = 0; step < steps + 400; step++) {
      const draining = step >= steps;
      if (draining && live.length === 0) break;
      const writes: RepoWrite[] = [];
      const used = new Set<string>();
      const n = 1 + rng.int(draining ? 6 : 4);
      for (let i = 0; i < n; i++) {
        const roll = rng.next();
        if (!draining && (roll < 0.55 || live.length === 0)) {
          const collection = rng.pick(collections);
          const rkey = `3k${(rk++).toString(36).padStart(11, '0')}`;
          writes.push({ action: 'create', collection, rkey, record: { $type: collection, n: rk } });
          continue;
        }
        if (live.length === 0) break;
        const path = rng.pick(live);
        if (used.has(path)) continue;
        used.add(path);
        const [collection, rkey] = path.split('/');
        if (!draining && roll < 0.75) {
          writes.push({ action: 'update', collection, rkey, record: { $type: collection, v: step } });
        } else {
          writes.push({ action: 'delete', collection, rkey });
        }
      }
      const res = repo.applyWrites(writes);
      for (const w of writes) {
        const path = `${w.collection}/${w.rkey}`;
        if (w.action === 'create') live.push(path);
        if (w.action === 'delete') live.splice(live.indexOf(path), 1);
      }
      if (last === null) {
        assert.equal(res.since, null);
        assert.equal(res.prevData, null);
      } else {
        assert.equal(res.since, last.rev);
        assert.ok(cidEquals(res.prevData, last.dataCid));
      }
      verifyAsRelay(res, key, last !== null);
      last = res;
    }
    assert.equal(live.length, 0);
    assert.ok(last && cidEquals(last.dataCid, EMPTY_ROOT));
    assert.deepEqual([...repo.records()], []);
    assert.deepEqual(repo.collections(), []);
  });

  it('exports the whole repo and a sync CAR', () => {
    const repo = new SimRepo(DID, key, testClock());
    assert.equal(repo.head(), null);
    assert.throws(() => repo.exportCar());
    for (let i = 0; i < 50; i++) {
      repo.applyWrites([
        { action: 'create', collection: i % 2 ? 'app.bsky.feed.post' : 'app.bsky.feed.like', rkey: `r${i}` },
      ]);
    }
    const head = repo.head()!;
    const car = readCar(repo.exportCar());
    assert.ok(cidEquals(car.roots[0], head.commitCid));
    const tree = Mst.load(car.blocks, decodeCommit(car.blocks.get(head.commitCid)!).data);
    const paths = [...tree.entries()].map(([p, c]) => {
      assert.ok(car.blocks.has(c));
      return p;
    });
    assert.equal(paths.length, 50);
    assert.deepEqual(
      paths,
      [...repo.records()].map(([p]) => p),
    );
    assert.deepEqual(repo.collections(), ['app.bsky.feed.like', 'app.bsky.feed.post']);
    const sync = readCar(repo.syncBlocks());
    assert.equal(sync.blocks.size, 1);
    assert.ok(cidEquals(sync.roots[0], head.commitCid));
  });

  it('supports empty commits and p256 signing keys', () => {
    const p256 = Keypair.generate('p256');
    const repo = new SimRepo(DID, p256, testClock());
    const first = repo.applyWrites([]);
    assert.equal(first.since, null);
    assert.equal(first.ops.length, 0);
    assert.ok(cidEquals(first.dataCid, EMPTY_ROOT));
    verifyAsRelay(first, p256, false);
    let last = first;
    for (let i = 0; i < 20; i++) {
      const res = repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: `p${i}` }]);
      assert.equal(res.since, last.rev);
      verifyAsRelay(res, p256, true);
      last = res;
    }
    const empty = repo.applyWrites([]);
    assert.ok(cidEquals(empty.dataCid, last.dataCid));
    verifyAsRelay(empty, p256, true);
  });

  it('rejects impossible writes without changing the repo', () => {
    const repo = new SimRepo(DID, key, testClock());
    repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'a' }]);
    const head = repo.head();
    assert.throws(() =>
      repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'a' }]),
    );
    assert.throws(() =>
      repo.applyWrites([{ action: 'delete', collection: 'app.bsky.feed.post', rkey: 'b' }]),
    );
    assert.throws(() =>
      repo.applyWrites([
        { action: 'create', collection: 'app.bsky.feed.post', rkey: 'c' },
        { action: 'delete', collection: 'app.bsky.feed.post', rkey: 'c' },
      ]),
    );
    assert.throws(() => repo.applyWrites([{ action: 'create', collection: 'bad collection', rkey: 'x' }]));
    assert.deepEqual(repo.head(), head);
    assert.equal([...repo.records()].length, 1);
  });

  it('fault knobs: wrong signer, high-S, forced rev', () => {
    const repo = new SimRepo(DID, key, testClock());
    repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'a' }]);
    const other = Keypair.generate('k256');
    const wrong = repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'b' }], {
      signer: other,
    });
    const c1 = decodeCommit(readCar(wrong.blocks).blocks.get(wrong.commitCid)!);
    assert.equal(verifyCommitSignature(c1, key.publicKey), false);
    assert.equal(verifyCommitSignature(c1, other.publicKey), true);
    const high = repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'c' }], {
      highS: true,
    });
    const c2 = decodeCommit(readCar(high.blocks).blocks.get(high.commitCid)!);
    assert.equal(verifyCommitSignature(c2, key.publicKey), false);
    const forced = repo.applyWrites([{ action: 'create', collection: 'app.bsky.feed.post', rkey: 'd' }], {
      rev: '2222222222222',
    });
    assert.equal(forced.rev, '2222222222222');
    assert.equal(decodeCommit(readCar(forced.blocks).blocks.get(forced.commitCid)!).rev, '2222222222222');
  });
});
