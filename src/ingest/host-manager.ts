// HostManager: the ingest stage. It owns one HostSubscriber per active host,
// decides which hosts may be added (requestCrawl, admin, bootstrap from a
// seed relay), and keeps host state in the metadata store: status, failure
// count and cursor (through the store's coalescer, so cursor writes are
// batched every few seconds and at shutdown). It is the admin API's
// HostControl (host-control.ts) itself: those methods take hostnames and
// answer results; the id-based ones below them (crawl, blockHostById, …)
// throw CrawlRefusedError and are what the relay and tests call.
//
// Shape of the problem: thousands of mostly-quiet sockets in one process.
// So per-host state is one small object; timers are shared (one Scheduler
// heap for back-off, stagger and rate-limit resumes, one liveness sweep for
// every socket); saved hosts are dialled at a fixed rate at start so a
// restart does not open thousands of TLS handshakes at once; and additions
// are serialised per hostname so concurrent requestCrawls of one host do
// one check and one subscription. Per-host rate limiters and the operator's
// overrides of their limits are host-limits.ts.
//
// An operator cursor reset (resetCursor) replaces the host's subscriber: the
// old one is stopped and awaited (socket closed, every in-flight frame
// settled, so each cursor advance it will ever make has reached the store's
// coalescer), any status write its hooks started is awaited, and only then
// is the cursor written (store.resetHostCursor drops the coalesced value) and
// a fresh subscriber dialled from it. While a reset runs, revive() leaves the
// host alone, so a concurrent requestCrawl/reconnect/unblock cannot dial from
// the old cursor; the reset itself resubscribes at the end.
//
// Bounds (issue 12; what happens at each bound): `subs`, `limits` (per
// host), `cursorResets` and `hookWrites` hold at most one entry per host in the store (host additions are limited by
// requestCrawl's daily limit and the admin); `pendingAdds` holds at most
// `maxPendingAdds` host additions in progress (default 1,000; beyond it
// requestCrawl answers 503 at once); all subscribers share one FrameBudget
// for the bytes of frames they hold (frame-budget.ts).
//
// Self-healing (issue 18) lives beside it and acts through its public
// methods: reprobe.ts revives offline/idle hosts and coverage.ts reconnects
// stalled ones (both with reconnect()); a raised account limit or trust
// releases the throttled accounts that now fit (throttle-recovery.ts); the
// status changes ingest makes are counted (relay_host_status_changes_total).
import type { Registry } from 'prom-client';
import type { RelayConfig } from '../config/config.ts';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import {
  createSafeFetcher,
  defaultLookup,
  type LookupFn,
  type SafeFetcher,
} from '../protocol/identity/safe-fetch.ts';
import type { Host, HostStatus, MetadataStore } from '../store/metadata-store.ts';
import { bootstrapFromUpstream } from './bootstrap.ts';
import { BootstrapLoop } from './bootstrap-loop.ts';
import { FrameBudget } from './frame-budget.ts';
import type { FrameSink } from './frame-sink.ts';
import { checkDescribeServer, guardedLookup, type NodeLookup } from './host-checks.ts';
import {
  actOnHost,
  type HostControl,
  type HostControlResult,
  type HostLiveState,
  type HostSnapshot,
  LiveStateSnapshot,
  refusalResult,
} from './host-control.ts';
import { HostLimits } from './host-limits.ts';
import {
  CrawlRefusedError,
  type CrawlTarget,
  hostAccountLimit,
  isTrustedHostname,
  parseTrustedDomains,
  validateCrawlHostname,
} from './host-policy.ts';
import { HostSubscriber, type SubscriberHooks } from './host-subscriber.ts';
import { recordCursorReset } from './log-recovery.ts';
import { IngestMetrics } from './metrics.ts';
import type { HostRateLimits, RateLimitOverride } from './rate-limiter.ts';
import { Scheduler } from './scheduler.ts';
import { releaseThrottledAccounts } from './throttle-recovery.ts';

declare module '../store/metadata-store.ts' {
  interface RelaySettings {
    /** Epoch ms of hosts added by requestCrawl in the last 24 h (the new-hosts-per-day limit). */
    ingestNewHostTimes: number[];
  }
}

/** The relay settings ingest reads (RelayConfig satisfies it), plus tuning knobs for tests. */
export type IngestConfig = Pick<
  RelayConfig,
  | 'allowInsecureHosts'
  | 'upstream'
  | 'bootstrapHosts'
  | 'newHostsPerDay'
  | 'hostMaxFailures'
  | 'hostConnectsPerSecond'
  | 'hostMaxInFlight'
  | 'hostBadFramesPerMinute'
  | 'ingestFrameBudgetMb'
  | 'hostRatePerSecond'
  | 'hostRatePerHour'
  | 'hostRatePerDay'
  | 'trustedDomains'
