// The cleaner on both backends: pending checks settled against a (fake) PDS,
// the DID sweep against the relay's account states, resumed after reopening.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backends } from '../../test/support/collection-index-stores.ts';
import { waitFor } from '../../test/support/wait.ts';
import { RepoFetchError } from '../validate/repo-fetch.ts';
import { CollectionCleaner } from './cleaner.ts';

const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';
const did = (i: number) => `did:plc:c${String(i).padStart(3, '0')}`;

for (const [name, fresh] of backends) {
  describe(`collection cleaner: ${name}`, () => {
    it('settles pending checks: gone collection, gone repo, fetch failure', async () => {
      const t = await fresh();
      try {
        const s = t.store;
        await s.addPairs([
          { did: 'did:plc:a', collection: POST },
          { did: 'did:plc:a', collection: LIKE },
          { did: 'did:plc:b', collection: LIKE },
          { did: 'did:plc:c', collection: POST },
        ]);
        await s.addPendingChecks([
          { did: 'did:plc:a', collection: POST },
          { did: 'did:plc:a', collection: LIKE },
          { did: 'did:plc:b', collection: LIKE },
          { did: 'did:plc:c', collection: POST },
        ]);
        const cleaner = new CollectionCleaner({
          store: s,
          accountStatus: async () => 'active',
          fetchCollections: async (d) => {
            if (d === 'did:plc:a') return [LIKE];
            if (d === 'did:plc:b') return null;
            throw new Error('PDS unreachable');
          },
          onError: () => {},
        });
        const st = await cleaner.runOnce();
        assert.deepEqual(await s.collectionsOf('did:plc:a'), [LIKE]);
        assert.deepEqual(await s.collectionsOf('did:plc:b'), []);
        assert.deepEqual(await s.collectionsOf('did:plc:c'), [POST]);
        assert.deepEqual(await s.pendingChecks(10), [{ did: 'did:plc:c', collection: POST }]);
        assert.equal(st.pendingSettled, 3);
        assert.equal(st.pendingFailed, 1);
        assert.equal(st.pairsRemoved, 2);
      } finally {
        await t.destroy();
      }
    });

    it('settles the checks of a repo too large or broken to read, keeping its pairs, counted', async () => {
      const t = await fresh();
      try {
        const s = t.store;
        await s.addPairs([{ did: 'did:plc:big', collection: POST }]);
        await s.addPendingChecks([{ did: 'did:plc:big', collection: POST }]);
        const errors: unknown[] = [];
        const cleaner = new CollectionCleaner({
          store: s,
          accountStatus: async () => 'active',
          fetchCollections: async () => {
            throw new RepoFetchError('too-large', 'repo CAR exceeds 134217728 bytes');
          },
          onError: (err) => errors.push(err),
        });
        const st = await cleaner.runOnce();
        assert.deepEqual(await s.pendingChecks(10), [], 'not retried on every run');
        assert.deepEqual(await s.collectionsOf('did:plc:big'), [POST], 'what cannot be decided stays');
        assert.equal(st.pendingUnreadable, 1);
        assert.equal(st.pendingFailed, 0);
        assert.equal(errors.length, 1);
      } finally {
        await t.destroy();
      }
    });

    it('sweeps all DIDs in batches, resuming after a reopen', async () => {
      const t = await fresh();
      try {
        await t.store.addPairs(
          Array.from({ length: 25 }, (_, i) => [
            { did: did(i), collection: POST },
            { did: did(i), collection: LIKE },
          ]).flat(),
        );
        await t.store.setHidden(did(6), true); // hidden but active: to be shown again
        const status = (d: string): string | null => {
          const i = Number(d.slice(-3));
          if (i % 5 === 0) return 'deleted';
          if (i % 5 === 1) return 'takendown';
          if (i % 5 === 2) return null;
          return 'active';
        };
        const opts = { accountStatus: async (d: string) => status(d), sweepBatch: 4, sweepBatchesPerRun: 2 };
        const c1 = new CollectionCleaner({ store: t.store, ...opts });
        await c1.runOnce();
        assert.equal(c1.stats.didsSwept, 8);
        const s2 = await t.reopen();
        const c2 = new CollectionCleaner({ store: s2, ...opts });
        while (c2.stats.sweepsCompleted === 0) await c2.runOnce();
        assert.equal(c1.stats.didsSwept + c2.stats.didsSwept, 25, 'continued, not restarted');
        for (let i = 0; i < 25; i++) {
          const st = status(did(i));
          assert.deepEqual(await s2.collectionsOf(did(i)), st === 'deleted' ? [] : [LIKE, POST], did(i));
          assert.equal(await s2.isHidden(did(i)), st === 'takendown', did(i));
        }
        assert.equal(await s2.countPairs(), 2 * 20);
        const listed = await s2.listRepos(POST, 100);
        assert.equal(listed.items.length, 15);
      } finally {
        await t.destroy();
      }
    });

    it('runs periodically and stops cleanly', async () => {
      const t = await fresh();
      try {
        await t.store.addPairs([{ did: did(1), collection: POST }]);
        const c = new CollectionCleaner({
          store: t.store,
          accountStatus: async () => 'active',
          intervalMs: 5,
        });
        c.start();
        await waitFor(() => c.stats.runs >= 3, 'three runs');
        await c.stop();
        const runs = c.stats.runs;
        // a run still scheduled (due within 5 ms) would fire before this 20 ms timer
        await new Promise((r) => setTimeout(r, 20));
        assert.equal(c.stats.runs, runs);
      } finally {
        await t.destroy();
      }
    });
  });
}
