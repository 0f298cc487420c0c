// Adapts the ingest stage's HostManager to the API's HostControl, so the relay
// can mount the API with `hosts: hostControlFromManager(manager, store)`.
// HostManager works by host id and throws CrawlRefusedError; the API speaks
// hostnames and result objects. Account limit and trust live in the metadata
// store, so those are store writes followed by a limits refresh; rate-limit
// overrides are HostManager's own (persisted there, applied to the live
// limiter), and so is a cursor reset (it must stop the subscriber first).
// Live state comes from HostManager.list(), taken once per second at most, so
// listing hundreds of hosts costs one snapshot, not one scan per host; every
// change drops the snapshot so its answer shows the change.
import type { HostManager } from '../ingest/host-manager.ts';
import { CrawlRefusedError } from '../ingest/host-policy.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import type { HostControl, HostControlResult, HostLiveState } from './host-control.ts';

export type HostManagerLike = Pick<
  HostManager,
  | 'requestCrawl'
  | 'blockHost'
  | 'unblockHost'
  | 'reconnect'
  | 'list'
  | 'refreshLimits'
  | 'setRateLimits'
  | 'resetCursor'
>;

const SNAPSHOT_MS = 1000;

function refusal(err: unknown): HostControlResult {
  if (err instanceof CrawlRefusedError) {
    return { ok: false, status: err.status, error: err.error, message: err.message };
  }
  throw err;
}

export function hostControlFromManager(
  manager: HostManagerLike,
  store: MetadataStore,
  now: () => number = Date.now,
): HostControl {
  let snapshot: { at: number; byId: Map<number, HostLiveState> } | undefined;

  const hostId = async (hostname: string): Promise<number | HostControlResult> => {
    const host = await store.getHostByHostname(hostname);
    return host
      ? host.id
      : { ok: false, status: 404, error: 'HostNotFound', message: `host not found: ${hostname}` };
  };

  const byHost = async (hostname: string, act: (id: number) => Promise<void>): Promise<HostControlResult> => {
    const id = await hostId(hostname);
    if (typeof id !== 'number') return id;
    try {
      await act(id);
    } catch (err) {
      if (err instanceof CrawlRefusedError) return refusal(err);
      // HostManager.reconnect throws a plain Error for blocked/banned hosts.
      return { ok: false, status: 400, error: 'InvalidRequest', message: (err as Error).message };
    }
    snapshot = undefined;
    return { ok: true, host: await store.getHost(id) };
  };

  const crawl = async (hostname: string, admin: boolean): Promise<HostControlResult> => {
    try {
      const { host } = await manager.requestCrawl(hostname, { admin });
      snapshot = undefined;
      return { ok: true, host };
    } catch (err) {
      return refusal(err);
    }
  };

  return {
    requestCrawl: (hostname, opts) => crawl(hostname, opts.admin),
    addHost: (hostname) => crawl(hostname, true),
    blockHost: (hostname) => byHost(hostname, (id) => manager.blockHost(id)),
    unblockHost: (hostname) => byHost(hostname, (id) => manager.unblockHost(id)),
    reconnectHost: (hostname) => byHost(hostname, (id) => manager.reconnect(id)),
    setAccountLimit: (hostname, limit) =>
      byHost(hostname, async (id) => {
        await store.setHostAccountLimit(id, limit);
        await manager.refreshLimits();
      }),
    setRateLimits: (hostname, limits) =>
      byHost(hostname, async (id) => {
        await manager.setRateLimits(id, limits);
      }),
    resetCursor: async (hostname, cursor) => {
      // The manager's host, not a re-read: the new subscriber may already have moved the cursor on.
      let host: Host | undefined;
      const r = await byHost(hostname, async (id) => {
        host = await manager.resetCursor(id, cursor);
      });
      return r.ok ? { ok: true, host } : r;
    },
    setTrusted: (hostname, trusted) =>
      byHost(hostname, async (id) => {
        await store.setHostTrusted(id, trusted);
        await manager.refreshLimits();
      }),
    liveState(id) {
      const t = now();
      if (!snapshot || t - snapshot.at >= SNAPSHOT_MS) {
        const byId = new Map<number, HostLiveState>();
        for (const s of manager.list()) {
          byId.set(s.hostId, {
            connected: s.connected,
            rateLimits: s.rateLimits,
            defaultRateLimits: s.defaultRateLimits,
            ...(s.rateLimitOverride ? { rateLimitOverride: s.rateLimitOverride } : {}),
            state: s.state,
            cursor: s.cursor,
            inFlight: s.inFlight,
            queued: s.queued,
            paused: s.paused,
            failures: s.failures,
            ...(s.lastError !== undefined ? { lastError: s.lastError } : {}),
          });
        }
        snapshot = { at: t, byId };
      }
      return snapshot.byId.get(id);
    },
  };
}
