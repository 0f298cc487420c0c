// Upkeep from commits, account events and resync, on both backends: after
// every commit the index must equal the repo's true set of collections.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backends } from '../../test/support/collection-index-stores.ts';
import {
  indexed,
  newRepo,
  Prng,
  randomBatch,
  TRICKY_COLLECTIONS,
} from '../../test/support/collection-repos.ts';
import { BlockMap } from '../protocol/car.ts';
import { digestRepoCar } from '../protocol/repo-car.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { CollectionIndexer } from './upkeep.ts';

const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';

for (const [name, fresh] of backends) {
  describe(`collection index upkeep: ${name}`, () => {
    const withIndexer =
      (fn: (ix: CollectionIndexer, s: CollectionIndexStore) => Promise<void>) => async () => {
        const t = await fresh();
        try {
          await fn(new CollectionIndexer(t.store), t.store);
        } finally {
          await t.destroy();
        }
      };

    it(
      'create/delete sequences, down to the last record of the last collection',
      withIndexer(async (ix, s) => {
        const did = 'did:plc:seq';
        const repo = newRepo(did);
        const step = async (writes: Parameters<typeof repo.applyWrites>[0]) => {
          const r = await ix.applyCommit(indexed(repo.applyWrites(writes)));
          assert.deepEqual(await s.collectionsOf(did), repo.collections());
          return r;
        };
        await step([{ action: 'create', collection: POST, rkey: 'p1' }]);
        await step([
          { action: 'create', collection: POST, rkey: 'p2' },
          { action: 'create', collection: LIKE, rkey: 'l1' },
        ]);
        // Not the last post: stays.
        assert.deepEqual((await step([{ action: 'delete', collection: POST, rkey: 'p1' }])).removed, []);
        // Delete and create in the same collection in one commit: stays.
        await step([
          { action: 'delete', collection: POST, rkey: 'p2' },
          { action: 'create', collection: POST, rkey: 'p3' },
        ]);
        // The last post.
        assert.deepEqual((await step([{ action: 'delete', collection: POST, rkey: 'p3' }])).removed, [POST]);
        assert.deepEqual((await s.listRepos(POST, 10)).items, []);
        assert.deepEqual((await s.listRepos(LIKE, 10)).items, [did]);
        // The last record of the last collection.
        assert.deepEqual((await step([{ action: 'delete', collection: LIKE, rkey: 'l1' }])).removed, [LIKE]);
        assert.equal(await s.countPairs(), 0);
        assert.equal(ix.stats.deletesUndecided, 0);
      }),
    );

    it(
      'random commits over several accounts keep the index equal to the repos',
      withIndexer(async (ix, s) => {
        const prng = new Prng(`upkeep:${name}`);
        const repos = Array.from({ length: 4 }, (_, i) => newRepo(`did:plc:acct${i}`));
        const colls = [...TRICKY_COLLECTIONS, 'x.y.one', 'x.y.two'];
        const pending: Promise<unknown>[] = [];
        for (let step = 0; step < 160; step++) {
          const repo = repos[prng.int(repos.length)];
          const writes = randomBatch(prng, repo, colls, 0.5);
          if (writes.length === 0) continue;
          // Not awaited one by one: per-DID ordering must hold anyway.
          pending.push(ix.applyCommit(indexed(repo.applyWrites(writes))));
        }
        await Promise.all(pending);
        for (const repo of repos) assert.deepEqual(await s.collectionsOf(repo.did), repo.collections());
        assert.equal(ix.stats.deletesUndecided, 0);
        assert.ok(ix.stats.pairsRemoved > 0);
        let expectedPairs = 0;
        for (const repo of repos) expectedPairs += repo.collections().length;
        assert.equal(await s.countPairs(), expectedPairs);
      }),
    );

    it(
      'an undecidable delete becomes a counted pending check',
      withIndexer(async (ix, s) => {
        const repo = newRepo('did:plc:noproof');
        await ix.applyCommit(indexed(repo.applyWrites([{ action: 'create', collection: POST, rkey: 'a' }])));
        const res = repo.applyWrites([{ action: 'delete', collection: POST, rkey: 'a' }]);
        const r = await ix.applyCommit({ ...indexed(res), blocks: new BlockMap() });
        assert.deepEqual(r, { added: [], removed: [], unknown: [POST] });
        assert.equal(ix.stats.deletesUndecided, 1);
        assert.deepEqual(await s.pendingChecks(10), [{ did: 'did:plc:noproof', collection: POST }]);
        // The pair stays until the check is settled.
        assert.deepEqual(await s.collectionsOf('did:plc:noproof'), [POST]);
      }),
    );

    it(
      'account deletion removes, takedown hides, reactivation shows again',
      withIndexer(async (ix, s) => {
        await s.addPairs([
          { did: 'did:plc:a', collection: POST },
          { did: 'did:plc:b', collection: POST },
        ]);
        await ix.applyAccountStatus('did:plc:a', 'takendown');
        assert.deepEqual((await s.listRepos(POST, 10)).items, ['did:plc:b']);
        await ix.applyAccountStatus('did:plc:a', 'active');
        assert.deepEqual((await s.listRepos(POST, 10)).items, ['did:plc:a', 'did:plc:b']);
        await ix.applyAccountStatus('did:plc:b', 'deleted');
        assert.deepEqual(await s.collectionsOf('did:plc:b'), []);
        assert.equal(await s.countPairs(), 1);
      }),
    );

    it(
      'resync recomputes the account from its repo and settles pending checks',
      withIndexer(async (ix, s) => {
        const did = 'did:plc:resync';
        const repo = newRepo(did);
        repo.applyWrites([
          { action: 'create', collection: POST, rkey: 'a' },
          { action: 'create', collection: 'x.y.z', rkey: 'b' },
        ]);
        // The index drifted: a stale collection, a missing one, a pending check.
        await s.addPairs([
          { did, collection: LIKE },
          { did, collection: POST },
        ]);
        await s.addPendingChecks([{ did, collection: LIKE }]);
        const limits = { maxBytes: 1 << 20, maxBlocks: 1000 };
        const { collections } = digestRepoCar(repo.exportCar(), { ...limits, did });
        assert.deepEqual(collections, [POST, 'x.y.z']);
        assert.deepEqual(await ix.resync(did, collections), { added: 1, removed: 1 });
        assert.deepEqual(await s.collectionsOf(did), [POST, 'x.y.z']);
        assert.equal(await s.countPendingChecks(), 0);
      }),
    );
  });
}
