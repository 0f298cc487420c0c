// The validation stage between ingest and the sequencer (event log). Every
// inbound frame is checked here (sync 1.1 rules, see docs/validation.md), the
// relay's per-account state (head, status, host) is kept up to date, and what
// passes is appended to the log with a relay seq. This file is the
// coordinator (class Validator): the per-DID queues, dispatch to the
// per-type rules, idleness and shutdown; the parts it owns each open with
// the part of this argument that concerns them:
// - admission.ts: the DID read, the worker started, what is refused at once;
// - order-queue.ts: the global order queue, parking, the appends;
// - head-writer.ts: staged repo heads, their overlay, the batched head writes;
// - account-context.ts: identity resolution (retries, forced refreshes),
//   host authority, the account row, the commit signature;
// - rules-commit.ts (#commit, #sync), rules-account.ts (#identity, #account,
//   operator actions, repairs), rules-resync.ts (resync of a repo): what each
//   job's decision is;
// - job.ts: the job, repo queue and decision they pass around.
//
// Work is split by whether it needs account state:
// - stateless and CPU-heavy (frame decode, CAR hash checks, commit decode,
//   signature, MST inversion): a pool of worker threads (pool.ts,
//   verify-frame.ts). The main thread passes the signing key along: at once
//   when the identity cache has it, after the DID resolves when not. Only
//   when that resolution failed, or the key changed since, does the worker
//   return the signed bytes for the main thread to check.
// - stateful (identity, host authority, status, stored rev/since/prevData,
//   resync): the main thread, one repo at a time, in the repo's input order.
//
// Ordering. Three structures cooperate:
// 1. Per-DID queues (here: queueForRepo, runRepo). Each repo's events are
//    processed strictly one after the other in submit order (a repo's second
//    commit is checked against the head its first one left). Different repos
//    proceed independently, and the worker verdicts for a repo's later events
//    are computed while its earlier ones are still being checked.
// 2. The order queue (order-queue.ts): every event takes a place in one
//    global FIFO in submit order, and decided events leave it from the front
//    only, each run of them in one `append` call. So the relay's output order
//    is its input order, whatever order the workers finish in.
// 3. Parking (order-queue.ts): a repo whose current event has to wait for
//    the network (a DID resolution that misses the cache, a forced
//    re-resolution, a handle check, a resync) gives up its places in the
//    order queue, and each of its events takes a new place at the back when
//    it is decided. A slow DID thus never holds up other repos, and a repo's
//    own events stay in order. A DID resolution that fails transiently keeps
//    the repo parked while it is retried with back-off (account-context.ts):
//    an outage makes events wait, it does not drop them.
//
// Operator actions (accountAction: takedown, reversal) enter the account's
// queue like an event, so this stage is the one writer of the event log and
// a takedown's hide covers every event of the account decided before it.
// So do the repairs other parts ask for (issue 18): `requestResync` (resync
// an account now, through the same rate-limited, per-host-budgeted resync
// queue, instead of on its next event) and `applyUpstreamStatus` (an
// upstream status learned out of band, e.g. from the host's listRepos: the
// `#account` the relay would have emitted had it seen the host's event).
//
// Deterministic output order, precisely: for a given input order, events
// that need no network I/O (the steady state: identity cached, no resync)
// come out in exactly the input order, independent of worker count and
// timing; an event that waited on I/O, together with the rest of its repo's
// events queued behind it, comes out at the point where that I/O completed.
// Local work (SQLite, worker verdicts) never reorders: it only delays.
//
// Durability: `submit` resolves once the frame's events are durable in the
// log (a dropped frame: once everything ahead of it in the order queue is
// durable or dropped; order-queue.ts). The new repo head is written to the
// metadata store after that, batched (head-writer.ts; an in-memory overlay
// serves the repo's next events meanwhile), and `headFloor()` keeps the log
// checkpoint below any unwritten head, so after a crash log-recovery.ts
// rebuilds from the log's tail both the heads the store lacks and which
// re-received frames are already out (exactly once: see that file).
import type { Registry } from 'prom-client';
import type { Sequencer } from '../eventlog/types.ts';
import type { FrameSink, InboundFrame } from '../ingest/frame-sink.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { IdentityCache } from '../protocol/identity/identity-cache.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { AccountStatus, MetadataStore, RepoHead } from '../store/metadata-store.ts';
import { AccountResolver } from './account-context.ts';
import { type Admission, admit } from './admission.ts';
import { HeadWriter } from './head-writer.ts';
import type { AccountAction, Decision, Job, RepairResult, RepoQueue, RuleContext } from './job.ts';
import { ValidationMetrics } from './metrics.ts';
import { OrderQueue } from './order-queue.ts';
import { VerifyPool, type VerifyPoolOptions } from './pool.ts';
import { Resyncer } from './resync.ts';
import { processAccount, processAccountAction, processIdentity, processRepair } from './rules-account.ts';
import { processCommit, processSync } from './rules-commit.ts';
import { ResyncAttempts, resyncRepo } from './rules-resync.ts';
import { DEFAULT_MAX_REV_SKEW_MS } from './verify-frame.ts';

