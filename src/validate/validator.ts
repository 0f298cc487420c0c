// The validation stage between ingest and the sequencer (event log). Every
// inbound frame is checked here (sync 1.1 rules, see docs/validation.md), the
// relay's per-account state (head, status, host) is kept up to date, and what
// passes is appended to the log with a relay seq.
//
// Work is split by whether it needs account state:
// - stateless and CPU-heavy (frame decode, CAR hash checks, commit decode,
//   signature, MST inversion): a pool of worker threads (pool.ts,
//   verify-frame.ts). The main thread passes the signing key along when the
//   identity cache has it; otherwise the worker returns the signed bytes and
//   the main thread checks them once the DID is resolved.
// - stateful (identity, host authority, status, stored rev/since/prevData,
//   resync): the main thread, one repo at a time, in the repo's input order.
//
// Ordering. Three structures cooperate:
// 1. Per-DID queues. Each repo's events are processed strictly one after the
//    other in submit order (a repo's second commit is checked against the
//    head its first one left). Different repos proceed independently, and the
//    worker verdicts for a repo's later events are computed while its earlier
//    ones are still being checked.
// 2. The order queue: every event takes a place in one global FIFO in submit
//    order, and decided events leave it from the front only, each run of them
//    in one `append` call (the log assigns seqs in call order). So the
//    relay's output order is its input order, whatever order the workers
//    finish in.
// 3. Parking: a repo whose current event has to wait for the network (a DID
//    resolution that misses the cache, a forced re-resolution after a bad
//    signature or a host mismatch, a handle check, a resync) gives up its
//    places in the order queue: all of its queued events step out, as do the
//    ones submitted while it waits. When each of them is decided, it takes a
//    new place at the back of the queue. A slow DID thus never holds up other
//    repos, and a repo's own events stay in order (its earlier events hold
//    places ahead of any new place it takes). The repo is unparked when its
//    queue empties.
//    A DID resolution that fails transiently keeps the repo parked while it
//    is retried with back-off (resolveIdentity): an outage makes events
//    wait, it does not drop them.
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
// log (a dropped frame: once it reaches the front of the order queue and
// every append issued before it has settled, so a resolved submit means that
// everything ahead of it in the order queue is durable or dropped). The new
// repo head is written to the metadata store after that, batched over a short
// window (scheduleHeadWrites; an in-memory overlay serves the repo's next
// events meanwhile). Every event appended for an upstream frame carries the
// frame's origin (host, upstream seq), and `headFloor()` says from which
// relay seq on heads may still be unwritten; the log checkpoint stays below
// it, so after a crash log-recovery.ts rebuilds from the log's tail both the
// heads the store lacks and which re-received frames are already out (exactly
// once: see that file). A head write that fails leaves the stored head
// behind, so the repo's next event breaks the chain and resync heals it.
import type { Registry } from 'prom-client';
import { isActive, publishedStatus, statusOfPublished, upstreamStatusOf } from '../accounts/status.ts';
import type { AppendEvent, Sequencer } from '../eventlog/types.ts';
import { EventKind } from '../eventlog/types.ts';
import type { FrameSink, InboundFrame } from '../ingest/frame-sink.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { AccountEvent, IdentityEvent } from '../protocol/events.ts';
import { EventShapeError, parseEventBody } from '../protocol/events.ts';
import { decodeFrame, rewriteSeq } from '../protocol/frames.ts';
import type { AtprotoIdentity } from '../protocol/identity/did-document.ts';
import { type IdentityCache, isTransientIdentityError } from '../protocol/identity/identity-cache.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { PublicKey } from '../protocol/keys.ts';
import { accountFrame, identityFrame, syncFrame } from '../protocol/relay-frames.ts';
import { isValidHandle, normalizeHandle } from '../protocol/syntax.ts';
import type { Account, AccountStatus, MetadataStore, RepoHead } from '../store/metadata-store.ts';
import { peekEventDid } from './frame-peek.ts';
import { type ChainFailure, ValidationMetrics } from './metrics.ts';
import { VerifyPool } from './pool.ts';
import type { DropReason } from './reasons.ts';
import { Resyncer } from './resync.ts';
import {
  checkSignature,
  DEFAULT_MAX_REV_SKEW_MS,
  type VerifiedCommit,
  type VerifyResult,
  verifyFrame,
} from './verify-frame.ts';

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
};

/** Resync attempts remembered at most (lastResync). */
const MAX_TRACKED_RESYNCS = 100_000;

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
}

interface Decision {
  events: AppendEvent[];
  drop?: { reason: DropReason; detail: string };
  /** Repo head to write to the store once the events are durable. */
  write?: StagedHead;
  /** Hide (on) or show again the account's events, right as this decision's events are appended. */
  takedown?: { uid: number; on: boolean };
}

interface StagedHead {
  account: Account;
  head: RepoHead;
  /** #sync / resync: replace the head whatever its rev (not rev-gated). */
  reset: boolean;
  /** Relay seq of the event that set it (known once appended). */
  seq?: number;
}

/** How long a forced identity refresh that changed nothing suppresses the next one for the same reason. */
const FRUITLESS_REFRESH_MS = 60_000;
/** Bound of those notes (oldest forgotten first). */
const MAX_FRUITLESS_REFRESH_NOTES = 100_000;

/** Head writes per store call (one SQLite transaction). */
const HEAD_WRITE_CHUNK = 1024;
/** How long staged heads wait to be written together (hot accounts are written once per window). */
const HEAD_WRITE_DELAY_MS = 100;

