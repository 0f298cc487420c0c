// The #sync recompute queue on both backends, with a fake PDS whose fetches
// the test resolves by hand: repeated #syncs of one DID coalesce into one
// fetch; a commit applied while the fetch runs is not undone by the older
// fetched repo (it is fetched again), while one applied after the recompute
// lands on top; a repo older than the #sync is fetched again; a relay resync
// covers a queued #sync; failures give up after maxAttempts and drop the
// marker; a full queue leaves the DID persisted for resume() and the cleaner;
// fetch starts are rate-limited; the log listener reads #sync records; the
// relay's upkeep feeds the queue (commit revs, its own resyncs).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backends } from '../../test/support/collection-index-stores.ts';
import { indexed, newRepo } from '../../test/support/collection-repos.ts';
import type { CommittedEvent } from '../eventlog/committed.ts';
import type { EventMeta } from '../eventlog/types.ts';
import { silentLogger } from '../log.ts';
import { BlockMap } from '../protocol/car.ts';
import { encodeCbor } from '../protocol/cbor.ts';
import { cidForCbor } from '../protocol/cid.ts';
import { RepoFetchError } from '../validate/repo-fetch.ts';
import { CollectionCleaner } from './cleaner.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { CollectionIndexUpkeep } from './relay-upkeep.ts';
import {
  type RepoCollections,
  SYNC_PENDING,
  type SyncRecomputeOptions,
  SyncRecomputeQueue,
} from './sync-recompute.ts';
import { CollectionIndexer, commitEffect } from './upkeep.ts';

const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';
const FOLLOW = 'app.bsky.graph.follow';
const A = 'did:plc:synca';
const B = 'did:plc:syncb';
// TIDs in increasing order
const REV1 = '3kaaaaaaaaa21';
const REV2 = '3kaaaaaaaaa22';
const REV3 = '3kaaaaaaaaa23';

interface PendingFetch {
  did: string;
  resolve(v: RepoCollections | null): void;
  reject(err: unknown): void;
}

/** A PDS whose getRepo calls wait until the test answers them. */
class FakePds {
  readonly calls: PendingFetch[] = [];
  readonly startedAt: number[] = [];
  private waiters: (() => void)[] = [];

  fetchRepo = (did: string, signal: AbortSignal): Promise<RepoCollections | null> =>
    new Promise((resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      this.calls.push({ did, resolve, reject });
      this.startedAt.push(performance.now());
      for (const w of this.waiters.splice(0)) w();
    });

  /** The n-th fetch (0-based), once it has started. */
  async call(n: number): Promise<PendingFetch> {
    while (this.calls.length <= n) await new Promise<void>((r) => this.waiters.push(r));
    return this.calls[n];
  }
}

const emptyCommit = (did: string, ops: { action: 'create' | 'delete'; path: string }[]) => ({
  did,
  dataRoot: cidForCbor(encodeCbor({})),
  blocks: new BlockMap(),
  ops,
});

async function markers(store: CollectionIndexStore): Promise<string[]> {
  return (await store.pendingChecks(100)).filter((c) => c.collection === SYNC_PENDING).map((c) => c.did);
}

function queueOf(indexer: CollectionIndexer, pds: FakePds, extra: Partial<SyncRecomputeOptions> = {}) {
  return new SyncRecomputeQueue({
    indexer,
    fetchRepo: pds.fetchRepo,
    perSecond: 1000,
    delayMs: 0,
    retryMs: 5,
    onError: () => {},
    ...extra,
  });
}