> &
  Partial<Pick<RelayConfig, 'bootstrapIntervalMinutes' | 'bootstrapRetryMaxSeconds'>> &
  Partial<IngestTuning>;

export interface IngestTuning {
  /** First reconnect delay; doubles per consecutive failure (default 1,000 ms). */
  backoffBaseMs: number;
  /** Longest reconnect delay (default 5 min). */
  backoffMaxMs: number;
  /** A connection that stays open this long counts as a success (default 30 s). */
  successAfterMs: number;
  /** Liveness sweep period (default 15 s). */
  sweepIntervalMs: number;
  /** Ping a socket quiet for this long (default 30 s). */
  pingAfterMs: number;
  /** Drop a socket quiet (no frame, no pong) for this long (default 90 s). */
  deadAfterMs: number;
  handshakeTimeoutMs: number;
  /** How often account counts are re-read to rescale rate limits (default 5 min). */
  limitsRefreshMs: number;
  /** describeServer timeout (default 10 s). */
  describeTimeoutMs: number;
  /**
   * Frames a subscriber may have parsed but not handed on (default 1,024). Only
   * frames from one socket read can pile up (real frames: ~130 per 64 KB
   * read); at the bound the connection is closed and re-read from the cursor.
   */
  maxQueuedFrames: number;
  /** Host additions (requestCrawl, admin, bootstrap) in progress at once (default 1,000); beyond: 503. */
  maxPendingAdds: number;
  /** First retry of a failed bootstrap; doubles up to RELAY_BOOTSTRAP_RETRY_MAX_SECONDS (default 5 s). */
  bootstrapRetryBaseMs: number;
}

const DEFAULT_TUNING: IngestTuning = {
  backoffBaseMs: 1_000,
  backoffMaxMs: 5 * 60_000,
  successAfterMs: 30_000,
  sweepIntervalMs: 15_000,
  pingAfterMs: 30_000,
  deadAfterMs: 90_000,
  handshakeTimeoutMs: 10_000,
  limitsRefreshMs: 5 * 60_000,
  describeTimeoutMs: 10_000,
  maxQueuedFrames: 1024,
  maxPendingAdds: 1000,
  bootstrapRetryBaseMs: 5_000,
};

/**
 * Scale-out (host-leases.ts): which hosts this process may read. When set, a
 * host is only subscribed while its lease is held; the lease balancer adopts
 * and releases hosts as leases come and go.
 */
export interface HostLeaseGate {
  isHeld(hostId: number): boolean;
}

/** Released throttled accounts resynced at once per release (see releaseThrottled). */
const RESYNC_NOW_PER_RELEASE = 500;

export interface HostManagerOptions {
  store: MetadataStore;
  sink: FrameSink;
  /**
   * Safe fetcher for describeServer and listHosts. Default: one built here
   * with allowPrivate/allowInsecure = allowInsecureHosts and `lookup`.
   */
  fetcher?: SafeFetcher;
  config: IngestConfig;
  log?: Logger;
  registry?: Registry;
  /** DNS for subscription sockets (SSRF-checked); tests inject one. */
  lookup?: LookupFn;
  now?: () => number;
  random?: () => number;
  /** The event log's durable head, for the log checkpoint (default: always 0). */
  logHead?: () => number;
  /** Set in the ingest role: only hosts whose lease this process holds are read. */
  leases?: HostLeaseGate;
  /**
   * Starts a resync of an account now (Validator.requestResync): throttle
   * recovery resyncs released accounts at once. Without it they resync on
   * their next event.
   */
  resyncNow?: (did: string) => Promise<unknown>;
}

/** What the event log's tail says about upstream events already relayed (log-recovery.ts). */
export interface RelayedSinceCheckpoint {
  /** Host id → upstream seqs above the host's stored cursor whose events are in the log. */
  byHost: Map<number, number[]>;
  /** The checkpoint the scan started after: the mark these frames carry. */
  mark: number;
}

export interface CrawlOptions {
  /** Admin additions bypass the new-hosts-per-day limit and requestCrawlEnabled. */
  admin?: boolean;
  /** Bootstrap additions bypass the limit too (the seed relay already vetted them). */
  bootstrap?: boolean;
}

export interface CrawlResult {
  host: Host;
  /** true when a new host row was created. */
  created: boolean;
}

export type { HostSnapshot } from './host-control.ts';

const DAY_MS = 24 * 3600 * 1000;

function noop(): void {}

function refuseIfBlocked(host: Host): void {
  if (host.status === 'blocked' || host.status === 'banned') {
    throw new CrawlRefusedError(
      409,
      'HostBlocked',
      `host ${host.hostname} is ${host.status}; unblock it before resetting its cursor`,
    );
  }
}

