// HostControl: what the admin API (src/api/admin.ts, requestCrawl in
// src/api/xrpc.ts) may do to upstream hosts, and what it may read of their
// live state. The ingest stage owns the interface because it owns the
// answers: HostManager (host-manager.ts) implements it directly, and the API
// only parses and authorises requests; every decision that needs the network
// or live connection state (is the host reachable, is it over the daily new-
// host limit, may `localhost:PORT` be used, drop the socket of a blocked host)
// is made here. requestCrawl and addHost get the hostname as the client sent
// it (trimmed, checked to be a valid host name), because a scheme such as
// `http://` carries the TLS choice; the other methods get it normalised
// (lower case, no scheme, optional `:port`). Refusals are results, not throws.
// Below the interface are the helpers HostManager answers with: hostname to
// host id, CrawlRefusedError to a result, and the live-state snapshot (taken
// once per second at most, so listing hundreds of hosts costs one snapshot,
// not one scan per host; every change drops it so its answer shows the change).
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import { CrawlRefusedError } from './host-policy.ts';
import type { HostRateLimits, RateLimitOverride } from './rate-limiter.ts';

export type { HostRateLimits, RateLimitOverride } from './rate-limiter.ts';

export type HostControlResult =
  | { ok: true; host?: Host }
  | { ok: false; status: number; error: string; message: string };

/** Live, in-memory state of one host that the store does not hold. */
export interface HostLiveState {
  connected: boolean;
  /** Effective limits (computed from account count and trust, with any operator override). */
  rateLimits?: HostRateLimits;
  /** The operator's override (POST /admin/hosts/rate-limits), when one is set. */
  rateLimitOverride?: RateLimitOverride;
  /** What the limits would be without an override. */
  defaultRateLimits?: HostRateLimits;
  /** Subscriber state (`waiting`, `connecting`, `open`, `draining`, `inactive`, …). */
  state?: string;
  /** Upstream seq processed in memory (the store's cursor trails it by the flush interval). */
  cursor?: number;
  /** Frames handed to validation and not yet finished. */
  inFlight?: number;
  /** Frames read but waiting for an in-flight slot or a rate-limit token. */
  queued?: number;
  /**
   * Frames read past the cursor, finished or not: many while the cursor
   * stands still means one slow frame holds it (RELAY_HOST_CURSOR_WINDOW).
   */
  pastCursor?: number;
  /** Socket reading paused (back-pressure or rate limit). */
  paused?: boolean;
  /** Consecutive connection failures. */
  failures?: number;
  lastError?: string;
  eventsReceived?: number;
  /** Accounts of this host currently throttled by the rate limiter, if ingest tracks them apart. */
  throttled?: number;
}

export interface HostControl {
  /**
   * com.atproto.sync.requestCrawl: checks (domain bans, reachability, the
   * daily new-host limit unless `admin`) and subscribes. A known host is
   * reconnected if it is idle/offline. `admin` also allows insecure hosts when
   * the relay is configured for them.
   */
  requestCrawl(hostname: string, opts: { admin: boolean }): Promise<HostControlResult>;
  /** Admin add: like requestCrawl with admin rights (bypasses the daily limit). */
  addHost(hostname: string): Promise<HostControlResult>;
  /** Marks the host blocked and drops its connection. */
  blockHost(hostname: string): Promise<HostControlResult>;
  /** Clears a block and resubscribes. */
  unblockHost(hostname: string): Promise<HostControlResult>;
  /** Drops and re-dials the connection (also revives an offline host). */
  reconnectHost(hostname: string): Promise<HostControlResult>;
  setAccountLimit(hostname: string, limit: number): Promise<HostControlResult>;
  /** Per-host event rate limit override (0 in a change means back to the default). */
  setRateLimits?(hostname: string, limits: RateLimitOverride): Promise<HostControlResult>;
  setTrusted(hostname: string, trusted: boolean): Promise<HostControlResult>;
  /**
   * Sets the host's upstream cursor (null: none, read live) and resubscribes
   * from it once in-flight frames have finished; an idle/offline host becomes
   * active. The result's host carries the new cursor and status. Refuses a
   * blocked or banned host (409).
   */
  resetCursor?(hostname: string, cursor: number | null): Promise<HostControlResult>;
  /** Live state for the admin host listing; undefined when not connected or unknown. */
  liveState?(hostId: number): HostLiveState | undefined;
}

