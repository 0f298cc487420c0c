// The Hosts page's table, searched, sorted and paged on the server so the
// browser only ever holds one page (50 rows by default) however many hosts
// the relay follows. The admin API pages hosts by id only; this module reads
// the host table once per `cacheMs` (walking the store in pages, at most
// `maxHosts` rows), joins each row with ingest's live state (connected,
// in-memory cursor, queue, last error, effective rate limits) and the current
// frame rate from the Overview sampler, and answers a filtered, sorted slice.
import type {
  HostControl,
  HostLiveState,
  HostRateLimits,
  RateLimitOverride,
} from '../ingest/host-control.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';

export interface HostRow {
  hostname: string;
  status: string;
  connected: boolean;
  /** Subscriber state (open, connecting, waiting, …) or null when ingest has no subscriber. */
  state: string | null;
  accountCount: number;
  accountLimit: number;
  trusted: boolean;
  /** Cursor stored for restarts. */
  cursor: number;
  /** Cursor ingest has processed in memory (runs ahead of the stored one). */
  liveCursor: number | null;
  /** Frames read from the host and not yet finished (queued + in validation): how far behind upstream it is. */
  backlog: number;
  /** Frames per second over the last sampled interval. */
  rate: number;
  rateLimits: HostRateLimits | null;
  rateLimitOverride: RateLimitOverride | null;
  failures: number;
  lastError: string | null;
  updatedAt: string;
}

export const HOST_SORT_KEYS = [
  'hostname',
  'status',
  'accountCount',
  'rate',
  'backlog',
  'failures',
  'cursor',
  'updatedAt',
] as const;
export type HostSortKey = (typeof HOST_SORT_KEYS)[number];

export interface HostQuery {
  /** Case-insensitive substring of the hostname, status or last error. */
  search?: string;
  sort?: HostSortKey;
  descending?: boolean;
  offset?: number;
  limit?: number;
}

export interface HostPage {
  total: number;
  /** Hosts matching the search (before paging). */
  matched: number;
  offset: number;
  rows: HostRow[];
  /** True when the relay follows more than `maxHosts` hosts and only the first ones are listed. */
  truncated: boolean;
}

export interface HostsTableOptions {
  store: Pick<MetadataStore, 'listHosts'>;
  hosts?: Pick<HostControl, 'liveState'>;
  /** Frames per second by hostname (OverviewSampler.hostRates). */
  rates?: () => Map<string, number>;
  cacheMs?: number;
  /** Most hosts read from the store per refresh (default 100,000). */
  maxHosts?: number;
  now?: () => number;
}

const STORE_PAGE = 1000;

export class HostsTable {
  private cached?: { at: number; rows: Promise<{ rows: HostRow[]; truncated: boolean }> };
  private readonly cacheMs: number;
  private readonly maxHosts: number;
  private readonly now: () => number;

  constructor(private readonly opts: HostsTableOptions) {
    this.cacheMs = opts.cacheMs ?? 2000;
    this.maxHosts = opts.maxHosts ?? 100_000;
    this.now = opts.now ?? Date.now;
  }

  /** Forgets the cached rows (after an action changed a host). */
  invalidate(): void {
    this.cached = undefined;
  }

  async query(q: HostQuery): Promise<HostPage> {
    const { rows, truncated } = await this.rows();
    const needle = q.search?.trim().toLowerCase() ?? '';
    const matched = needle
      ? rows.filter(
          (r) =>
            r.hostname.includes(needle) ||
            r.status === needle ||
            (r.lastError?.toLowerCase().includes(needle) ?? false),
        )
      : [...rows];
    const key = q.sort ?? 'hostname';
    const dir = q.descending ? -1 : 1;
    matched.sort((a, b) => {
      const x = a[key];
      const y = b[key];
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return c !== 0 ? c * dir : a.hostname.localeCompare(b.hostname);
    });
    const limit = Math.min(Math.max(1, q.limit ?? 50), 500);
    const offset = Math.min(Math.max(0, q.offset ?? 0), Math.max(0, matched.length - 1));
    return {
      total: rows.length,
      matched: matched.length,
      offset,
      rows: matched.slice(offset, offset + limit),
      truncated,
    };
  }

  private rows(): Promise<{ rows: HostRow[]; truncated: boolean }> {
    const t = this.now();
    if (!this.cached || t - this.cached.at >= this.cacheMs) {
      const rows = this.load();
      this.cached = { at: t, rows };
      rows.catch(() => {
        if (this.cached?.rows === rows) this.cached = undefined;
      });
    }
    return this.cached.rows;
  }

  private async load(): Promise<{ rows: HostRow[]; truncated: boolean }> {
    const rates = this.opts.rates?.() ?? new Map<string, number>();
    const out: HostRow[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await this.opts.store.listHosts({ after, limit: STORE_PAGE });
      for (const h of page) {
        if (out.length >= this.maxHosts) return { rows: out, truncated: true };
        out.push(hostRow(h, this.opts.hosts?.liveState?.(h.id), rates.get(h.hostname) ?? 0));
      }
      if (page.length < STORE_PAGE) return { rows: out, truncated: false };
      after = page[page.length - 1].id;
    }
  }
}

function hostRow(h: Host, live: HostLiveState | undefined, rate: number): HostRow {
  return {
    hostname: h.hostname,
    status: h.status,
    connected: live?.connected ?? false,
    state: live?.state ?? null,
    accountCount: h.accountCount,
    accountLimit: h.accountLimit,
    trusted: h.trusted,
    cursor: h.cursor,
    liveCursor: live?.cursor ?? null,
    backlog: (live?.queued ?? 0) + (live?.inFlight ?? 0),
    rate: Math.round(rate * 100) / 100,
    rateLimits: live?.rateLimits ?? null,
    rateLimitOverride: live?.rateLimitOverride ?? null,
    failures: live?.failures ?? h.failures,
    lastError: live?.lastError ?? null,
    updatedAt: h.updatedAt.toISOString(),
  };
}