export class HostManager implements HostControl {
  readonly metrics: IngestMetrics;
  /** The byte budget all subscribers share for the frames they hold. */
  readonly frameBudget: FrameBudget;
  private readonly store: MetadataStore;
  private readonly sink: FrameSink;
  private readonly resyncNow: ((did: string) => Promise<unknown>) | undefined;
  private readonly fetcher: SafeFetcher;
  private readonly ownFetcher: boolean;
  private readonly cfg: IngestConfig;
  private readonly tuning: IngestTuning;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly lookup: NodeLookup;
  private readonly trusted: string[];
  private readonly scheduler: Scheduler;
  private readonly subs = new Map<number, HostSubscriber>();
  private readonly limits: HostLimits;
  private readonly pendingAdds = new Map<string, Promise<CrawlResult>>();
  /** Cursor resets by host id (queued ones chained), so revive() can stay out of their way. */
  private readonly cursorResets = new Map<number, Promise<Host>>();
  /** Status writes started by subscriber hooks (failure count, offline, idle), by host id. */
  private readonly hookWrites = new Map<number, Promise<unknown>>();
  private newHostLock: Promise<unknown> = Promise.resolve();
  private readonly hooks: SubscriberHooks;
  private sweepTimer: NodeJS.Timeout | undefined;
  private limitsTimer: NodeJS.Timeout | undefined;
  private started = false;
  private readonly logHead: () => number;
  private readonly leases?: HostLeaseGate;
  /** Recovered at start, handed to each host's first subscriber (see start()). */
  private relayedAtStart?: RelayedSinceCheckpoint;
  private stopping: Promise<void> | undefined;
  /** What liveState() answers from: one list() per second at most. */
  private readonly liveStates = new LiveStateSnapshot(
    () => this.list(),
    () => this.now(),
  );
  /** Resolves when the first successful bootstrap from the seed relay has finished (or it was skipped or stopped). */
  bootstrapDone: Promise<void> = Promise.resolve();
  /** The bootstrap from the seed relay: retried until it succeeds, then repeated (bootstrap-loop.ts). */
  bootstrap: BootstrapLoop | undefined;
  private readonly registry: Registry | undefined;

  constructor(opts: HostManagerOptions) {
    this.store = opts.store;
    this.sink = opts.sink;
    this.resyncNow = opts.resyncNow;
    this.ownFetcher = opts.fetcher === undefined;
    this.fetcher =
      opts.fetcher ??
      createSafeFetcher({
        allowPrivate: opts.config.allowInsecureHosts,
        allowInsecure: opts.config.allowInsecureHosts,
        lookup: opts.lookup,
      });
    this.cfg = opts.config;
    this.tuning = { ...DEFAULT_TUNING };
    for (const k of Object.keys(DEFAULT_TUNING) as (keyof IngestTuning)[]) {
      const v = opts.config[k];
      if (v !== undefined) this.tuning[k] = v;
    }
    this.log = (opts.log ?? silentLogger).child({ module: 'ingest' });
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.lookup = guardedLookup(opts.lookup ?? defaultLookup, opts.config.allowInsecureHosts);
    this.trusted = parseTrustedDomains(opts.config.trustedDomains);
    this.limits = new HostLimits({
      store: this.store,
      baseline: {
        perSecond: opts.config.hostRatePerSecond,
        perHour: opts.config.hostRatePerHour,
        perDay: opts.config.hostRatePerDay,
      },
      trusted: this.trusted,
      now: this.now,
      log: this.log,
    });
    this.scheduler = new Scheduler(this.now);
    this.registry = opts.registry;
    this.metrics = new IngestMetrics(opts.registry, () => this.store.countHostsByStatus());
    this.frameBudget = new FrameBudget(opts.config.ingestFrameBudgetMb * 1024 * 1024, {
      bytesInFlight: this.metrics.frameBytesInFlight,
      fills: this.metrics.frameBudgetFills,
    });
    this.hooks = {
      saveCursor: (hostId, seq) => this.store.updateHostCursor(hostId, seq),
      succeeded: (sub) => {
        this.store.resetHostFailures(sub.hostId).catch((err: unknown) => {
          this.log.warn({ err, host: sub.hostname }, 'could not reset host failures');
        });
      },
      failed: (sub, reason) => this.trackHookWrite(sub.hostId, this.onFailure(sub, reason)),
      futureCursor: (sub) => {
        void this.trackHookWrite(sub.hostId, this.setStatus(sub.hostId, 'idle'));
      },
      persistCursor: async (hostId, seq) => {
        this.store.updateHostCursor(hostId, seq);
        await this.store.flushCursors();
      },
    };
    this.logHead = opts.logHead ?? (() => 0);
    this.leases = opts.leases;
  }

  // --- lifecycle -------------------------------------------------------------