interface Job {
  /** null for relay-originated events (resync). */
  frame: InboundFrame | null;
  type: string;
  did: string;
  verified?: Promise<VerifyResult>;
  parsed?: IdentityEvent | AccountEvent;
  /** Order-queue generation: an entry is live only while its gen equals the job's. */
  gen: number;
  inOrder: boolean;
  decision: Decision | null;
  /** An operator action (accountAction) instead of a frame; `seq` is its #account event's, once appended. */
  admin?: { action: AccountAction; seq?: number };
  /** A repair (requestResync, applyUpstreamStatus) instead of a frame; `result` is what it did. */
  repair?: { kind: 'resync' } | { kind: 'upstream-status'; status: AccountStatus };
  repairResult?: RepairResult;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Operator actions on an account, taken in the account's order (Validator.accountAction). */
export type AccountAction = 'takedown' | 'reverse-takedown';

/**
 * What a repair did: `queued` (a resync was queued; an #account was emitted),
 * `unchanged` (nothing to do: already so, or a resync tried too recently),
 * `ineligible` (unknown account, or one whose status rules it out).
 */
export type RepairResult = 'queued' | 'emitted' | 'unchanged' | 'ineligible';

interface OrderEntry {
  job: Job;
  gen: number;
}

interface RepoQueue {
  did: string;
  jobs: Job[];
  parked: boolean;
  resyncPending: boolean;
  /** When this repo's DID resolution began failing transiently (cleared by a success): one deadline for all its events. */
  identityFailingSince?: number;
}

interface AccountContext {
  identity: AtprotoIdentity;
  account: Account;
  /** The identity was fetched afresh while handling this event (no second re-resolve). */
  refreshed: boolean;
}

const KNOWN_TYPES = new Set(['#commit', '#sync', '#identity', '#account']);

function drop(reason: DropReason, detail: string, events: AppendEvent[] = []): Decision {
  return { events, drop: { reason, detail } };
}

function isDecision(v: AccountContext | Decision): v is Decision {
  return 'events' in v;
}

/** host[:port] of a PDS endpoint URL, normalised like the store's hostnames. */
export function pdsHostname(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  try {
    return new URL(endpoint).host.toLowerCase().replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

const stripDefaultPort = (h: string) => h.replace(/:(443|80)$/, '');

/**
 * PDS endpoint → its host without a default port, per endpoint string: the
 * identity cache interns endpoint URLs (a few hundred PDSes serve most
 * accounts), so this parses each once instead of once per event. Bounded:
 * cleared when it grows past 100,000 entries.
 */
const authorityOfEndpoint = new Map<string, string | null>();

function authorityOf(endpoint: string | undefined): string | undefined {
  if (!endpoint) return undefined;
  let a = authorityOfEndpoint.get(endpoint);
  if (a === undefined) {
    const host = pdsHostname(endpoint);
    a = host === undefined ? null : stripDefaultPort(host);
    if (authorityOfEndpoint.size >= 100_000) authorityOfEndpoint.clear();
    authorityOfEndpoint.set(endpoint, a);
  }
  return a ?? undefined;
}

/** True when the DID document's PDS is the host a frame came from (default ports ignored on both sides). */
export function isAuthoritativeHost(identity: AtprotoIdentity, hostname: string): boolean {
  const pds = authorityOf(identity.pdsEndpoint);
  if (pds === undefined) return false;
  return pds === stripDefaultPort(hostname);
}

function keyEquals(a: PublicKey | undefined, b: PublicKey | undefined): boolean {
  if (!a || !b || a.alg !== b.alg || a.bytes.length !== b.bytes.length) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

export class Validator implements FrameSink {
  readonly metrics: ValidationMetrics;
  readonly settings: ValidationSettings;
  private readonly store: MetadataStore;
  private readonly seqr: Sequencer;
  private readonly identity: IdentitySource;
  private readonly handles: HandleLookup;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly pool: VerifyPool;
  private readonly resyncer: Resyncer;
  private readonly repos = new Map<string, RepoQueue>();
  private readonly heads = new Map<string, RepoHead>();
  /** DID → time of its last resync attempt, oldest first; bounded (noteResyncAttempt). */
  /** DID → a recent forced refresh that changed nothing, and why (see mayForceRefresh). */
  private readonly fruitlessRefresh = new Map<string, { reason: string; until: number }>();
  /** Repos waiting to retry a DID resolution (for the waiting-events gauge). */
  private readonly identityWaiting = new Set<RepoQueue>();
  /** Wake-ups of those waits (close() ends them at once). */
  private readonly pauses = new Set<() => void>();
  private readonly lastResync = new Map<string, number>();
  private order: OrderEntry[] = [];
  /** Appends issued and not settled (whenIdle waits for them). */
  private appendsInFlight = 0;
  /** The last append issued, settled either way: drop-only batches resolve behind it. */
  private appendTail: Promise<unknown> = Promise.resolve();
  private orderHead = 0;
  private closed = false;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly headWrites: StagedHead[] = [];
  private headWriteTimer: NodeJS.Timeout | null = null;
  /** The chunk being written; one chunk at a time, so a repo's heads land in order. */
  private headWritesInFlight: StagedHead[] = [];

  constructor(opts: ValidatorOptions) {
    this.settings = { ...DEFAULT_VALIDATION_SETTINGS, ...opts.config };
    this.store = opts.store;
    this.seqr = opts.log;
    this.identity = opts.identity;
    this.handles = opts.handleResolver;
    this.log = (opts.logger ?? silentLogger).child({ module: 'validate' });
    this.now = opts.now ?? Date.now;
    this.metrics = new ValidationMetrics(opts.registry);
    this.metrics.identityWaiting = () => {
      let events = 0;
      for (const q of this.identityWaiting) events += q.jobs.length;
      return { repos: this.identityWaiting.size, events };
    };
    this.pool = new VerifyPool({
      size: this.settings.workers,
      logger: this.log,
      observe: (type, seconds) => this.metrics.verifyTime(type, seconds),
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
  }

  /** Events submitted and not yet finished (all repos). */
  get pending(): number {
    let n = 0;
    for (const q of this.repos.values()) n += q.jobs.length;
    return n + (this.order.length - this.orderHead);
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
        decision: null,
        resolve,
        reject,
      };
      const rejected = this.admit(job, frame);
      if (rejected) {
        this.enqueueOrdered(job);
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
      if (!q.parked) this.enqueueOrdered(job);
      void this.runRepo(q);
    } else {
      q.jobs.push(job);
      if (!q.parked) this.enqueueOrdered(job);
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
    for (const wake of this.pauses) wake();
    this.pauses.clear();
    if (this.headWriteTimer) {
      // write what is staged now rather than after the delay
      clearTimeout(this.headWriteTimer);
      this.headWriteTimer = null;
      this.scheduleHeadWrites();
    }
    this.resyncer.close();
    await this.pool.close();
    await this.whenIdle();
  }

  // --- admission (synchronous, at submit) ---------------------------------

  /** Reads the DID and starts the stateless work; returns a Decision only for frames rejected outright. */
  private admit(job: Job, frame: InboundFrame): Decision | undefined {
    if (!KNOWN_TYPES.has(frame.type)) return drop('unknown-type', `type ${frame.type.slice(0, 64)}`);
    // ingest read the DID in its one pass over the frame; other sources are peeked here
    const did = frame.did ?? peekEventDid(frame.frame, frame.type);
    if (did === undefined) return this.rejectUnreadable(frame);
    job.did = did;
    if (frame.type === '#commit' || frame.type === '#sync') {
      const cached = this.identity.get(did);
      this.metrics.identityLookup(cached !== undefined);
      if (!cached) this.identity.resolve(did).catch(() => {}); // warm up while the worker runs
      job.verified = this.pool.verify({
        type: frame.type,
        frame: frame.frame,
        movable: frame.owned === true,
        key: cached?.signingKey,
        nowMs: this.now(),
        maxRevSkewMs: this.settings.maxRevSkewMs,
      });
      // handled when the repo queue reaches the job; until then a rejection (pool closing) must not count as unhandled
      job.verified.catch(() => {});
      return undefined;
    }
    try {
      const { header, body } = decodeFrame(frame.frame);
      if (header.op !== 1 || header.t !== frame.type) return drop('bad-frame', 'header type mismatch');
      const parsed = parseEventBody(header.t, body);
      if (parsed.kind !== 'identity' && parsed.kind !== 'account')
        return drop('bad-frame', 'unexpected kind');
      job.parsed = parsed.event;
      if (parsed.event.did !== did) return drop('bad-event', 'did mismatch');
    } catch (err) {
      if (err instanceof EventShapeError) return drop('bad-event', err.message);
      return drop('bad-frame', (err as Error).message);
    }
    return undefined;
  }

  private rejectUnreadable(frame: InboundFrame): Decision {
    if (frame.type === '#commit' || frame.type === '#sync') {
      const r = verifyFrame({ type: frame.type, frame: frame.frame, nowMs: this.now(), maxRevSkewMs: 0 });
      if (!r.ok) return drop(r.reason, r.detail);
    } else {
      try {
        parseEventBody(frame.type, decodeFrame(frame.frame).body);
      } catch (err) {
        return drop(err instanceof EventShapeError ? 'bad-event' : 'bad-frame', (err as Error).message);
      }
    }
    return drop('bad-event', 'no readable DID');
  }

  // --- the order queue ------------------------------------------------------

  private enqueueOrdered(job: Job): void {
    job.gen++;
    job.inOrder = true;
    this.order.push({ job, gen: job.gen });
  }

  /** The repo's events leave the order queue until each is decided (see the file comment). */
  private park(q: RepoQueue): void {
    if (q.parked) return;
    q.parked = true;
    for (const j of q.jobs) {
      if (j.inOrder && j.decision === null) {
        j.gen++;
        j.inOrder = false;
      }
    }
    this.drain();
  }

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
    if (!job.inOrder) this.enqueueOrdered(job);
    this.drain();
  }

  private drain(): void {
    const batch: Job[] = [];
    while (this.orderHead < this.order.length) {
      const e = this.order[this.orderHead];
      if (e.gen !== e.job.gen) {
        this.orderHead++;
        continue;
      }
      if (e.job.decision === null) break;
      batch.push(e.job);
      this.orderHead++;
    }
    if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order = this.order.slice(this.orderHead);
      this.orderHead = 0;
    }
    if (batch.length > 0) this.flush(batch);
  }

  private flush(batch: Job[]): void {
    const events: AppendEvent[] = [];
    for (const j of batch) {
      const d = j.decision as Decision;
      const frame = j.frame;
      for (const e of d.events) {
        if (frame) e.origin = { hostId: frame.hostId, seq: frame.upstreamSeq };
        events.push(e);
      }
    }
    if (events.length === 0) {
      void this.appendTail.then(() => {
        for (const j of batch) j.resolve();
      });
      return;
    }
    let appended: Promise<number[]>;
    try {
      appended = this.seqr.append(events);
    } catch (err) {
      appended = Promise.reject(err);
    }
    this.appendTail = appended.catch(() => {});
    this.appendsInFlight++;
    void appended
      .catch(() => {})
      .then(() => {
        this.appendsInFlight--;
        this.checkIdle();
      });
    // Takedown hides, in the same synchronous step as the append that assigned
    // the #account seqs: every earlier event of the account is at or below it.
    const hides = new Map<Job, Promise<void>>();
    for (const j of batch) {
      const td = (j.decision as Decision).takedown;
      if (!td) continue;
      const seq = j.admin?.seq;
      if (td.on && seq === undefined) continue; // the append refused the batch
      hides.set(j, this.seqr.setTakedown(td.uid, td.on, td.on ? (seq as number) - 1 : undefined));
    }
    appended.then(
      (seqs) => {
        const now = performance.now();
        let k = 0;
        for (const j of batch) {
          const d = j.decision as Decision;
          k += d.events.length;
          if (!d.drop && typeof j.frame?.receivedAt === 'number') {
            this.metrics.latency(j.type, (now - j.frame.receivedAt) / 1000);
          }
          const hide = hides.get(j);
          if (d.write) {
            // written later, batched; headFloor() covers it until then
            d.write.seq = seqs[k - 1];
            this.headWrites.push(d.write);
          }
          if (hide) hide.then(j.resolve, j.reject);
          else j.resolve();
        }
        this.scheduleHeadWrites();
      },
      (err: unknown) => {
        for (const j of batch) j.reject(err);
      },
    );
  }

  /**
   * The lowest relay seq whose repo head may not be in the store yet
   * (Infinity when every head is written). Heads are only staged for appended
   * events, so anything below this is reflected in the store.
   */
  headFloor(): number {
    let floor = Number.POSITIVE_INFINITY;
    for (const w of this.headWritesInFlight) if (w.seq !== undefined && w.seq < floor) floor = w.seq;
    for (const w of this.headWrites) if (w.seq !== undefined && w.seq < floor) floor = w.seq;
    return floor;
  }

  // Head writes run after the append is durable, off the submit path, one
  // chunk at a time, HEAD_WRITE_DELAY_MS after the first head waiting (at
  // once when a chunk is full, or when closing). Consecutive rev-gated
  // updates go to the store in one updateAccountHeads call (one SQLite
  // transaction, one PostgreSQL round trip), keeping only the newest head per
  // account — an account that commits several times in the window is written
  // once; resets are written one by one in their place, so a repo's heads
  // land in the order they were staged. The chunk bound keeps one call from
  // stalling the main thread. Until a head is written the in-memory overlay
  // serves it, and headFloor() keeps the log checkpoint below its event, so a
  // crash repairs it from the log (ingest/log-recovery.ts).
  private scheduleHeadWrites(): void {
    if (this.headWriteTimer || this.headWritesInFlight.length > 0 || this.headWrites.length === 0) return;
    const now = this.closed || this.headWrites.length >= HEAD_WRITE_CHUNK;
    this.headWriteTimer = setTimeout(
      () => {
        this.headWriteTimer = null;
        const chunk = this.headWrites.splice(0, HEAD_WRITE_CHUNK);
        this.headWritesInFlight = chunk;
        void this.writeHeads(chunk).finally(() => {
          this.headWritesInFlight = [];
          this.scheduleHeadWrites();
          this.checkIdle();
        });
      },
      now ? 0 : HEAD_WRITE_DELAY_MS,
    );
  }

  private async writeHeads(chunk: StagedHead[]): Promise<void> {
    let i = 0;
    while (i < chunk.length) {
      const start = i;
      try {
        if (chunk[i].reset) {
          const { account, head } = chunk[i++];
          await this.store.resetAccountHead(account.uid, head);
        } else {
          // A run of updates; per uid only the highest rev, which is what
          // applying them one by one with the rev gate would leave.
          const best = new Map<number, { uid: number; did: string; head: RepoHead }>();
          for (; i < chunk.length && !chunk[i].reset; i++) {
            const { account, head } = chunk[i];
            const cur = best.get(account.uid);
            if (!cur || cur.head.rev < head.rev)
              best.set(account.uid, { uid: account.uid, did: account.did, head });
          }
          await this.store.updateAccountHeads([...best.values()]);
        }
      } catch (err) {
        // The stored heads stay behind; the repos' next events break the chain and resync heals it.
        this.log.error({ err, heads: i - start }, 'repo head write failed');
      }
      for (let k = start; k < i; k++) {
        const { account, head } = chunk[k];
        if (this.heads.get(account.did) === head) this.heads.delete(account.did);
      }
    }
  }

  private checkIdle(): void {
    if (
      this.repos.size === 0 &&
      this.appendsInFlight === 0 &&
      this.orderHead >= this.order.length &&
      this.headWrites.length === 0 &&
      this.headWritesInFlight.length === 0
    ) {
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
      if (q.resyncPending && !this.closed) await this.resync(q);
    }
    this.repos.delete(q.did);
    this.checkIdle();
  }

  private fail(job: Job, err: unknown): void {
    // the sink is broken or closing: the frame is neither appended nor dropped
    if (job.inOrder) job.gen++;
    job.inOrder = false;
    this.log.warn({ did: job.did, host: job.frame?.hostname, err }, 'validation failed');
    job.reject(err);
    this.drain();
  }

  private process(job: Job, q: RepoQueue): Promise<Decision> {
    if (job.admin) return this.processAccountAction(job, q);
    if (job.repair) return this.processRepair(job, q);
    switch (job.type) {
      case '#commit':
        return this.processCommit(job, q);
      case '#sync':
        return this.processSync(job, q);
      case '#identity':
        return this.processIdentity(job, q);
      default:
        return this.processAccount(job, q);
    }
  }

  /**
   * The repo's identity: cached, or resolved while the repo is parked (its
   * events step out of the order queue, so other repos go on). A transient
   * failure is not a verdict (issue 13): the resolution is retried with
   * back-off (1 s doubling to 10 s; the cache answers repeats within its
   * error TTL itself) for up to identityRetryMaxMs, and the repo's events
   * wait, so the host's cursor does not pass them. Only a definitive answer
   * (not found, tombstoned, invalid document) or the end of that time drops.
   */
  private async resolveIdentity(q: RepoQueue, force: boolean): Promise<AtprotoIdentity> {
    if (!force) {
      const cached = this.identity.get(q.did);
      if (cached) return cached;
    }
    this.park(q);
    const limit = q.did.startsWith('did:web:')
      ? this.settings.identityWebRetryMaxMs
      : this.settings.identityRetryMaxMs;
    let delay = 1000;
    for (;;) {
      try {
        const identity = await this.identity.resolve(q.did, force ? { forceRefresh: true } : {});
        q.identityFailingSince = undefined;
        return identity;
      } catch (err) {
        if (this.closed || !isTransientIdentityError(err)) throw err;
        // one deadline per repo: its later events do not each wait the whole time again
        q.identityFailingSince ??= this.now();
        if (this.now() - q.identityFailingSince + delay > limit) throw err;
        this.metrics.identityRetry();
        this.identityWaiting.add(q);
        try {
          await this.pause(delay);
        } finally {
          this.identityWaiting.delete(q);
        }
        if (this.closed) throw err;
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  /**
   * A forced refresh of a DID's document is skipped when the last one for the
   * same reason (a given host not being authoritative, or the signing key)
   * changed nothing less than FRUITLESS_REFRESH_MS ago: events from a wrong
   * host, or badly signed ones, cannot each cost a PLC request (issue 13).
   * The first event after a real migration or key rotation still refreshes.
   */
  private mayForceRefresh(did: string, reason: string): boolean {
    const f = this.fruitlessRefresh.get(did);
    if (f === undefined || f.reason !== reason) return true;
    if (this.now() >= f.until) {
      this.fruitlessRefresh.delete(did);
      return true;
    }
    return false;
  }

  private noteFruitlessRefresh(did: string, reason: string): void {
    this.fruitlessRefresh.delete(did);
    this.fruitlessRefresh.set(did, { reason, until: this.now() + FRUITLESS_REFRESH_MS });
    // bounded: the oldest notes go first (at worst a refresh happens again)
    if (this.fruitlessRefresh.size > MAX_FRUITLESS_REFRESH_NOTES) {
      const oldest = this.fruitlessRefresh.keys().next().value;
      if (oldest !== undefined) this.fruitlessRefresh.delete(oldest);
    }
  }

  /** Resolves after `ms`, or at once when the validator closes. */
  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pauses.delete(done);
        resolve();
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.pauses.add(done);
    });
  }

  /**
   * accountContext's answer without waiting, when everything it needs is in
   * memory — the steady state: the identity cached and naming the frame's
   * host, the account cached and on that host. Undefined otherwise (then
   * accountContext does the whole job: resolution, re-resolution, creation,
   * migration). Same result, minus the promises a #commit would otherwise
   * cost on the main thread.
   */
  private accountContextNow(job: Job, q: RepoQueue): AccountContext | undefined {
    const frame = job.frame as InboundFrame;
    const identity = this.identity.get(q.did);
    if (identity === undefined || !isAuthoritativeHost(identity, frame.hostname)) return undefined;
    const account = this.store.cachedAccountByDid?.(q.did);
    if (account === undefined || account.hostId !== frame.hostId) return undefined;
    return { identity, account, refreshed: false };
  }

  /** Identity, host authority (re-resolving once on mismatch) and the account row (created, or moved on migration). */
  private async accountContext(
    job: Job,
    q: RepoQueue,
    forceResolve = false,
  ): Promise<AccountContext | Decision> {
    const frame = job.frame as InboundFrame;
    let identity: AtprotoIdentity;
    const hostKey = `host ${frame.hostname}`;
    const force = forceResolve && this.mayForceRefresh(q.did, hostKey);
    let refreshed = force;
    try {
      identity = await this.resolveIdentity(q, force);
      if (
        !isAuthoritativeHost(identity, frame.hostname) &&
        !refreshed &&
        this.mayForceRefresh(q.did, hostKey)
      ) {
        // maybe the account moved here: one fresh look at its document
        this.metrics.event('re-resolve');
        identity = await this.resolveIdentity(q, true);
        refreshed = true;
      }
      if (refreshed && !isAuthoritativeHost(identity, frame.hostname))
        this.noteFruitlessRefresh(q.did, hostKey);
    } catch (err) {
      return drop('identity-unresolved', (err as Error).message);
    }
    if (!isAuthoritativeHost(identity, frame.hostname)) {
      return drop('wrong-host', `DID document names ${identity.pdsEndpoint ?? 'no PDS'}`);
    }
    let account = await this.store.getAccountByDid(q.did);
    if (!account) {
      account = await this.createAccount(q.did, frame.hostId);
    } else if (account.hostId !== frame.hostId) {
      this.metrics.event('migration');
      this.log.info(
        { did: q.did, from: account.hostId, to: frame.hostId, host: frame.hostname },
        'account moved',
      );
      account = (await this.store.setAccountHost(account.uid, frame.hostId)) ?? account;
    }
    return { identity, account, refreshed };
  }

  private async createAccount(did: string, hostId: number): Promise<Account> {
    const host = await this.store.getHost(hostId);
    const throttled = host !== undefined && !host.trusted && host.accountCount >= host.accountLimit;
    const res = await this.store.createAccount({ did, hostId, status: throttled ? 'throttled' : 'active' });
    if (res.created && throttled) {
      this.metrics.event('throttled');
      this.log.info({ did, hostId, limit: host?.accountLimit }, 'new account over its host limit: throttled');
    }
    return res.value;
  }

  /** Signature with the account's current key; one forced re-resolution on failure (key rotation). */
  private async checkCommitSignature(
    r: VerifiedCommit,
    ctx: AccountContext,
    q: RepoQueue,
  ): Promise<Decision | undefined> {
    if (r.sig === 'ok') return undefined;
    const signed = r.signed;
    if (!signed) return drop('bad-signature', 'no signed bytes');
    const attempt = (id: AtprotoIdentity) =>
      id.signingKey ? checkSignature(id.signingKey, signed.message, signed.sig) : 'no-key';
    let identity = ctx.identity;
    let s = attempt(identity);
    if (s === 'bad' && !ctx.refreshed && this.mayForceRefresh(q.did, 'key')) {
      this.metrics.event('re-resolve');
      try {
        const before = identity.signingKey;
        identity = await this.resolveIdentity(q, true);
        if (!keyEquals(before, identity.signingKey)) s = attempt(identity);
        else this.noteFruitlessRefresh(q.did, 'key');
      } catch (err) {
        return drop('identity-unresolved', (err as Error).message);
      }
    }
    if (s === 'ok') return undefined;
    if (s === 'high-s') return drop('high-s-signature', 'signature is in high-S form');
    if (s === 'no-key') return drop('no-signing-key', 'DID document has no #atproto key');
    return drop('bad-signature', 'signature does not verify against the account key');
  }

  /**
   * The account's newest head when it is newer than the stored one: staged
   * after its event was decided and not yet written (heads are written in
   * batches, HEAD_WRITE_DELAY_MS apart). The sync read endpoints overlay it so
   * that what they answer is never older than what the firehose has served.
   */
  unwrittenHead(did: string): RepoHead | undefined {
    return this.heads.get(did);
  }

  private currentHead(account: Account): RepoHead | null {
    return this.heads.get(account.did) ?? account.head;
  }

  /** Remembers the head until the store has it; the write runs after the append (writeHeads). */
  private stageHead(account: Account, head: RepoHead, reset: boolean): StagedHead {
    this.heads.set(account.did, head);
    return { account, head, reset };
  }

  /**
   * Records a resync attempt. Attempts older than the retry interval hold
   * nothing back, so they are dropped (re-inserting keeps the map oldest
   * first, so that is a walk from the front); past MAX_TRACKED_RESYNCS the
   * oldest go too (such an account may retry a little early, still through
   * the resync queue's rate limit).
   */
  private noteResyncAttempt(did: string): void {
    const now = this.now();
    this.lastResync.delete(did);
    for (const [d, t] of this.lastResync) {
      if (now - t < this.settings.resyncRetryMs && this.lastResync.size < MAX_TRACKED_RESYNCS) break;
      this.lastResync.delete(d);
    }
    this.lastResync.set(did, now);
  }

  private maybeScheduleResync(q: RepoQueue): void {
    const last = this.lastResync.get(q.did);
    if (last === undefined || this.now() - last >= this.settings.resyncRetryMs) q.resyncPending = true;
  }

  private nowIso(): string {
    return new Date(this.now()).toISOString();
  }

  private async processCommit(job: Job, q: RepoQueue): Promise<Decision> {
    const frame = job.frame as InboundFrame;
    const r = await (job.verified as Promise<VerifyResult>);
    if (r.frame) frame.frame = r.frame; // moved to the worker and back (pool.ts)
    if (!r.ok) return drop(r.reason, r.detail);
    const ctx = this.accountContextNow(job, q) ?? (await this.accountContext(job, q));
    if (isDecision(ctx)) return ctx;
    const { account } = ctx;
    if (account.status === 'desynchronized') {
      this.maybeScheduleResync(q);
      return drop('desynchronized', 'account awaits a resync');
    }
    if (!isActive(account))
      return drop('inactive-account', `status ${account.status}/${account.upstreamStatus}`);
    if (r.sig !== 'ok') {
      const sigErr = await this.checkCommitSignature(r, ctx, q);
      if (sigErr) return sigErr;
    }
    const head = this.currentHead(account);
    if (head && r.rev <= head.rev) return drop('rev-not-newer', `rev ${r.rev} <= stored ${head.rev}`);

    const breaks: ChainFailure[] = [];
    if (r.proof !== 'ok') breaks.push('inversion');
    if (head) {
      if (r.since !== head.rev) breaks.push('since');
      if (r.prevData === null) this.metrics.event('missing-prev-data');
      else if (r.prevData !== head.dataCid) breaks.push('prev-data');
    }
    if (breaks.length > 0) {
      const lenient = this.settings.lenientSync;
      for (const b of breaks) this.metrics.chainFailure(b, lenient);
      const detail = `sync 1.1 chain broken (${breaks.join(', ')}): since ${r.since}, stored rev ${head?.rev ?? 'none'}${r.proofDetail ? `; ${r.proofDetail}` : ''}`;
      if (lenient) {
        this.log.warn(
          { did: q.did, host: frame.hostname, breaks, rev: r.rev },
          'sync 1.1 check failed (lenient: passed)',
        );
      } else {
        const updated = (await this.store.setAccountStatus(account.uid, 'desynchronized')) ?? account;
        this.lastResync.delete(q.did);
        q.resyncPending = true;
        this.log.info(
          { did: q.did, host: frame.hostname, breaks },
          'chain break: account desynchronized, resync queued',
        );
        return drop('chain-break', detail, [this.accountEvent(updated, q.did, this.nowIso())]);
      }
    }
    const write = this.stageHead(account, { rev: r.rev, commitCid: r.commitCid, dataCid: r.dataCid }, false);
    const bytes = frame.frame;
    return {
      events: [
        {
          kind: EventKind.commit,
          uid: account.uid,
          frame: (seq) => rewriteSeq(bytes, seq),
          // what the worker learned, so the collection index needs no decode
          meta: {
            type: '#commit',
            did: q.did,
            rev: r.rev,
            collections: r.collections ?? { created: [], gone: [], unknown: [], decided: 0 },
          },
        },
      ],
      write,
    };
  }

  private async processSync(job: Job, q: RepoQueue): Promise<Decision> {
    const frame = job.frame as InboundFrame;
    const r = await (job.verified as Promise<VerifyResult>);
    if (r.frame) frame.frame = r.frame; // moved to the worker and back (pool.ts)
    if (!r.ok) return drop(r.reason, r.detail);
    const ctx = await this.accountContext(job, q);
    if (isDecision(ctx)) return ctx;
    let { account } = ctx;
    const healing = account.status === 'desynchronized';
    if ((account.status !== 'active' && !healing) || account.upstreamStatus !== 'active') {
      return drop('inactive-account', `status ${account.status}/${account.upstreamStatus}`);
    }
    const sigErr = await this.checkCommitSignature(r, ctx, q);
    if (sigErr) return sigErr;
    const head = this.currentHead(account);
    if (head && r.rev < head.rev) return drop('rev-not-newer', `rev ${r.rev} < stored ${head.rev}`);
    const write = this.stageHead(account, { rev: r.rev, commitCid: r.commitCid, dataCid: r.dataCid }, true);
    const bytes = frame.frame;
    const events: AppendEvent[] = [
      {
        kind: EventKind.sync,
        uid: account.uid,
        frame: (seq) => rewriteSeq(bytes, seq),
        meta: { type: '#sync', did: q.did, rev: r.rev },
      },
    ];
    if (healing) {
      q.resyncPending = false;
      account = (await this.store.setAccountStatus(account.uid, 'active')) ?? account;
      events.push(this.accountEvent(account, q.did, this.nowIso()));
    }
    return { events, write };
  }

  private async processIdentity(job: Job, q: RepoQueue): Promise<Decision> {
    const ev = job.parsed as IdentityEvent;
    const frame = job.frame as InboundFrame;
    // The event says the identity changed: fetch it afresh (the cache keeps
    // the old one until the answer comes, and rate-limits refreshes per DID),
    // then check host authority with what came back. Nothing is purged on the
    // word of a host that may not be the account's.
    const ctx = await this.accountContext(job, q, true);
    if (isDecision(ctx)) return ctx;
    const { account, identity } = ctx;
    if (account.status !== 'active' && account.status !== 'desynchronized') {
      return drop('inactive-account', `local status ${account.status}`);
    }
    let handle: string | undefined;
    if (ev.handle !== undefined) {
      if (await this.verifyHandle(ev.handle, identity, q)) handle = normalizeHandle(ev.handle);
      else {
        this.metrics.event('unverified-handle');
        this.log.debug(
          { did: q.did, host: frame.hostname, handle: ev.handle },
          'handle not verified: passed without it',
        );
      }
    }
    const bytes = frame.frame;
    const out =
      handle !== undefined && handle === ev.handle
        ? (seq: number) => rewriteSeq(bytes, seq)
        : identityFrame(q.did, ev.time, handle);
    return { events: [{ kind: EventKind.identity, uid: account.uid, frame: out }] };
  }

  /** Bidirectional: the DID document claims the handle and the handle resolves to the DID. */
  private async verifyHandle(handle: string, identity: AtprotoIdentity, q: RepoQueue): Promise<boolean> {
    if (!isValidHandle(handle)) return false;
    const h = normalizeHandle(handle);
    if (identity.handle !== h) return false;
    this.park(q);
    try {
      return (await this.handles.resolve(h)) === q.did;
    } catch {
      return false;
    }
  }

  private async processAccount(job: Job, q: RepoQueue): Promise<Decision> {
    const ev = job.parsed as AccountEvent;
    const ctx = await this.accountContext(job, q);
    if (isDecision(ctx)) return ctx;
    let { account } = ctx;
    const upstream = upstreamStatusOf(ev.active, ev.status);
    if (account.upstreamStatus !== upstream) {
      account = (await this.store.setAccountUpstreamStatus(account.uid, upstream)) ?? account;
    }
    return { events: [this.accountEvent(account, q.did, ev.time)] };
  }

  /** The relay's #account event for an account: its own published status, with the status as meta. */
  private accountEvent(account: Account, did: string, time: string): AppendEvent {
    const published = publishedStatus(account);
    return {
      kind: EventKind.account,
      uid: account.uid,
      frame: accountFrame(did, published, time),
      meta: { type: '#account', did, status: statusOfPublished(published) },
    };
  }

  private async processAccountAction(job: Job, q: RepoQueue): Promise<Decision> {
    const admin = job.admin as NonNullable<Job['admin']>;
    const account = await this.store.getAccountByDid(q.did);
    if (!account) return { events: [] };
    const status = publishedStatus(account);
    const time = this.nowIso();
    return {
      events: [
        {
          kind: EventKind.account,
          uid: account.uid,
          // the log calls this with the seq as it appends: the hide ends just before it
          frame: (seq) => {
            admin.seq = seq;
            return accountFrame(q.did, status, time)(seq);
          },
          meta: { type: '#account', did: q.did, status: statusOfPublished(status) },
        },
      ],
      takedown: { uid: account.uid, on: admin.action === 'takedown' },
    };
  }

  private async processRepair(job: Job, q: RepoQueue): Promise<Decision> {
    const repair = job.repair as NonNullable<Job['repair']>;
    let account = await this.store.getAccountByDid(q.did);
    if (!account) {
      job.repairResult = 'ineligible';
      return { events: [] };
    }
    if (repair.kind === 'resync') {
      const eligible =
        account.upstreamStatus === 'active' &&
        (account.status === 'active' || account.status === 'desynchronized');
      if (!eligible) {
        job.repairResult = 'ineligible';
        return { events: [] };
      }
      const last = this.lastResync.get(q.did);
      if (last !== undefined && this.now() - last < this.settings.resyncRetryMs) {
        job.repairResult = 'unchanged';
        return { events: [] };
      }
      if (account.status === 'active') await this.store.setAccountStatus(account.uid, 'desynchronized');
      q.resyncPending = true;
      job.repairResult = 'queued';
      return { events: [] };
    }
    if (account.upstreamStatus === repair.status) {
      job.repairResult = 'unchanged';
      return { events: [] };
    }
    const before = statusOfPublished(publishedStatus(account));
    account = (await this.store.setAccountUpstreamStatus(account.uid, repair.status)) ?? account;
    if (statusOfPublished(publishedStatus(account)) === before) {
      job.repairResult = 'unchanged';
      return { events: [] };
    }
    job.repairResult = 'emitted';
    return { events: [this.accountEvent(account, q.did, this.nowIso())] };
  }

  // --- resync -----------------------------------------------------------------

  /** Rebuilds the head of a desynchronized repo from its PDS, then emits #sync and the account's status. */
  private async resync(q: RepoQueue): Promise<void> {
    q.resyncPending = false;
    this.park(q);
    const did = q.did;
    this.noteResyncAttempt(did);
    try {
      const account = await this.store.getAccountByDid(did);
      if (account?.status !== 'desynchronized') return;
      this.metrics.resyncQueue.set(this.resyncer.queued + 1);
      const identity = await this.resolveIdentity(q, false);
      if (!identity.pdsEndpoint || !identity.signingKey) throw new Error('DID document lacks a PDS or key');
      const fetched = await this.resyncer.fetchHead(did, identity.pdsEndpoint, identity.signingKey);
      this.metrics.resyncQueue.set(this.resyncer.queued);
      const head = this.currentHead(account);
      if (head && fetched.rev < head.rev)
        throw new Error(`PDS repo rev ${fetched.rev} is older than ${head.rev}`);
      const write = this.stageHead(
        account,
        { rev: fetched.rev, commitCid: fetched.commitCid.$link, dataCid: fetched.dataCid.$link },
        true,
      );
      const updated = (await this.store.setAccountStatus(account.uid, 'active')) ?? account;
      const time = this.nowIso();
      const events: AppendEvent[] = [
        {
          kind: EventKind.sync,
          uid: account.uid,
          frame: syncFrame(did, fetched.rev, fetched.commitCid, fetched.commitBlock, time),
          meta: { type: '#sync', did, rev: fetched.rev, resync: { collections: fetched.collections } },
        },
        this.accountEvent(updated, did, time),
      ];
      this.metrics.resync(true);
      this.log.info({ did, rev: fetched.rev }, 'repo resynced');
      const job: Job = {
        frame: null,
        type: '#sync',
        did,
        gen: 0,
        inOrder: false,
        decision: null,
        resolve: () => {},
        reject: (err) => this.log.error({ did, err }, 'resync events not appended'),
      };
      this.finish(job, { events, write });
    } catch (err) {
      this.metrics.resync(false);
      this.metrics.resyncQueue.set(this.resyncer.queued);
      this.log.warn({ did, err: (err as Error).message }, 'resync failed; account stays desynchronized');
    }
  }
}
