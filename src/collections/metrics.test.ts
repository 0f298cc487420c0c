// Metrics are read from the components at scrape time, without double counting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { indexed, newRepo } from '../../test/support/collection-repos.ts';
import { registerCollectionMetrics } from './metrics.ts';
import { SqliteCollectionIndex } from './sqlite-index.ts';
import { CollectionIndexer } from './upkeep.ts';

describe('collection metrics', () => {
  it('exposes upkeep counters at scrape time', async () => {
    const store = new SqliteCollectionIndex({ path: ':memory:' });
    try {
      const ix = new CollectionIndexer(store);
      const r = new Registry();
      registerCollectionMetrics(r, { indexer: ix });
      const repo = newRepo('did:plc:metrics');
      await ix.applyCommit(indexed(repo.applyWrites([{ action: 'create', collection: 'a.b.c', rkey: 'x' }])));
      await ix.applyCommit(indexed(repo.applyWrites([{ action: 'delete', collection: 'a.b.c', rkey: 'x' }])));
      const text = await r.metrics();
      assert.match(text, /relay_collections_commits_total 2/);
      assert.match(text, /relay_collections_pairs_removed_total 1/);
      assert.match(text, /relay_collections_deletes_decided_total 1/);
      assert.match(text, /relay_collections_deletes_undecided_total 0/);
      // A second scrape does not double count.
      assert.match(await r.metrics(), /relay_collections_commits_total 2/);
    } finally {
      await store.close();
    }
  });
});