  /**
   * Resubscribes every active host from its saved cursor (staggered), then
   * bootstraps in the background. `relayed` (from log-recovery.ts) names the
   * frames above each stored cursor whose events the log already holds: they
   * are skipped when the host sends them again.
   */
  async start(relayed?: RelayedSinceCheckpoint): Promise<void> {
    if (this.started) throw new Error('host manager already started');
    this.started = true;
    this.relayedAtStart = relayed;
    await this.limits.load();
    const hosts: Host[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await this.store.listHosts({ status: 'active', after, limit: 1000 });
      hosts.push(...page);
      if (page.length < 1000) break;
      after = page[page.length - 1].id;
    }
    const spacingMs = 1000 / this.cfg.hostConnectsPerSecond;
    hosts.forEach((h, i) => {
      this.subscribe(h, Math.floor(i * spacingMs));
    });
    this.log.info(
      { hosts: hosts.length, overMs: Math.round(hosts.length * spacingMs) },
      'resubscribing hosts',
    );
    this.sweepTimer = setInterval(() => this.sweep(), this.tuning.sweepIntervalMs);
    this.sweepTimer.unref();
    this.limitsTimer = setInterval(() => {
      this.refreshLimits().catch((err: unknown) => this.log.warn({ err }, 'rate limit refresh failed'));
    }, this.tuning.limitsRefreshMs);
    this.limitsTimer.unref();
    if (this.cfg.bootstrapHosts && this.cfg.upstream) {
      const upstream = this.cfg.upstream;
      this.bootstrap = new BootstrapLoop({
        upstream,
        log: this.log,
        registry: this.registry,
        random: this.random,
        retryBaseMs: this.tuning.bootstrapRetryBaseMs,
        retryMaxMs: (this.cfg.bootstrapRetryMaxSeconds ?? 600) * 1000,
        intervalMs: (this.cfg.bootstrapIntervalMinutes ?? 360) * 60_000,
        run: () =>
          bootstrapFromUpstream({
            upstream,
            fetcher: this.fetcher,
            allowInsecure: this.cfg.allowInsecureHosts,
            log: this.log,
            add: (hostname) => this.crawl(hostname, { bootstrap: true }),
            isStopping: () => this.stopping !== undefined,
          }),
      });
      this.bootstrapDone = this.bootstrap.firstSuccess;
      this.bootstrap.start();
    }
  }

  /** Scale-out: starts reading a host whose lease was just acquired (from its stored cursor). */
  adopt(host: Host): void {
    if (!this.started || this.stopping || host.status !== 'active') return;
    if (this.cursorResets.has(host.id)) return;
    this.subscribe(host, 0);
  }

  /**
   * Scale-out: stops reading a host whose lease was lost or given up; its
   * in-flight frames finish and its cursor is flushed, so the next owner
   * resumes from there (what overlaps is deduplicated by message id).
   */
  async release(hostId: number): Promise<void> {
    const sub = this.subs.get(hostId);
    if (!sub) return;
    this.subs.delete(hostId);
    await sub.stop();
    await this.store.flushCursors();
  }

  /** Ids of the hosts this process is reading now. */
  readingHostIds(): number[] {
    return [...this.subs.keys()];
  }

  /** Graceful shutdown: stop reading every socket, let in-flight frames finish, flush cursors. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      if (this.limitsTimer) clearInterval(this.limitsTimer);
      await Promise.all([...this.subs.values()].map((s) => s.stop()));
      await Promise.allSettled([...this.cursorResets.values()]);
      this.scheduler.stop();
      await this.bootstrap?.stop();
      await Promise.allSettled([...this.pendingAdds.values()]);
      await this.store.flushCursors();
      if (this.ownFetcher) this.fetcher.close();
      this.log.info({ hosts: this.subs.size }, 'ingest stopped');
    })();
    return this.stopping;
  }

  // --- adding hosts ----------------------------------------------------------

  /**
   * requestCrawl / admin add: validates the hostname, refuses banned domains
   * and blocked hosts, checks describeServer (SSRF-guarded), applies the
   * new-hosts-per-day limit to new non-admin hosts, then subscribes. An
   * existing idle/offline host is revived. Throws CrawlRefusedError.
   */
  crawl(hostname: unknown, opts: CrawlOptions = {}): Promise<CrawlResult> {
    if (this.stopping) return Promise.reject(new CrawlRefusedError(503, 'Unavailable', 'relay is stopping'));
    let target: CrawlTarget;
    try {
      target = validateCrawlHostname(hostname, { allowInsecure: this.cfg.allowInsecureHosts });
    } catch (err) {
      return Promise.reject(err);
    }
    const running = this.pendingAdds.get(target.hostname);
    if (running) return running;
    if (this.pendingAdds.size >= this.tuning.maxPendingAdds) {
      return Promise.reject(
        new CrawlRefusedError(503, 'Unavailable', 'too many host additions in progress; try again later'),
      );
    }
    const p = this.doCrawl(target, opts).finally(() => this.pendingAdds.delete(target.hostname));
    this.pendingAdds.set(target.hostname, p);
    return p;
  }

