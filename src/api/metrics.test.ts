import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { registerCacheMetrics } from './metrics.ts';
import { createStatsProvider } from './stats.ts';

describe('cache metrics', () => {
  it('reports the account and identity caches at scrape time, counters by delta', async () => {
    const registry = new Registry();
    const store = { cacheStats: () => ({ size: 3, capacity: 10, hits: 8, misses: 2 }) };
    const ident = { size: 5, hits: 1, staleHits: 2, negativeHits: 3, misses: 4 };
    registerCacheMetrics(registry, { store, identity: { stats: () => ident } });
    let text = await registry.metrics();
    assert.match(text, /^relay_store_account_cache_entries 3$/m);
    assert.match(text, /^relay_store_account_cache_lookups_total\{result="hit"\} 8$/m);
    assert.match(text, /^relay_store_account_cache_lookups_total\{result="miss"\} 2$/m);
    assert.match(text, /^relay_identity_cache_entries 5$/m);
    assert.match(text, /^relay_identity_cache_lookups_total\{result="negative"\} 3$/m);
    ident.hits = 11;
    text = await registry.metrics();
    assert.match(text, /^relay_identity_cache_lookups_total\{result="hit"\} 11$/m, 'no double counting');
  });
});

describe('stats provider', () => {
  it('caches for its TTL and includes the identity cache', async () => {
    let t = 0;
    let listed = 0;
    const store = {
      countHostsByStatus: async () => ({
        active: 2,
        idle: 0,
        offline: 1,
        throttled: 0,
        banned: 0,
        blocked: 0,
      }),
      listHosts: async () => {
        listed++;
        return [
          { id: 1, accountCount: 4 },
          { id: 2, accountCount: 6 },
        ];
      },
      cacheStats: () => ({ size: 1, capacity: 10, hits: 3, misses: 1 }),
    };
    const stats = createStatsProvider({
      // Only the methods the provider calls.
      store: store as unknown as Parameters<typeof createStatsProvider>[0]['store'],
      eventLog: { head: () => 9, oldest: () => 1, sizeBytes: () => 100 },
      identity: { stats: () => ({ size: 7, hits: 6, staleHits: 1, negativeHits: 1, misses: 2 }) },
      cacheMs: 1000,
      now: () => t,
    });
    const s = await stats();
    assert.equal(s.hosts.total, 3);
    assert.equal(s.accounts.total, 10);
    assert.equal(s.accounts.cache.hitRate, 0.75);
    assert.deepEqual(s.identityCache, { size: 7, hitRate: 0.8 });
    assert.deepEqual(s.eventLog, { head: 9, oldest: 1, sizeBytes: 100 });
    await stats();
    assert.equal(listed, 1, 'cached');
    t = 1000;
    await stats();
    assert.equal(listed, 2, 'refreshed after the TTL');
  });
});
