// `/_stats`: the relay's numbers at a glance, aggregated from the stores and
// the firehose (not from Prometheus, so it works without a scraper). Counting
// accounts walks the host table (account counts are kept per host), which is
// cheap for thousands of hosts but not free, so the result is cached for a
// few seconds: a dashboard polling /_stats costs at most one walk per TTL.
import type { EventLog } from '../eventlog/types.ts';
import type { FirehoseServer } from '../firehose/server.ts';
import type { HostStatus, MetadataStore } from '../store/metadata-store.ts';
import type { IdentityStatsSource } from './metrics.ts';

export interface StatsDeps {
  store: MetadataStore;
  eventLog: Pick<EventLog, 'head' | 'oldest' | 'sizeBytes'>;
  firehose?: Pick<FirehoseServer, 'listConsumers'>;
  /** The identity cache, for its size and hit rate. */
  identity?: IdentityStatsSource;
  /** Extra sections from other stages (ingest), merged in as is. */
  extra?: () => Record<string, unknown>;
  cacheMs?: number;
  now?: () => number;
}

export interface RelayStats {
  time: string;
  uptimeSeconds: number;
  hosts: { total: number; byStatus: Record<HostStatus, number> };
  accounts: { total: number; cache: { size: number; capacity: number; hitRate: number } };
  eventLog: { head: number; oldest: number; sizeBytes: number };
  consumers: { connected: number; live: number; maxLag: number };
  identityCache?: { size: number; hitRate: number };
  [section: string]: unknown;
}

const HOST_PAGE = 1000;

export function createStatsProvider(deps: StatsDeps): () => Promise<RelayStats> {
  const ttl = deps.cacheMs ?? 2000;
  const now = deps.now ?? Date.now;
  let cached: { at: number; value: Promise<RelayStats> } | undefined;
  return () => {
    const t = now();
    if (!cached || t - cached.at >= ttl) {
      const value = collect(deps, t);
      cached = { at: t, value };
      // A failed collection is not cached.
      value.catch(() => {
        if (cached?.value === value) cached = undefined;
      });
    }
    return cached.value;
  };
}

async function collect(deps: StatsDeps, t: number): Promise<RelayStats> {
  const { store } = deps;
  const byStatus = await store.countHostsByStatus();
  let accounts = 0;
  let after: number | undefined;
  for (;;) {
    const page = await store.listHosts({ after, limit: HOST_PAGE });
    for (const h of page) accounts += h.accountCount;
    if (page.length < HOST_PAGE) break;
    after = page[page.length - 1].id;
  }
  const cache = store.cacheStats();
  const lookups = cache.hits + cache.misses;
  const consumers = deps.firehose?.listConsumers() ?? [];
  return {
    time: new Date(t).toISOString(),
    uptimeSeconds: Math.round(process.uptime()),
    hosts: { total: Object.values(byStatus).reduce((a, b) => a + b, 0), byStatus },
    accounts: {
      total: accounts,
      cache: {
        size: cache.size,
        capacity: cache.capacity,
        hitRate: ratio(cache.hits, lookups),
      },
    },
    eventLog: {
      head: deps.eventLog.head(),
      oldest: deps.eventLog.oldest(),
      sizeBytes: deps.eventLog.sizeBytes(),
    },
    consumers: {
      connected: consumers.length,
      live: consumers.filter((c) => c.state === 'live').length,
      maxLag: consumers.reduce((m, c) => Math.max(m, c.lag), 0),
    },
    ...(deps.identity ? { identityCache: identitySection(deps.identity) } : {}),
    ...(deps.extra?.() ?? {}),
  };
}

function ratio(part: number, whole: number): number {
  return whole === 0 ? 0 : Number((part / whole).toFixed(4));
}

function identitySection(identity: IdentityStatsSource): { size: number; hitRate: number } {
  const s = identity.stats();
  const hits = s.hits + s.staleHits + s.negativeHits;
  return { size: s.size, hitRate: ratio(hits, hits + s.misses) };
}
