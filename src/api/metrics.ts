// The API's own Prometheus metrics: requests by route and status, and latency
// by route. Route labels are the fixed route paths (or "other"), never the raw
// URL, so a client cannot create unbounded label values. Pipeline metrics
// (events, validation, log, consumers, hosts, identity cache) are registered by
// their own stages on the same Registry.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface ApiMetrics {
  observe(route: string, method: string, status: number, seconds: number): void;
}

export const noMetrics: ApiMetrics = { observe() {} };

export function createApiMetrics(registry: Registry): ApiMetrics {
  const requests = new Counter({
    name: 'relay_api_requests_total',
    help: 'HTTP API requests (XRPC and admin), by route, method and status',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'relay_api_request_duration_seconds',
    help: 'HTTP API request latency by route',
    labelNames: ['route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return {
    observe(route, method, status, seconds) {
      requests.inc({ route, method, status: String(status) });
      latency.observe({ route }, seconds);
    },
  };
}

/** Anything with the identity cache's stats() (src/protocol/identity/identity-cache.ts). */
export interface IdentityStatsSource {
  stats(): {
    size: number;
    hits: number;
    staleHits: number;
    negativeHits: number;
    misses: number;
    /** Resolutions by result (absent on sources that do not resolve). */
    results?: Record<'ok' | 'not-found' | 'invalid' | 'transient', number>;
  };
}

export interface CacheMetricSources {
  /** The metadata store's account cache (cacheStats()). */
  store?: { cacheStats(): { size: number; capacity: number; hits: number; misses: number } };
  identity?: IdentityStatsSource;
}

/**
 * Cache gauges read at scrape time from the caches' own counters: the metadata
 * store's account cache and the identity cache. Neither module registers
 * metrics itself; the relay calls this once with the instances it built.
 * Hit rate is a PromQL ratio of the lookup counters.
 */
export function registerCacheMetrics(registry: Registry, sources: CacheMetricSources): void {
  const { store, identity } = sources;
  if (store) {
    new Gauge({
      name: 'relay_store_account_cache_entries',
      help: 'Accounts held in the metadata store cache',
      registers: [registry],
      collect() {
        this.set(store.cacheStats().size);
      },
    });
    const last = { hit: 0, miss: 0 };
    new Counter({
      name: 'relay_store_account_cache_lookups_total',
      help: 'Metadata store account cache lookups by result (hit, miss)',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        const s = store.cacheStats();
        this.inc({ result: 'hit' }, Math.max(0, s.hits - last.hit));
        this.inc({ result: 'miss' }, Math.max(0, s.misses - last.miss));
        last.hit = s.hits;
        last.miss = s.misses;
      },
    });
  }
  if (identity) {
    new Gauge({
      name: 'relay_identity_cache_entries',
      help: 'DIDs held in the identity cache (positive and negative entries)',
      registers: [registry],
      collect() {
        this.set(identity.stats().size);
      },
    });
    const last = { hit: 0, stale: 0, negative: 0, miss: 0 };
    new Counter({
      name: 'relay_identity_cache_lookups_total',
      help: 'Identity cache lookups by result (hit, stale, negative, miss)',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        const s = identity.stats();
        const now = { hit: s.hits, stale: s.staleHits, negative: s.negativeHits, miss: s.misses };
        for (const k of ['hit', 'stale', 'negative', 'miss'] as const) {
          this.inc({ result: k }, Math.max(0, now[k] - last[k]));
          last[k] = now[k];
        }
      },
    });
    const lastResult = { ok: 0, 'not-found': 0, invalid: 0, transient: 0 };
    new Counter({
      name: 'relay_identity_resolutions_total',
      help: 'DID document fetches by result (ok, not-found, invalid, transient: timeouts, 5xx, 429, network)',
      labelNames: ['result'],
      registers: [registry],
      collect() {
        const r = identity.stats().results;
        if (!r) return;
        for (const k of ['ok', 'not-found', 'invalid', 'transient'] as const) {
          this.inc({ result: k }, Math.max(0, r[k] - lastResult[k]));
          lastResult[k] = r[k];
        }
      },
    });
  }
}