  private async doCrawl(target: CrawlTarget, opts: CrawlOptions): Promise<CrawlResult> {
    const privileged = opts.admin === true || opts.bootstrap === true;
    if (!opts.admin && (await this.store.getSetting('requestCrawlEnabled')) === false) {
      throw new CrawlRefusedError(400, 'InvalidRequest', 'requestCrawl is disabled on this relay');
    }
    if (await this.store.isDomainBanned(target.hostname)) {
      throw new CrawlRefusedError(400, 'HostBanned', 'domain is banned');
    }
    const existing = await this.store.getHostByHostname(target.hostname);
    if (existing && (existing.status === 'blocked' || existing.status === 'banned')) {
      throw new CrawlRefusedError(400, 'HostBanned', `host is ${existing.status}`);
    }
    if (existing && existing.status === 'active' && this.subs.get(existing.id)?.state !== 'inactive') {
      if (!this.subs.has(existing.id)) this.revive(existing);
      return { host: existing, created: false };
    }
    await checkDescribeServer(this.fetcher, target, this.tuning.describeTimeoutMs);
    if (existing) {
      await this.store.resetHostFailures(existing.id);
      const host = (await this.store.setHostStatus(existing.id, 'active')) ?? existing;
      host.failures = 0;
      this.revive(host);
      this.log.info({ host: host.hostname, was: existing.status }, 'host revived');
      return { host, created: false };
    }
    const created = privileged
      ? await this.createHost(target)
      : await this.withNewHostLock(async () => {
          await this.takeNewHostSlot();
          return this.createHost(target);
        });
    if (created.created || created.value.status === 'active') this.revive(created.value);
    this.log.info(
      { host: target.hostname, admin: opts.admin === true, bootstrap: opts.bootstrap === true },
      'host added',
    );
    return { host: created.value, created: created.created };
  }

  private createHost(target: CrawlTarget) {
    return this.store.createHost({ hostname: target.hostname, tls: target.tls, status: 'active' });
  }