for (const [name, fresh] of backends) {
  describe(`#sync recompute queue: ${name}`, () => {
    it('coalesces repeated #syncs of one DID into one fetch and replaces its collections', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const indexer = new CollectionIndexer(t.store);
      const q = queueOf(indexer, pds, { delayMs: 20 });
      try {
        await t.store.addPairs([
          { did: A, collection: POST },
          { did: A, collection: LIKE },
        ]);
        q.syncAccepted(A, REV1);
        q.syncAccepted(A, REV2);
        q.syncAccepted(A, REV2);
        q.syncAccepted(B, REV1);
        assert.equal(q.size, 2);
        const first = await pds.call(0);
        const second = await pds.call(1);
        assert.deepEqual([first.did, second.did], [A, B]);
        assert.deepEqual((await markers(t.store)).sort(), [A, B]);
        first.resolve({ rev: REV2, collections: [LIKE, FOLLOW] });
        second.resolve({ rev: REV1, collections: [POST] });
        await q.whenIdle();
        assert.equal(pds.calls.length, 2);
        assert.deepEqual(await t.store.collectionsOf(A), [LIKE, FOLLOW]);
        assert.deepEqual(await t.store.collectionsOf(B), [POST]);
        assert.deepEqual(await markers(t.store), [], 'the recompute clears the markers');
        assert.equal(q.stats.queued, 2);
        assert.equal(q.stats.coalesced, 2);
        assert.equal(q.stats.recomputes, 2);
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('a commit applied while the fetch runs is not undone by the older fetched repo', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const indexer = new CollectionIndexer(t.store);
      const q = queueOf(indexer, pds);
      try {
        await t.store.addPairs([{ did: A, collection: POST }]);
        q.syncAccepted(A, REV1);
        const fetch1 = await pds.call(0);
        // The firehose applies a commit (newer than what the PDS served) during the fetch.
        q.commitSeen(A, REV2);
        const applied = indexer.applyCommit(emptyCommit(A, [{ action: 'create', path: `${FOLLOW}/3k1` }]));
        fetch1.resolve({ rev: REV1, collections: [LIKE] });
        await applied;
        const fetch2 = await pds.call(1);
        assert.deepEqual(await t.store.collectionsOf(A), [POST, FOLLOW], 'the stale repo was not applied');
        assert.equal(q.stats.stale, 1);
        // The next fetch includes the commit; a commit after the recompute lands on top.
        fetch2.resolve({ rev: REV2, collections: [LIKE, FOLLOW] });
        await new Promise((r) => setImmediate(r));
        q.commitSeen(A, REV3);
        await indexer.applyCommit(emptyCommit(A, [{ action: 'create', path: `${POST}/3k2` }]));
        await q.whenIdle();
        assert.deepEqual(await t.store.collectionsOf(A), [LIKE, POST, FOLLOW]);
        assert.equal(q.stats.recomputes, 1);
        assert.equal(pds.calls.length, 2);
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('commits no newer than the fetched repo do not block the recompute', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const indexer = new CollectionIndexer(t.store);
      const q = queueOf(indexer, pds);
      try {
        q.syncAccepted(A, REV1);
        const fetch1 = await pds.call(0);
        q.commitSeen(A, REV2);
        void indexer.applyCommit(emptyCommit(A, [{ action: 'create', path: `${FOLLOW}/3k1` }]));
        fetch1.resolve({ rev: REV2, collections: [LIKE, FOLLOW] });
        await q.whenIdle();
        assert.deepEqual(await t.store.collectionsOf(A), [LIKE, FOLLOW]);
        assert.equal(q.stats.stale, 0);
        assert.equal(q.stats.recomputes, 1);
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('a repo older than the #sync is fetched again', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const q = queueOf(new CollectionIndexer(t.store), pds);
      try {
        q.syncAccepted(A, REV2);
        (await pds.call(0)).resolve({ rev: REV1, collections: [POST] });
        (await pds.call(1)).resolve({ rev: REV2, collections: [LIKE] });
        await q.whenIdle();
        assert.deepEqual(await t.store.collectionsOf(A), [LIKE]);
        assert.equal(q.stats.stale, 1);
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('a relay resync at least as new covers a queued #sync; a deleted account leaves the queue', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const indexer = new CollectionIndexer(t.store);
      const q = queueOf(indexer, pds, { delayMs: 60_000 });
      try {
        q.syncAccepted(A, REV1);
        q.syncAccepted(B, REV1);
        const resync = indexer.resync(A, [POST]);
        q.resynced(A, REV1);
        q.forget(B);
        await q.whenIdle();
        await resync;
        assert.equal(pds.calls.length, 0);
        assert.equal(q.stats.covered, 1);
        assert.deepEqual(await t.store.collectionsOf(A), [POST]);
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('gives up after maxAttempts and drops the marker', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const q = queueOf(new CollectionIndexer(t.store), pds, { maxAttempts: 2 });
      try {
        await t.store.addPairs([{ did: A, collection: POST }]);
        q.syncAccepted(A, REV1);
        (await pds.call(0)).reject(new Error('PDS down'));
        (await pds.call(1)).resolve(null);
        await q.whenIdle();
        assert.equal(q.stats.failed, 2);
        assert.equal(q.stats.gaveUp, 1);
        assert.deepEqual(await markers(t.store), []);
        assert.deepEqual(await t.store.collectionsOf(A), [POST], 'the index is left as it was');
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('a repo over the limits is given up at once (no retries), counted as unreadable', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const q = queueOf(new CollectionIndexer(t.store), pds, { maxAttempts: 6 });
      try {
        await t.store.addPairs([{ did: A, collection: POST }]);
        q.syncAccepted(A, REV1);
        (await pds.call(0)).reject(new RepoFetchError('too-many-blocks', 'more than 1000000 blocks'));
        await q.whenIdle();
        assert.equal(pds.calls.length, 1, 'not fetched again');
        assert.equal(q.stats.unreadable, 1);
        assert.equal(q.stats.gaveUp, 1);
        assert.deepEqual(await markers(t.store), []);
        assert.deepEqual(await t.store.collectionsOf(A), [POST], 'the index is left as it was');
      } finally {
        await q.stop();
        await t.destroy();
      }
    });

    it('a full queue leaves DIDs persisted for resume() and the cleaner', async () => {
      const t = await fresh();
      const pds = new FakePds();
      const indexer = new CollectionIndexer(t.store);
      const q = queueOf(indexer, pds, { maxQueued: 1, delayMs: 60_000 });
      try {
        q.syncAccepted(A, REV1);
        q.syncAccepted(B, REV1);
        assert.equal(q.size, 1);
        assert.equal(q.stats.overflowed, 1);
        await indexer.markSyncPending(B); // waits for the queue's own writes of both markers
        assert.deepEqual((await markers(t.store)).sort(), [A, B]);
        await q.stop(); // a restart: markers stay
        assert.deepEqual((await markers(t.store)).sort(), [A, B]);

        const q2 = queueOf(indexer, pds, { maxQueued: 1 });
        try {
          assert.equal(await q2.resume(), 1);
          const cleaner = new CollectionCleaner({
            store: t.store,
            accountStatus: async () => 'active',
            fetchCollections: async () => {
              throw new Error('the cleaner must not fetch for a #sync marker');
            },
            syncQueue: q2,
            sweepBatchesPerRun: 0,
          });
          const first = await pds.call(0);
          first.resolve({ rev: REV1, collections: [LIKE] });
          await q2.whenIdle();
          await cleaner.runOnce(); // hands the second marker to the queue, now with room
          (await pds.call(1)).resolve({ rev: REV1, collections: [POST] });
          await q2.whenIdle();
          await cleaner.stop();
          assert.deepEqual(await t.store.collectionsOf(A), [LIKE]);
          assert.deepEqual(await t.store.collectionsOf(B), [POST]);
          assert.deepEqual(await markers(t.store), []);
          assert.equal(cleaner.stats.pendingSettled, 0);
        } finally {
          await q2.stop();
        }
      } finally {
        await q.stop();
        await t.destroy();
      }
    });
  });
}

const record = (collection: string, rkey: string) => ({
  action: 'create' as const,
  collection,
  rkey,
  record: { $type: collection, text: rkey },
});

describe('#sync recompute queue fed by the relay upkeep', () => {
  it('a commit passed to the upkeep during the fetch keeps the older repo from being applied', async () => {
    const t = await backends[0][1]();
    const pds = new FakePds();
    const indexer = new CollectionIndexer(t.store);
    const q = queueOf(indexer, pds);
    const upkeep = new CollectionIndexUpkeep(indexer, silentLogger, q);
    try {
      const repo = newRepo(A);
      const first = repo.applyWrites([record(POST, '3k1')]);
      upkeep.commitApplied(A, first.rev, commitEffect(indexed(first)));
      upkeep.syncAccepted(A, first.rev);
      const fetch1 = await pds.call(0);
      const second = repo.applyWrites([record(LIKE, '3k2')]);
      upkeep.commitApplied(A, second.rev, commitEffect(indexed(second)));
      fetch1.resolve({ rev: first.rev, collections: [POST] });
      const fetch2 = await pds.call(1);
      assert.equal(q.stats.stale, 1);
      fetch2.resolve({ rev: second.rev, collections: repo.collections() });
      await q.whenIdle();
      await upkeep.drain();
      assert.deepEqual(await t.store.collectionsOf(A), [LIKE, POST]);
      assert.equal(q.stats.recomputes, 1);
    } finally {
      await q.stop();
      await t.destroy();
    }
  });

  it("the relay's own resync settles the #sync it emitted, without a fetch", async () => {
    const t = await backends[0][1]();
    const pds = new FakePds();
    const indexer = new CollectionIndexer(t.store);
    const q = queueOf(indexer, pds, { delayMs: 50 });
    const upkeep = new CollectionIndexUpkeep(indexer, silentLogger, q);
    try {
      const repo = newRepo(A);
      const head = repo.applyWrites([record(POST, '3k1'), record(FOLLOW, '3k2')]);
      upkeep.syncAccepted(A, head.rev); // the log listener runs first …
      upkeep.repoResynced(A, { rev: head.rev, collections: repo.collections() }); // … then the resync's observer note
      await upkeep.drain();
      await q.whenIdle();
      assert.equal(pds.calls.length, 0);
      assert.equal(q.stats.covered, 1);
      assert.deepEqual(await t.store.collectionsOf(A), [POST, FOLLOW]);
      assert.deepEqual(await markers(t.store), []);
    } finally {
      await q.stop();
      await t.destroy();
    }
  });
});

describe('#sync recompute queue: pacing and the log listener', () => {
  it('starts at most perSecond fetches per second and stops cleanly with a fetch in flight', async () => {
    const t = await backends[0][1]();
    const pds = new FakePds();
    const q = queueOf(new CollectionIndexer(t.store), pds, { perSecond: 20, concurrency: 4 });
    try {
      for (let i = 0; i < 3; i++) q.syncAccepted(`did:plc:pace${i}`, REV1);
      await pds.call(2);
      const gaps = pds.startedAt.slice(1).map((at, i) => at - pds.startedAt[i]);
      for (const g of gaps) assert.ok(g >= 45, `fetch starts ${g.toFixed(1)} ms apart`);
      await q.stop(); // aborts the three fetches
      assert.equal(q.stats.recomputes, 0);
      assert.equal((await markers(t.store)).length, 3, 'queued DIDs stay persisted');
    } finally {
      await q.stop();
      await t.destroy();
    }
  });

  it('follows the committed-event stream: a #sync queues a recompute, the relay resync covers it', async () => {
    const t = await backends[0][1]();
    const pds = new FakePds();
    const indexer = new CollectionIndexer(t.store);
    const q = queueOf(indexer, pds);
    const upkeep = new CollectionIndexUpkeep(indexer, silentLogger, q);
    const committed = (meta: EventMeta): CommittedEvent => ({
      seq: 1,
      kind: 0,
      uid: 1,
      flags: 0,
      time: 0,
      frame: new Uint8Array(),
      meta,
    });
    try {
      const repo = newRepo(A);
      const first = repo.applyWrites([record(POST, '3k1')]);
      upkeep.onCommitted([
        committed({ type: '#commit', did: A, rev: first.rev, collections: commitEffect(indexed(first)) }),
        // an event read back from the log carries no meta: ignored
        { ...committed({ type: '#identity', did: A }), meta: undefined },
        committed({ type: '#sync', did: A, rev: REV2 }),
      ]);
      const fetch = await pds.call(0);
      upkeep.onCommitted([committed({ type: '#sync', did: A, rev: REV2, resync: { collections: [LIKE] } })]);
      fetch.resolve({ rev: first.rev, collections: [POST] });
      await q.whenIdle();
      await upkeep.drain();
      assert.deepEqual(await t.store.collectionsOf(A), [LIKE], 'the resync replaced the collections');
      upkeep.onCommitted([committed({ type: '#account', did: A, status: 'deleted' })]);
      await upkeep.drain();
      assert.deepEqual(await t.store.collectionsOf(A), []);
    } finally {
      await q.stop();
      await t.destroy();
    }
  });
});