export { isAuthoritativeHost, pdsHostname } from './account-context.ts';
export type { AccountAction, RepairResult } from './job.ts';

export interface ValidationSettings {
  /** Log and count sync 1.1 chain failures and pass the event, instead of resyncing. */
  lenientSync: boolean;
  /** Verify worker threads; 0 = verify on the main thread. */
  workers: number;
  maxRevSkewMs: number;
  resyncPerSecond: number;
  resyncConcurrency: number;
  resyncMaxQueued: number;
  /** Resyncs of one host's accounts at once, started per second, waiting (resync.ts: per-host budget). */
  resyncHostConcurrency: number;
  resyncHostPerSecond: number;
  resyncHostMaxQueued: number;
  resyncTimeoutMs: number;
  /** Least time between two resync attempts of one account. */
  resyncRetryMs: number;
  /**
   * How long a repo's events wait for a DID resolution that keeps failing
   * transiently (PLC down or rate-limiting, 5xx, timeouts) before they are
   * dropped as identity-unresolved. did:web documents get the shorter
   * identityWebRetryMaxMs: one domain's outage should not hold its PDS's
   * stream for long (the host's cursor cannot pass a waiting event).
   */
  identityRetryMaxMs: number;
  identityWebRetryMaxMs: number;
  maxRepoBytes: number;
  /**
   * Repo heads of durable events waiting to be written before submits stop
   * resolving (head-writer.ts, "Backpressure"): a stalled metadata store
   * then pauses ingest through the frame budget instead of growing memory.
   */
  maxUnwrittenHeads: number;
}

export const DEFAULT_VALIDATION_SETTINGS: ValidationSettings = {
  lenientSync: false,
  workers: 0,
  maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
  resyncPerSecond: 10,
  resyncConcurrency: 4,
  resyncMaxQueued: 10_000,
  resyncHostConcurrency: 1,
  resyncHostPerSecond: 1,
  resyncHostMaxQueued: 1000,
  resyncTimeoutMs: 60_000,
  resyncRetryMs: 60_000,
  identityRetryMaxMs: 600_000,
  identityWebRetryMaxMs: 60_000,
  maxRepoBytes: 512 * 1024 * 1024,
  maxUnwrittenHeads: 16_384,
};

export type IdentitySource = Pick<IdentityCache, 'get' | 'resolve' | 'purge'>;

/** Handle → DID (DNS TXT, then HTTPS well-known, in production: HandleResolver). */
export interface HandleLookup {
  resolve(handle: string): Promise<string | null | undefined>;
}

export interface ValidatorOptions {
  store: MetadataStore;
  log: Sequencer;
  identity: IdentitySource;
  handleResolver: HandleLookup;
  fetcher: SafeFetcher;
  config?: Partial<ValidationSettings>;
  logger?: Logger;
  registry?: Registry;
  now?: () => number;
  /** Host sockets on the verify workers (ingest/socket-threads.ts). */
  socketThreads?: VerifyPoolOptions['socketThreads'];
}

