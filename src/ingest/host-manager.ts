// HostManager: the ingest stage. It owns one HostSubscriber per active host,
// decides which hosts may be added (requestCrawl, admin, bootstrap from a
// seed relay; the checks are crawl-admission.ts, the daily new-host quota
// new-host-quota.ts), and keeps host state in the metadata store: status,
// failure count and cursor (subscriber-hooks.ts; cursors through the store's
// coalescer, so cursor writes are batched every few seconds and at
// shutdown). Its settings and tuning knobs are ingest-config.ts. It is the
// admin API's HostControl (host-control.ts) itself: those methods take hostnames and
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
// An operator cursor reset (resetCursor) replaces the host's subscriber in
// an order that keeps old frames from moving the new cursor; while one runs,
// revive() and adopt() leave the host alone (cursor-reset.ts).
//
// Bounds (issue 12; what happens at each bound): `subs`, `limits` (per
// host), `cursorResets` and the hooks' tracked status writes hold at most
// one entry per host in the store (host additions are limited by
// requestCrawl's daily limit and the admin); crawl admission holds at most
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
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import {
  createSafeFetcher,
  defaultLookup,
  type LookupFn,
  type SafeFetcher,
} from '../protocol/identity/safe-fetch.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import { bootstrapFromUpstream } from './bootstrap.ts';
import { BootstrapLoop } from './bootstrap-loop.ts';
import { CrawlAdmission, type CrawlOptions, type CrawlResult } from './crawl-admission.ts';
import { CursorResets } from './cursor-reset.ts';
import { FrameBudget } from './frame-budget.ts';
import type { FrameSink } from './frame-sink.ts';
import { guardedLookup, type NodeLookup } from './host-checks.ts';
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
import { hostAccountLimit, isTrustedHostname, parseTrustedDomains } from './host-policy.ts';
import { HostSubscriber } from './host-subscriber.ts';
import { type IngestConfig, type IngestTuning, resolveTuning } from './ingest-config.ts';
import { IngestMetrics } from './metrics.ts';
import { NewHostQuota } from './new-host-quota.ts';
import type { HostRateLimits, RateLimitOverride } from './rate-limiter.ts';
import { Scheduler } from './scheduler.ts';
import { SubscriberStoreHooks } from './subscriber-hooks.ts';
import { releaseThrottledHost } from './throttle-recovery.ts';
import type { UpstreamDialer } from './upstream-socket.ts';

/**
 * Scale-out (host-leases.ts): which hosts this process may read. When set, a
 * host is only subscribed while its lease is held; the lease balancer adopts
 * and releases hosts as leases come and go.
 */
export interface HostLeaseGate {
  isHeld(hostId: number): boolean;
}

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
  /** Who owns host sockets: this thread (default) or socket threads (socket-threads.ts). */
  dial?: UpstreamDialer;
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

export type { HostSnapshot } from './host-control.ts';

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
  private readonly dial: UpstreamDialer | undefined;
  private readonly trusted: string[];
  private readonly scheduler: Scheduler;
  private readonly subs = new Map<number, HostSubscriber>();
  private readonly limits: HostLimits;
  /** requestCrawl, admin and bootstrap additions (crawl-admission.ts). */
  private readonly admission: CrawlAdmission;
  /** Cursor resets by host id (queued ones chained), so revive() can stay out of their way. */
  private readonly cursorResets: CursorResets;
  /** What subscribers write to the store; tracks their status writes (subscriber-hooks.ts). */
  private readonly hooks: SubscriberStoreHooks;
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
    this.tuning = resolveTuning(opts.config);
    this.log = (opts.log ?? silentLogger).child({ module: 'ingest' });
    this.now = opts.now ?? Date.now;
    this.random = opts.random ?? Math.random;
    this.lookup = guardedLookup(opts.lookup ?? defaultLookup, opts.config.allowInsecureHosts);
    this.dial = opts.dial;
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
    this.metrics = new IngestMetrics(
      opts.registry,
      () => this.store.countHostsByStatus(),
      () => this.store.cursorStats().waitingForBarrier,
    );
    this.frameBudget = new FrameBudget(opts.config.ingestFrameBudgetMb * 1024 * 1024, {
      bytesInFlight: this.metrics.frameBytesInFlight,
      fills: this.metrics.frameBudgetFills,
    });
    this.hooks = new SubscriberStoreHooks({
      store: this.store,
      metrics: this.metrics,
      log: this.log,
      config: opts.config,
    });
    this.admission = new CrawlAdmission({
      store: this.store,
      fetcher: this.fetcher,
      quota: new NewHostQuota({
        store: this.store,
        config: opts.config,
        now: this.now,
      }),
      log: this.log,
      config: opts.config,
      describeTimeoutMs: this.tuning.describeTimeoutMs,
      maxPendingAdds: this.tuning.maxPendingAdds,
      subscriberState: (hostId) => this.subs.get(hostId)?.state,
      revive: (host) => this.revive(host),
      isStopping: () => this.stopping !== undefined,
    });
    this.logHead = opts.logHead ?? (() => 0);
    this.leases = opts.leases;
    this.cursorResets = new CursorResets({
      store: this.store,
      log: this.log,
      logHead: () => this.logHead(),
      subscriber: (hostId) => this.subs.get(hostId),
      dropSubscriber: (hostId, sub) => {
        if (this.subs.get(hostId) === sub) this.subs.delete(hostId);
      },
      writesOf: (hostId) => this.hooks.writesOf(hostId),
      forgetRecovered: (hostId) => this.relayedAtStart?.byHost.delete(hostId),
      resubscribe: (host) => {
        if (host.status === 'active' && this.started && !this.stopping) this.subscribe(host, 0);
      },
      isStopping: () => this.stopping !== undefined,
    });
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
      await this.cursorResets.allSettled();
      this.scheduler.stop();
      await this.bootstrap?.stop();
      await this.admission.settled();
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
   * existing idle/offline host is revived (crawl-admission.ts). Throws CrawlRefusedError.
   */
  crawl(hostname: unknown, opts: CrawlOptions = {}): Promise<CrawlResult> {
    return this.admission.crawl(hostname, opts);
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

  /** Releases the host's throttled accounts that fit under its limit now (throttle-recovery.ts). */
  private releaseThrottled(hostId: number): Promise<void> {
    return releaseThrottledHost(
      {
        store: this.store,
        metrics: this.metrics,
        log: this.log,
        accountLimit: (host) => this.accountLimit(host),
        resyncNow: this.resyncNow,
      },
      hostId,
    );
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
    await this.cursorResets.settled(hostId); // else the reset could mark it active again
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
    return this.cursorResets.reset(hostId, cursor);
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
      pastCursor: s.pastCursor,
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
      dial: this.dial,
      allowPrivate: this.cfg.allowInsecureHosts,
      maxInFlight: this.cfg.hostMaxInFlight,
      cursorWindow: this.cfg.hostCursorWindow,
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

  private sweep(): void {
    const now = this.now();
    for (const s of this.subs.values()) s.sweep(now, this.tuning.pingAfterMs, this.tuning.deadAfterMs);
  }

  /** Re-reads account counts so rate limits keep scaling with each host's size. */
  async refreshLimits(): Promise<void> {
    await this.limits.refresh();
  }
}