  private withNewHostLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.newHostLock.then(fn, fn);
    this.newHostLock = run.catch(() => {});
    return run;
  }

  /** Applies the new-hosts-per-day limit (store setting newHostsPerDay overrides the config). */
  private async takeNewHostSlot(): Promise<void> {
    const limit = (await this.store.getSetting('newHostsPerDay')) ?? this.cfg.newHostsPerDay;
    const now = this.now();
    const times = ((await this.store.getSetting('ingestNewHostTimes')) ?? []).filter((t) => t > now - DAY_MS);
    if (times.length >= limit) {
      throw new CrawlRefusedError(429, 'RateLimitExceeded', `new host limit reached (${limit} per day)`);
    }
    times.push(now);
    await this.store.setSetting('ingestNewHostTimes', times);
  }

  // --- HostControl: the admin API's actions, by hostname, refusals as results -

  requestCrawl(hostname: string, opts: { admin: boolean }): Promise<HostControlResult> {
    return this.crawlForApi(hostname, opts.admin);
  }

  addHost(hostname: string): Promise<HostControlResult> {
    return this.crawlForApi(hostname, true);
  }

  blockHost(hostname: string): Promise<HostControlResult> {
    return this.actOn(hostname, (id) => this.blockHostById(id));
  }

  unblockHost(hostname: string): Promise<HostControlResult> {
    return this.actOn(hostname, (id) => this.unblockHostById(id));
  }

  reconnectHost(hostname: string): Promise<HostControlResult> {
    return this.actOn(hostname, (id) => this.reconnect(id));
  }

  /** Account limit and trust live in the store: a store write, then the limits follow it. */
  setAccountLimit(hostname: string, limit: number): Promise<HostControlResult> {
    return this.actOn(hostname, async (id) => {
      await this.store.setHostAccountLimit(id, limit);
      await this.refreshLimits();
      await this.releaseThrottled(id);
    });
  }

  setTrusted(hostname: string, trusted: boolean): Promise<HostControlResult> {
    return this.actOn(hostname, async (id) => {
      await this.store.setHostTrusted(id, trusted);
      await this.refreshLimits();
      await this.releaseThrottled(id);
    });
  }

  /**
   * Throttled accounts that fit under the host's limit now are released
   * (throttle-recovery.ts) and resynced at once through the validator's
   * rate-limited resync queue (resyncNow; without it, on their next event).
   */
  private async releaseThrottled(hostId: number): Promise<void> {
    const host = await this.store.getHost(hostId);
    if (!host) return;
    const { released, stillThrottled } = await releaseThrottledAccounts(
      this.store,
      host,
      this.accountLimit(host),
    );
    if (released.length === 0) return;
    this.metrics.throttleReleased.inc(released.length);
    const resyncNow = this.resyncNow;
    this.log.info(
      { host: host.hostname, released: released.length, stillThrottled },
      resyncNow
        ? 'throttled accounts released: resyncs queued'
        : 'throttled accounts released: each resyncs on its next event',
    );
    if (!resyncNow) return;
    // not awaited: the resync queue paces them; a failure leaves the account
    // desynchronized, healed on its next event like any failed resync. At
    // most RESYNC_NOW_PER_RELEASE at once (the host's resync queue is bounded
    // too); the rest stay desynchronized until their next event or the
    // reconciliation sweep (reconcile.ts) resyncs them.
    for (const did of released.slice(0, RESYNC_NOW_PER_RELEASE)) {
      resyncNow(did).catch((err: unknown) =>
        this.log.warn({ did, err }, 'resync of a released account not queued'),
      );
    }
  }

  setRateLimits(hostname: string, limits: RateLimitOverride): Promise<HostControlResult> {
    return this.actOn(hostname, async (id) => {
      await this.setRateLimitsById(id, limits);
    });
  }

  /** Answers with the host as the reset left it (a re-read could show the new subscriber's later cursor). */
  async resetCursor(hostname: string, cursor: number | null): Promise<HostControlResult> {
    let host: Host | undefined;
    const r = await this.actOn(hostname, async (id) => {
      host = await this.resetCursorById(id, cursor);
    });
    return r.ok ? { ok: true, host } : r;
  }

  liveState(hostId: number): HostLiveState | undefined {
    return this.liveStates.get(hostId);
  }

  private async crawlForApi(hostname: string, admin: boolean): Promise<HostControlResult> {
    try {
      const { host } = await this.crawl(hostname, { admin });
      this.liveStates.invalidate();
      return { ok: true, host };
    } catch (err) {
      return refusalResult(err);
    }
  }

  private async actOn(
    hostname: string,
    act: (hostId: number) => Promise<unknown>,
  ): Promise<HostControlResult> {
    const r = await actOnHost(this.store, hostname, act);
    if (r.ok) this.liveStates.invalidate();
    return r;
  }

  // --- admin actions by host id (throw CrawlRefusedError) ---------------------

  async blockHostById(hostId: number): Promise<void> {
    await this.cursorResets.get(hostId)?.then(noop, noop); // else the reset could mark it active again
    await this.store.setHostStatus(hostId, 'blocked');
    const sub = this.subs.get(hostId);
    if (sub) {
      this.subs.delete(hostId);
      this.limits.forget(hostId);
      await sub.stop();
      this.metrics.forgetHost(sub.hostname);
    }
  }

  async unblockHostById(hostId: number): Promise<void> {
    await this.store.resetHostFailures(hostId);
    const host = await this.store.setHostStatus(hostId, 'active');
    if (host) {
      host.failures = 0;
      this.revive(host);
    }
  }

  /** Reconnects now: an open socket is closed and redialled; an idle/offline host is made active again. */
  async reconnect(hostId: number): Promise<void> {
    const sub = this.subs.get(hostId);
    const host = await this.store.getHost(hostId);
    if (!host) throw new Error(`unknown host ${hostId}`);
    if (host.status === 'blocked' || host.status === 'banned') throw new Error(`host is ${host.status}`);
    if (host.status !== 'active') {
      await this.store.resetHostFailures(hostId);
      await this.store.setHostStatus(hostId, 'active');
      this.metrics.statusChanges.labels('active').inc();
      this.log.info({ host: host.hostname, was: host.status }, 'host active again');
      host.failures = 0;
      this.revive(host);
      return;
    }
    if (sub && sub.state !== 'inactive') sub.restart();
    else this.revive(host);
  }

  /**
   * Operator cursor reset: the host is read again from `cursor` (null or 0:
   * no cursor, i.e. live from now). For a PDS that reset its sequence (it
   * answered FutureCursor, host idle) or an upstream event too large to ever
   * read (reset to that event's seq to skip it). The host's subscriber is
   * stopped and its in-flight frames awaited before the cursor is written, so
   * no old frame can move the cursor back up afterwards. An idle or offline
   * host becomes active; failures are cleared; an active host is resubscribed
   * from the new cursor. Resolves to the host as stored after the reset.
   * Throws CrawlRefusedError: 400 bad cursor, 404 unknown host, 409 blocked or
   * banned host, 503 while stopping.
   */
  resetCursorById(hostId: number, cursor: number | null): Promise<Host> {
    if (cursor !== null && (!Number.isSafeInteger(cursor) || cursor < 0)) {
      return Promise.reject(
        new CrawlRefusedError(
          400,
          'InvalidRequest',
          `cursor must be a non-negative integer or null, got ${String(cursor)}`,
        ),
      );
    }
    if (this.stopping) return Promise.reject(new CrawlRefusedError(503, 'Unavailable', 'relay is stopping'));
    const before = this.cursorResets.get(hostId);
    const run = (before ? before.then(noop, noop) : Promise.resolve()).then(() =>
      this.doResetCursor(hostId, cursor ?? 0),
    );
    this.cursorResets.set(hostId, run);
    const done = () => {
      if (this.cursorResets.get(hostId) === run) this.cursorResets.delete(hostId);
    };
    run.then(done, done);
    return run;
  }

  private async doResetCursor(hostId: number, seq: number): Promise<Host> {
    const host = await this.store.getHost(hostId);
    if (!host) throw new CrawlRefusedError(404, 'HostNotFound', `unknown host ${hostId}`);
    refuseIfBlocked(host);
    const old = this.subs.get(hostId);
    // stop() resolves once the socket is closed and every in-flight frame has
    // settled: each cursor advance the old subscriber will make is made by now.
    if (old) await old.stop();
    let now: Host | undefined;
    let was: HostStatus;
    this.relayedAtStart?.byHost.delete(hostId);
    try {
      await this.hookWrites.get(hostId);
      // Events this host sent before the reset must not count as "already
      // relayed" for what it sends after it (a PDS that reset its seqs reuses them).
      await recordCursorReset(this.store, hostId, this.logHead());
      await this.store.resetHostCursor(hostId, seq);
      await this.store.resetHostFailures(hostId);
      now = await this.store.getHost(hostId);
      if (!now) throw new CrawlRefusedError(404, 'HostNotFound', `unknown host ${hostId}`);
      was = now.status;
      if (was === 'idle' || was === 'offline')
        now = (await this.store.setHostStatus(hostId, 'active')) ?? now;
    } catch (err) {
      // The store failed: put the host back on whatever cursor the store holds.
      if (this.subs.get(hostId) === old) this.subs.delete(hostId);
      const current = await this.store.getHost(hostId).catch(() => undefined);
      if (current?.status === 'active' && this.started && !this.stopping) this.subscribe(current, 0);
      throw err;
    }
    now.cursor = seq;
    now.failures = 0;
    // blockHost may have run meanwhile: it removed (and stopped) the subscriber itself.
    if (this.subs.get(hostId) === old) this.subs.delete(hostId);
    if (now.status === 'active' && this.started && !this.stopping) this.subscribe(now, 0);
    this.log.info(
      { host: now.hostname, from: host.cursor, cursor: seq, was, status: now.status },
      'host cursor reset',
    );
    return now;
  }

  /**
   * Stops every host subscriber from reading (sockets paused: TCP pushes back,
   * nothing is dropped or re-dialled) until resumeReading(reason). Used while
   * the event log cannot write.
   */
  pauseReading(reason: string): void {
    this.log.warn({ reason }, 'ingest paused');
    this.frameBudget.hold(reason);
  }

  resumeReading(reason: string): void {
    this.frameBudget.release(reason);
    this.log.info({ reason }, 'ingest resumed');
  }

  /** Reasons ingest is paused for (empty when reading). */
  get pausedFor(): string[] {
    return this.frameBudget.heldFor;
  }

  /**
   * The lowest log mark of any host (see HostSubscriber.logMark), or undefined
   * when no host has a frame above its cursor in flight or carried: every
   * event appended for a frame above a host's cursor has a relay seq above it.
   */
  logMark(): number | undefined {
    let mark: number | undefined;
    const at = this.relayedAtStart;
    if (at && at.byHost.size > 0) mark = at.mark;
    for (const sub of this.subs.values()) {
      const m = sub.logMark;
      if (m !== undefined && (mark === undefined || m < mark)) mark = m;
    }
    return mark;
  }

  /** The account limit the validation stage applies to this host (Infinity for trusted hosts). */
  accountLimit(host: Pick<Host, 'hostname' | 'accountLimit' | 'trusted'>): number {
    return hostAccountLimit(host, isTrustedHostname(host.hostname, this.trusted));
  }

  /** accountLimit() by host id; undefined for an unknown host. */
  async accountLimitById(hostId: number): Promise<number | undefined> {
    const host = await this.store.getHost(hostId);
    return host ? this.accountLimit(host) : undefined;
  }

  isTrusted(hostname: string): boolean {
    return isTrustedHostname(hostname, this.trusted);
  }

  list(): HostSnapshot[] {
    return [...this.subs.values()].map((s) => ({
      hostId: s.hostId,
      hostname: s.hostname,
      state: s.state,
      connected: s.connected,
      cursor: s.cursor,
      failures: s.failures,
      inFlight: s.inFlight,
      queued: s.queued,
      paused: s.paused,
      ...this.limits.view(s.hostId),
      lastError: s.lastError,
      seenSeq: s.seenSeq,
      lastEventAt: s.lastEventAt,
      eventsSeen: s.eventsSeen,
    }));
  }

  /**
   * Operator override of a host's event rate limits: the given fields replace
   * the computed ones (0, or a value equal to the computed one, clears that field).
   * Persisted, applied to the live limiter at once. Returns the effective limits.
   */
  setRateLimitsById(hostId: number, change: RateLimitOverride): Promise<HostRateLimits> {
    return this.limits.setOverride(hostId, change);
  }

  /** The effective rate limits of a host (also for hosts without a subscription). */
  rateLimitsOf(host: Host): HostRateLimits {
    return this.limits.effective(host);
  }

  subscriber(hostId: number): HostSubscriber | undefined {
    return this.subs.get(hostId);
  }

  get connectedCount(): number {
    let n = 0;
    for (const s of this.subs.values()) if (s.connected) n++;
    return n;
  }

  // --- internals -------------------------------------------------------------

  /** Starts (or restarts) the subscriber of an active host. */
  private revive(host: Host): void {
    if (!this.started || this.stopping) return;
    if (this.cursorResets.has(host.id)) return; // the reset resubscribes from its new cursor
    const sub = this.subs.get(host.id);
    if (sub) {
      sub.failures = host.failures;
      sub.start(0);
      return;
    }
    this.subscribe(host, 0);
  }

  private subscribe(host: Host, delayMs: number): void {
    if (this.subs.has(host.id)) return;
    if (this.leases && !this.leases.isHeld(host.id)) return; // the lease balancer adopts it once held
    // A cursor reset replaces the subscriber but keeps the host's rate buckets.
    const limiter = this.limits.limiterFor(host);
    // Recovered at start: handed to the host's first subscriber only.
    const relayedSeqs = this.relayedAtStart?.byHost.get(host.id);
    this.relayedAtStart?.byHost.delete(host.id);
    const sub = new HostSubscriber({
      hostId: host.id,
      target: { hostname: host.hostname, tls: host.tls },
      cursor: host.cursor,
      logHead: this.logHead,
      ...(relayedSeqs && this.relayedAtStart
        ? { relayed: { seqs: relayedSeqs, mark: this.relayedAtStart.mark } }
        : {}),
      failures: host.failures,
      sink: this.sink,
      limiter,
      scheduler: this.scheduler,
      metrics: this.metrics,
      hooks: this.hooks,
      log: this.log,
      lookup: this.lookup,
      allowPrivate: this.cfg.allowInsecureHosts,
      maxInFlight: this.cfg.hostMaxInFlight,
      maxQueuedFrames: this.tuning.maxQueuedFrames,
      badFramesPerMinute: this.cfg.hostBadFramesPerMinute,
      budget: this.frameBudget,
      backoffBaseMs: this.tuning.backoffBaseMs,
      backoffMaxMs: this.tuning.backoffMaxMs,
      successAfterMs: this.tuning.successAfterMs,
      handshakeTimeoutMs: this.tuning.handshakeTimeoutMs,
      random: this.random,
      now: this.now,
    });
    this.subs.set(host.id, sub);
    sub.start(delayMs);
  }

  private async onFailure(sub: HostSubscriber, reason: string): Promise<boolean> {
    let failures: number;
    try {
      failures = await this.store.recordHostFailure(sub.hostId);
    } catch (err) {
      this.log.warn({ err, host: sub.hostname }, 'could not record host failure');
      failures = sub.failures;
    }
    sub.failures = failures;
    if (failures >= this.cfg.hostMaxFailures) {
      this.log.warn({ host: sub.hostname, failures, reason }, 'host offline after consecutive failures');
      await this.setStatus(sub.hostId, 'offline');
      return false;
    }
    this.log.debug({ host: sub.hostname, failures, reason }, 'host connection failed');
    return true;
  }

  /** Remembers a hook's store write so a cursor reset can wait for it before setting the status. */
  private trackHookWrite<T>(hostId: number, write: Promise<T>): Promise<T> {
    const tail = Promise.all([this.hookWrites.get(hostId), write]).then(noop, noop);
    this.hookWrites.set(hostId, tail);
    tail.then(() => {
      if (this.hookWrites.get(hostId) === tail) this.hookWrites.delete(hostId);
    });
    return write;
  }

  private async setStatus(hostId: number, status: HostStatus): Promise<void> {
    try {
      await this.store.setHostStatus(hostId, status);
      this.metrics.statusChanges.labels(status).inc();
    } catch (err) {
      this.log.warn({ err, hostId, status }, 'could not set host status');
    }
  }

  private sweep(): void {
    const now = this.now();
    for (const s of this.subs.values()) s.sweep(now, this.tuning.pingAfterMs, this.tuning.deadAfterMs);
  }

  /** Re-reads account counts so rate limits keep scaling with each host's size. */
  async refreshLimits(): Promise<void> {
    await this.limits.refresh();
  }
}
