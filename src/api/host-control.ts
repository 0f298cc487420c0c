// What the API needs from the ingest stage to act on upstream hosts. The API
// only parses and authorises requests; every decision that needs the network
// or live connection state (is the host reachable, is it over the daily new-
// host limit, may `localhost:PORT` be used, drop the socket of a blocked host)
// belongs to ingest, which implements this interface. requestCrawl and addHost
// get the hostname as the client sent it (trimmed, checked to be a valid host
// name), because a scheme such as `http://` carries the TLS choice; the other
// methods get it normalised (lower case, no scheme, optional `:port`).
import type { Host } from '../store/metadata-store.ts';

export type HostControlResult =
  | { ok: true; host?: Host }
  | { ok: false; status: number; error: string; message: string };

/** Per-host event rate limits (events per window; 0 in a change means back to the default); the ingest stage owns their meaning. */
export interface HostRateLimits {
  perSecond?: number;
  perHour?: number;
  perDay?: number;
}

/** Live, in-memory state of one host that the store does not hold. */
export interface HostLiveState {
  connected: boolean;
  /** Effective limits (computed from account count and trust, with any operator override). */
  rateLimits?: HostRateLimits;
  /** The operator's override (POST /admin/hosts/rate-limits), when one is set. */
  rateLimitOverride?: HostRateLimits;
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
  setRateLimits?(hostname: string, limits: HostRateLimits): Promise<HostControlResult>;
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