/** A CrawlRefusedError as a result; anything else is thrown on. */
export function refusalResult(err: unknown): HostControlResult {
  if (err instanceof CrawlRefusedError) {
    return { ok: false, status: err.status, error: err.error, message: err.message };
  }
  throw err;
}

/**
 * Runs `act` on the host named `hostname` (404 HostNotFound if unknown) and
 * answers with the host as the store holds it afterwards. CrawlRefusedError
 * becomes its result; any other error a 400 InvalidRequest with its message
 * (HostManager.reconnect refuses blocked hosts so).
 */
export async function actOnHost(
  store: MetadataStore,
  hostname: string,
  act: (hostId: number) => Promise<unknown>,
): Promise<HostControlResult> {
  const known = await store.getHostByHostname(hostname);
  if (!known)
    return { ok: false, status: 404, error: 'HostNotFound', message: `host not found: ${hostname}` };
  try {
    await act(known.id);
  } catch (err) {
    if (err instanceof CrawlRefusedError) return refusalResult(err);
    return { ok: false, status: 400, error: 'InvalidRequest', message: (err as Error).message };
  }
  return { ok: true, host: await store.getHost(known.id) };
}

/** One subscribed host's state in memory (HostManager.list()); what the live-state snapshot reads. */
export interface HostSnapshot {
  hostId: number;
  hostname: string;
  state: string;
  connected: boolean;
  cursor: number;
  failures: number;
  inFlight: number;
  queued: number;
  /** Frames read past the cursor, finished or not. */
  pastCursor: number;
  paused: boolean;
  /** Effective limits (the computed ones with any override applied). */
  rateLimits: HostRateLimits;
  /** What the limits would be without an override (account count, trust). */
  defaultRateLimits: HostRateLimits;
  /** The operator's override, when one is set. */
  rateLimitOverride?: RateLimitOverride;
  lastError?: string;
  /** Highest upstream seq seen on the socket (0: none yet). */
  seenSeq?: number;
  /** Epoch ms of the last sequenced event read (0: none yet). */
  lastEventAt?: number;
  /** Sequenced events read since the subscriber was made. */
  eventsSeen?: number;
}

const SNAPSHOT_MS = 1000;

/** Live state by host id from one `list()` per second at most; `invalidate` after a change. */
export class LiveStateSnapshot {
  private snapshot: { at: number; byId: Map<number, HostLiveState> } | undefined;

  constructor(
    private readonly list: () => readonly HostSnapshot[],
    private readonly now: () => number = Date.now,
  ) {}

  get(hostId: number): HostLiveState | undefined {
    const t = this.now();
    if (!this.snapshot || t - this.snapshot.at >= SNAPSHOT_MS) {
      const byId = new Map<number, HostLiveState>();
      for (const s of this.list()) {
        byId.set(s.hostId, {
          connected: s.connected,
          rateLimits: s.rateLimits,
          defaultRateLimits: s.defaultRateLimits,
          ...(s.rateLimitOverride ? { rateLimitOverride: s.rateLimitOverride } : {}),
          state: s.state,
          cursor: s.cursor,
          inFlight: s.inFlight,
          queued: s.queued,
          pastCursor: s.pastCursor,
          paused: s.paused,
          failures: s.failures,
          ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
        });
      }
      this.snapshot = { at: t, byId };
    }
    return this.snapshot.byId.get(hostId);
  }

  invalidate(): void {
    this.snapshot = undefined;
  }
}
