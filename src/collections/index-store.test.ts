// The collection index store contract, run against SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pg from 'pg';
import { backends, PG_URL } from '../../test/support/collection-index-stores.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { openCollectionIndex } from './open-index.ts';

const did = (i: number) => `did:plc:${String(i).padStart(6, '0')}`;
const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';

async function allRepos(store: CollectionIndexStore, collection: string, limit: number): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await store.listRepos(collection, limit, cursor);
    out.push(...page.items);
    if (!page.cursor) return out;
    cursor = page.cursor;
  }
}

for (const [name, fresh] of backends) {
  describe(`collection index store: ${name}`, () => {
    const withStore = (fn: (s: CollectionIndexStore) => Promise<void>) => async () => {
      const t = await fresh();
      try {
        await fn(t.store);
      } finally {
        await t.destroy();
      }
    };

    it(
      'calls made without awaiting apply in call order, and later reads and writes see them',
      withStore(async (s) => {
        // backends group-commit pair writes; the result must be as if each ran at once
        const calls = [
          s.addPairs([{ did: did(1), collection: POST }]),
          s.removePairs([{ did: did(1), collection: POST }]),
          s.removePairs([{ did: did(2), collection: POST }]),
          s.addPairs([{ did: did(2), collection: POST }]),
          s.addPairs([{ did: did(3), collection: LIKE }]),
          s.addPairs([{ did: did(3), collection: LIKE }]),
          s.addPendingChecks([{ did: did(4), collection: POST }]),
        ];
        const removeAll = s.removeAccount(did(3));
        const reads = Promise.all([s.collectionsOf(did(1)), s.collectionsOf(did(2)), s.countPairs()]);
        assert.deepEqual(await Promise.all(calls), [1, 1, 0, 1, 1, 0, undefined]);
        assert.equal(await removeAll, 1);
        assert.deepEqual(await reads, [[], [POST], 1]);
        assert.equal(await s.countPendingChecks(), 1);
      }),
    );

    it(
      'adds and removes pairs idempotently, keeping counts exact',
      withStore(async (s) => {
        assert.equal(await s.addPairs([{ did: did(1), collection: POST }]), 1);
        assert.equal(
          await s.addPairs([
            { did: did(1), collection: POST },
            { did: did(1), collection: LIKE },
            { did: did(2), collection: POST },
            { did: did(2), collection: POST },
          ]),
          2,
        );
        assert.equal(await s.countPairs(), 3);
        assert.deepEqual(await s.collectionsOf(did(1)), [LIKE, POST]);
        assert.deepEqual((await s.listCollections(10)).items, [
          { collection: LIKE, count: 1 },
          { collection: POST, count: 2 },
        ]);
        assert.equal(await s.removePairs([{ did: did(1), collection: LIKE }]), 1);
        assert.equal(await s.removePairs([{ did: did(1), collection: LIKE }]), 0);
        assert.equal(await s.removePairs([{ did: did(1), collection: 'never.seen.coll' }]), 0);
        // A collection with no pairs left is not listed.
        assert.deepEqual((await s.listCollections(10)).items, [{ collection: POST, count: 2 }]);
        assert.deepEqual(await s.collectionsOf(did(1)), [POST]);
        assert.equal(await s.countPairs(), 2);
      }),
    );

    it(
      'setCollections makes the account match exactly',
      withStore(async (s) => {
        await s.addPairs([
          { did: did(1), collection: POST },
          { did: did(1), collection: LIKE },
          { did: did(2), collection: LIKE },
        ]);
        assert.deepEqual(await s.setCollections(did(1), [LIKE, 'app.bsky.graph.follow']), {
          added: 1,
          removed: 1,
        });
        assert.deepEqual(await s.collectionsOf(did(1)), [LIKE, 'app.bsky.graph.follow']);
        assert.deepEqual(await s.setCollections(did(1), []), { added: 0, removed: 2 });
        assert.deepEqual(await s.collectionsOf(did(1)), []);
        assert.deepEqual(await s.collectionsOf(did(2)), [LIKE]);
        assert.equal(await s.countPairs(), 1);
      }),
    );

    it(
      'removeAccount drops pairs, hidden flag and pending checks; hidden accounts are not listed',
      withStore(async (s) => {
        await s.addPairs([
          { did: did(1), collection: POST },
          { did: did(2), collection: POST },
          { did: did(3), collection: POST },
        ]);
        await s.setHidden(did(2), true);
        assert.equal(await s.isHidden(did(2)), true);
        assert.deepEqual((await s.listRepos(POST, 10)).items, [did(1), did(3)]);
        await s.setHidden(did(2), false);
        assert.deepEqual((await s.listRepos(POST, 10)).items, [did(1), did(2), did(3)]);
        await s.setHidden(did(3), true);
        await s.addPendingChecks([{ did: did(3), collection: POST }]);
        assert.equal(await s.removeAccount(did(3)), 1);
        assert.equal(await s.isHidden(did(3)), false);
        assert.equal(await s.countPendingChecks(), 0);
        assert.deepEqual((await s.listCollections(10)).items, [{ collection: POST, count: 2 }]);
        assert.deepEqual((await s.listRepos('unknown.coll.name', 10)).items, []);
      }),
    );

    it(
      'paginates listRepos, listCollections and listDids in byte order',
      withStore(async (s) => {
        const dids = ['did:plc:b', 'did:plc:B', 'did:web:a.com', 'did:plc:a', 'did:plc:aa', 'did:plc:_'];
        await s.addPairs(dids.map((d) => ({ did: d, collection: POST })));
        const sorted = [...dids].sort();
        for (const limit of [1, 2, 5, 6, 100]) assert.deepEqual(await allRepos(s, POST, limit), sorted);
        const p = await s.listRepos(POST, 2);
        assert.deepEqual(p, { items: sorted.slice(0, 2), cursor: sorted[1] });
        await s.addPairs([
          { did: 'did:plc:x', collection: 'a.b.c' },
          { did: 'did:plc:x', collection: 'a.b.d' },
        ]);
        const c1 = await s.listCollections(2);
        assert.deepEqual(
          c1.items.map((c) => c.collection),
          ['a.b.c', 'a.b.d'],
        );
        const c2 = await s.listCollections(2, c1.cursor);
        assert.deepEqual(c2.items, [{ collection: POST, count: 6 }]);
        assert.equal(c2.cursor, undefined);
        const d1 = await s.listDids(4);
        const d2 = await s.listDids(4, d1.cursor);
        assert.deepEqual([...d1.items, ...d2.items], [...sorted, 'did:plc:x'].sort());
      }),
    );

    it(
      'pagination stays stable under concurrent writes',
      withStore(async (s) => {
        // Stable: ids 0..199 with even i present throughout; odd ones churn.
        await s.addPairs(Array.from({ length: 200 }, (_, i) => ({ did: did(i), collection: POST })));
        const seen: string[] = [];
        let cursor: string | undefined;
        let round = 0;
        for (;;) {
          const page = await s.listRepos(POST, 7, cursor);
          seen.push(...page.items);
          // Writes between pages: remove odd DIDs ahead and behind, add new ones everywhere.
          const r = round++;
          await Promise.all([
            s.removePairs([{ did: did((r * 14 + 1) % 200), collection: POST }]),
            s.addPairs([{ did: `${did((r * 37) % 200)}x`, collection: POST }]),
            s.removePairs([{ did: did((r * 22 + 3) % 200), collection: POST }]),
          ]);
          if (!page.cursor) break;
          cursor = page.cursor;
        }
        assert.equal(new Set(seen).size, seen.length, 'no DID returned twice');
        assert.deepEqual(seen, [...seen].sort(), 'DID order');
        for (let i = 0; i < 200; i += 2) assert.ok(seen.includes(did(i)), `${did(i)} present throughout`);
      }),
    );

    it(
      'concurrent calls keep call order and per-call counts (PostgreSQL merges them)',
      withStore(async (s) => {
        const p = { did: did(1), collection: POST };
        const q = { did: did(2), collection: LIKE };
        const results = await Promise.all([
          s.addPairs([p]),
          s.addPairs([p, q]),
          s.removePairs([p]),
          s.removePairs([p]),
          s.addPairs([p]),
          s.setHidden(did(9), true),
          s.addPairs([q, { did: did(3), collection: POST }]),
        ]);
        assert.deepEqual(results, [1, 1, 1, 0, 1, undefined, 1]);
        assert.deepEqual((await s.listCollections(10)).items, [
          { collection: LIKE, count: 1 },
          { collection: POST, count: 2 },
        ]);
        // Many single-pair calls at once, as the firehose makes them.
        const many = await Promise.all(
          Array.from({ length: 300 }, (_, i) =>
            s.addPairs([{ did: did(100 + (i % 150)), collection: POST }]),
          ),
        );
        assert.equal(
          many.reduce((a, b) => a + b, 0),
          150,
        );
        assert.equal(await s.countPairs(), 153);
      }),
    );

    it(
      'keeps pending checks and backfill progress',
      withStore(async (s) => {
        await s.addPendingChecks([
          { did: did(1), collection: POST },
          { did: did(1), collection: POST },
          { did: did(2), collection: LIKE },
        ]);
        assert.equal(await s.countPendingChecks(), 2);
        assert.equal((await s.pendingChecks(1)).length, 1);
        await s.removePendingCheck({ did: did(1), collection: POST });
        assert.deepEqual(await s.pendingChecks(10), [{ did: did(2), collection: LIKE }]);

        await s.saveBackfillItem('job', { item: POST, cursor: null, done: false, pairs: 0 });
        await s.saveBackfillItem('job', { item: POST, cursor: 'did:plc:x', done: false, pairs: 500 });
        await s.saveBackfillItem('job', { item: LIKE, cursor: null, done: true, pairs: 3 });
        await s.saveBackfillItem('other', { item: LIKE, cursor: null, done: false, pairs: 0 });
        assert.deepEqual(await s.backfillItems('job'), [
          { item: LIKE, cursor: null, done: true, pairs: 3 },
          { item: POST, cursor: 'did:plc:x', done: false, pairs: 500 },
        ]);
        await s.clearBackfill('job');
        assert.deepEqual(await s.backfillItems('job'), []);
        assert.equal((await s.backfillItems('other')).length, 1);
      }),
    );
  });
}

describe('openCollectionIndex', () => {
  it('opens SQLite under dataDir, PostgreSQL for a postgres URL, refuses other URLs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atrelay-open-'));
    const lite = await openCollectionIndex({ dataDir: join(dir, 'sub') });
    try {
      assert.equal(lite.kind, 'sqlite');
      assert.ok(existsSync(join(dir, 'sub', 'collections.sqlite')));
    } finally {
      await lite.close();
      rmSync(dir, { recursive: true, force: true });
    }
    await assert.rejects(openCollectionIndex({ dataDir: dir, databaseUrl: 'mysql://x' }));
    const schema = `atrelay_open_${Date.now().toString(36)}`;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE SCHEMA ${schema}`);
      const store = await openCollectionIndex({ dataDir: dir, databaseUrl: PG_URL, pgSchema: schema });
      assert.equal(store.kind, 'postgres');
      await store.close();
    } finally {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  });
});