export class Validator implements FrameSink {
  readonly metrics: ValidationMetrics;
  readonly settings: ValidationSettings;
  private readonly identity: IdentitySource;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly pool: VerifyPool;
  private readonly resyncer: Resyncer;
  private readonly heads: HeadWriter;
  private readonly order: OrderQueue;
  private readonly accounts: AccountResolver;
  /** What the per-type rules work with (one object, built here). */
  private readonly rules: RuleContext;
  private readonly admission: Admission;
  private readonly repos = new Map<string, RepoQueue>();
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];

  constructor(opts: ValidatorOptions) {
    this.settings = { ...DEFAULT_VALIDATION_SETTINGS, ...opts.config };
    this.identity = opts.identity;
    this.log = (opts.logger ?? silentLogger).child({ module: 'validate' });
    this.now = opts.now ?? Date.now;
    this.metrics = new ValidationMetrics(opts.registry);
    this.heads = new HeadWriter(
      opts.store,
      this.log,
      () => this.checkIdle(),
      this.settings.maxUnwrittenHeads,
      () => this.metrics.headWriteFailed(),
    );
    this.order = new OrderQueue(opts.log, this.heads, this.metrics, () => this.checkIdle());
    this.accounts = new AccountResolver({
      identity: this.identity,
      store: opts.store,
      order: this.order,
      settings: this.settings,
      metrics: this.metrics,
      log: this.log,
      now: this.now,
    });
    this.metrics.identityWaiting = () => this.accounts.identityWaitingCounts();
    this.pool = new VerifyPool({
      size: this.settings.workers,
      logger: this.log,
      observe: (type, seconds) => this.metrics.verifyTime(type, seconds),
      socketThreads: opts.socketThreads,
      maxRevSkewMs: this.settings.maxRevSkewMs,
    });
    this.resyncer = new Resyncer({
      fetcher: opts.fetcher,
      perSecond: this.settings.resyncPerSecond,
      concurrency: this.settings.resyncConcurrency,
      maxQueued: this.settings.resyncMaxQueued,
      hostConcurrency: this.settings.resyncHostConcurrency,
      hostPerSecond: this.settings.resyncHostPerSecond,
      hostMaxQueued: this.settings.resyncHostMaxQueued,
      onHostLimit: (result) => this.metrics.resyncHostLimited(result),
      timeoutMs: this.settings.resyncTimeoutMs,
      maxRepoBytes: this.settings.maxRepoBytes,
      now: this.now,
    });
    this.admission = {
      identity: this.identity,
      metrics: this.metrics,
      pool: this.pool,
      now: this.now,
      maxRevSkewMs: this.settings.maxRevSkewMs,
    };
    this.rules = {
      store: opts.store,
      settings: this.settings,
      metrics: this.metrics,
      log: this.log,
      now: this.now,
      accounts: this.accounts,
      heads: this.heads,
      order: this.order,
      handles: opts.handleResolver,
      resyncer: this.resyncer,
      resyncs: new ResyncAttempts(this.settings, this.now),
      finish: (job, decision) => this.finish(job, decision),
    };
  }

  /** Events submitted and not yet finished (all repos). */
  get pending(): number {
    let n = 0;
    for (const q of this.repos.values()) n += q.jobs.length;
    return n + this.order.waiting;
  }

  submit(frame: InboundFrame): Promise<void> {
    if (this.closed) return Promise.reject(new Error('validator is closed'));
    return new Promise<void>((resolve, reject) => {
      const job: Job = {
        frame,
        type: frame.type,
        did: '',
        gen: 0,
        inOrder: false,
        verifyKey: undefined,
        awaitingIdentity: false,
        decision: null,
        resolve,
        reject,
      };
      const rejected = admit(this.admission, job, frame);
      if (rejected) {
        this.order.enqueue(job);
        this.finish(job, rejected);
        return;
      }
      this.queueForRepo(job);
    });
  }

  /**
   * An operator action on an account — a takedown or its reversal — taken in
   * the account's own order, so the validator stays the one writer of the
   * log: it is decided after every event of the account submitted before
   * it, and its `#account` event is appended after theirs. A takedown hides
   * the account's events up to just before its `#account` (every one decided
   * before it, whenever its append lands), and the store already says
   * `takendown`, so the account's later events are dropped. The caller
   * records the takedown in the store first. Resolves with the relay seq of
   * the `#account` event (undefined when the DID is not a known account)
   * once it is durable and the hide is stored.
   */
  accountAction(did: string, action: AccountAction): Promise<number | undefined> {
    if (this.closed) return Promise.reject(new Error('validator is closed'));
    return new Promise<number | undefined>((resolve, reject) => {
      const job: Job = {
        frame: null,
        type: '#account',
        did,
        gen: 0,
        inOrder: false,
        verifyKey: undefined,
        awaitingIdentity: false,
        decision: null,
        admin: { action },
        resolve: () => resolve(job.admin?.seq),
        reject,
      };
      this.queueForRepo(job);
    });
  }

  /**
   * Resyncs the account now instead of on its next event, in the account's
   * order (after every event of it submitted before), through the resync
   * queue (its rate limit and per-host budget; at most one attempt per
   * resyncRetryMs). For an active account the relay is behind on (a missed
   * commit) it becomes `desynchronized` first, as a chain break would make
   * it. Only accounts active upstream whose local status is active or
   * desynchronized (not taken down, not throttled). Resolves once decided
   * (not once the resync finished): `queued`, `unchanged` (tried too
   * recently) or `ineligible`.
   */
  requestResync(did: string): Promise<RepairResult> {
    return this.queueRepair(did, { kind: 'resync' });
  }

  /**
   * Records an upstream status learned out of band (the host's listRepos or
   * getRepoStatus) in the account's order and, when that changes what the
   * relay publishes for it, emits the `#account` the relay would have
   * emitted had it seen the host's event. `emitted`, `unchanged` (already
   * so, or recorded with nothing new to publish) or `ineligible` (unknown
   * account).
   */
  applyUpstreamStatus(did: string, status: AccountStatus): Promise<RepairResult> {
    return this.queueRepair(did, { kind: 'upstream-status', status });
  }

  private queueRepair(did: string, repair: NonNullable<Job['repair']>): Promise<RepairResult> {
    if (this.closed) return Promise.reject(new Error('validator is closed'));
    return new Promise<RepairResult>((resolve, reject) => {
      const job: Job = {
        frame: null,
        type: '#account',
        did,
        gen: 0,
        inOrder: false,
        verifyKey: undefined,
        awaitingIdentity: false,
        decision: null,
        repair,
        resolve: () => resolve(job.repairResult ?? 'unchanged'),
        reject,
      };
      this.queueForRepo(job);
    });
  }

  private queueForRepo(job: Job): void {
    let q = this.repos.get(job.did);
    if (!q) {
      q = { did: job.did, jobs: [], parked: false, resyncPending: false };
      this.repos.set(job.did, q);
      q.jobs.push(job);
      if (!q.parked) this.order.enqueue(job);
      void this.runRepo(q);
    } else {
      q.jobs.push(job);
      if (!q.parked) this.order.enqueue(job);
    }
  }

  /**
   * Resolves when no repo has work queued or running (resyncs included),
   * nothing waits in the order queue, every append has settled and every
   * head is written.
   */
  whenIdle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  /** Stops accepting frames, stops the workers and the resync queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.accounts.close();
    this.heads.close();
    this.resyncer.close();
    await this.pool.close();
    await this.whenIdle();
  }

  // --- decisions -------------------------------------------------------------

  /** The job is decided: counted, then released through the order queue. */
  private finish(job: Job, decision: Decision): void {
    job.decision = decision;
    const type = job.type;
    if (decision.drop) {
      this.metrics.drop(type, decision.drop.reason, job.frame?.hostname);
      this.log.debug(
        {
          did: job.did || undefined,
          host: job.frame?.hostname,
          type,
          reason: decision.drop.reason,
          detail: decision.drop.detail,
          upstreamSeq: job.frame?.upstreamSeq,
        },
        'event dropped',
      );
    } else if (job.frame) {
      this.metrics.pass(type, job.frame.hostname);
    }
    this.order.decided(job);
  }

  private fail(job: Job, err: unknown): void {
    // the sink is broken or closing: the frame is neither appended nor dropped
    this.order.leave(job);
    this.log.warn({ did: job.did, host: job.frame?.hostname, err }, 'validation failed');
    job.reject(err);
    this.order.drain();
  }

  /**
   * The lowest relay seq whose repo head may not be in the store yet
   * (Infinity when every head is written). Heads are only staged for appended
   * events, so anything below this is reflected in the store.
   */
  headFloor(): number {
    return this.heads.floor();
  }

  /**
   * Resolves once the repo head of every event appended so far is written to
   * the store (or its write failed). The store's cursor batches wait for it
   * (head-writer.ts, "Cursors wait for heads").
   */
  headsWritten(): Promise<void> {
    return this.heads.barrier();
  }

  /** When repo head writes began failing in a row (they are retried), or undefined while they succeed. */
  headWritesFailingSince(): number | undefined {
    return this.heads.failingSince;
  }

  /**
   * The account's newest head when it is newer than the stored one: staged
   * after its event was decided and not yet written (heads are written in
   * batches; head-writer.ts). The sync read endpoints overlay it so that what
   * they answer is never older than what the firehose has served.
   */
  unwrittenHead(did: string): RepoHead | undefined {
    return this.heads.unwritten(did);
  }

  private checkIdle(): void {
    if (this.repos.size === 0 && this.order.idle && this.heads.idle) {
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  // --- per-repo processing --------------------------------------------------

  private async runRepo(q: RepoQueue): Promise<void> {
    while (q.jobs.length > 0) {
      const job = q.jobs[0];
      let decision: Decision | undefined;
      let failure: unknown;
      try {
        if (this.closed) throw new Error('validator is closed');
        decision = await this.process(job, q);
      } catch (err) {
        failure = err;
      }
      q.jobs.shift();
      if (decision) this.finish(job, decision);
      else this.fail(job, failure);
      if (q.resyncPending && !this.closed) await resyncRepo(this.rules, q);
    }
    this.repos.delete(q.did);
    this.checkIdle();
  }

  /** The job's decision, by the rules of its kind (rules-commit.ts, rules-account.ts). */
  private process(job: Job, q: RepoQueue): Promise<Decision> {
    if (job.admin) return processAccountAction(this.rules, job, q);
    if (job.repair) return processRepair(this.rules, job, q);
    switch (job.type) {
      case '#commit':
        return processCommit(this.rules, job, q);
      case '#sync':
        return processSync(this.rules, job, q);
      case '#identity':
        return processIdentity(this.rules, job, q);
      default:
        return processAccount(this.rules, job, q);
    }
  }
}
