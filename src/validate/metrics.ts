// Counters of the validation stage. Each outcome is counted twice: in a
// Prometheus counter (for operators; labels are closed sets: event type and a
// DropReason) and in plain in-process tallies that tests and the benchmark
// read synchronously without going through the registry. Two histograms
// time the stage: ingest-to-durable latency of passed events (from the
// moment ingest read the frame to the moment its append is durable, so it
// includes queueing behind the repo's earlier events and the group commit),
// and the worker verification round trip of #commit/#sync (pool queue plus
// signature and MST checks). Outcomes per host are a separate two-series
// counter (passed/dropped), so the host label does not multiply the
// type × reason series.
import { Counter, Gauge, Registry } from 'prom-client';
import { type TallyChild, TallyHistogram } from '../tally-histogram.ts';
import type { DropReason } from './reasons.ts';

export type ChainFailure = 'since' | 'prev-data' | 'inversion';

export class ValidationMetrics {
  readonly passed = new Map<string, number>();
  readonly dropped = new Map<DropReason, number>();
  readonly chainFailures = new Map<ChainFailure, number>();
  resyncs = { ok: 0, failed: 0 };
  migrations = 0;
  throttledAccounts = 0;
  missingPrevData = 0;
  unverifiedHandles = 0;
  reresolutions = 0;
  /** #commit/#sync admissions whose signing key was in the identity cache (hit) or not (miss). */
  identity = { hits: 0, misses: 0 };
  /** #commit/#sync verified on the thread that read them (in-place.ts), no task posted. */
  verifiedWhereRead = 0;
  private readonly whereReadCounter: Counter;
  /** Retries of a DID resolution that failed transiently (the repo's events waited). */
  identityRetries = 0;
  /** Signatures the validator checked itself, after the worker (see signatureOnMainThread). */
  mainThreadSignatures = 0;
  /** Account state writes waiting until the repo's earlier events are durable and their heads stored (job.ts storedAfterEarlierEvents). */
  accountWritesWaiting = 0;
  /** Append batches whose submits were held until their repo heads were written (head-writer.ts, "Backpressure"). */
  headBackpressure = 0;
  private readonly headBackpressureCounter: Counter;
  /** Repo head write attempts that failed (retried: head-writer.ts). */
  headWriteFailures = 0;
  private readonly headWriteFailureCounter: Counter;

  private readonly passedCounter: Counter<'type'>;
  private readonly droppedCounter: Counter<'type' | 'reason'>;
  private readonly byHostCounter: Counter<'host' | 'result'>;
  private readonly chainCounter: Counter<'check' | 'mode'>;
  private readonly resyncCounter: Counter<'result'>;
  private readonly resyncHostCounter: Counter<'result'>;
  /** Resyncs that waited for their host's budget / were refused for it (resync.ts). */
  resyncHostLimits = { deferred: 0, refused: 0 };
  private readonly miscCounter: Counter<'event'>;
  private readonly identityCounter: Counter<'result'>;
  readonly resyncQueue: Gauge;
  private readonly identityRetryCounter: Counter;
  private readonly mainThreadSignatureCounter: Counter;
  /** Repos and their events waiting for a DID resolution to be retried (set by the validator). */
  identityWaiting: () => { repos: number; events: number } = () => ({ repos: 0, events: 0 });
  private readonly latencyHistogram: TallyHistogram<'type'>;
  private readonly verifyHistogram: TallyHistogram<'type'>;

  constructor(registry: Registry = new Registry()) {
    const registers = [registry];
    const metrics = this;
    this.passedCounter = new Counter({
      name: 'relay_validation_passed_total',
      help: 'Inbound events that passed validation and were appended to the event log',
      labelNames: ['type'],
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.droppedCounter = new Counter({
      name: 'relay_validation_dropped_total',
      help: 'Inbound events dropped by validation, by reason',
      labelNames: ['type', 'reason'],
      registers,
    });
    this.byHostCounter = new Counter({
      name: 'relay_validation_events_by_host_total',
      help: 'Inbound events by upstream host and outcome (passed, dropped)',
      labelNames: ['host', 'result'],
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.chainCounter = new Counter({
      name: 'relay_validation_sync_chain_failures_total',
      help: 'Sync 1.1 chain check failures (since, prevData, inversion); mode lenient means the event was passed anyway',
      labelNames: ['check', 'mode'],
      registers,
    });
    this.resyncCounter = new Counter({
      name: 'relay_validation_resyncs_total',
      help: 'Repo resyncs (getRepo from the PDS after a chain break), by result',
      labelNames: ['result'],
      registers,
    });
    this.resyncHostCounter = new Counter({
      name: 'relay_validation_resync_host_limited_total',
      help: "Resyncs held by their host's own budget (RELAY_RESYNC_HOST_*): deferred (waited for it) or refused (the host's queue was full)",
      labelNames: ['result'],
      registers,
    });
    this.miscCounter = new Counter({
      name: 'relay_validation_account_events_total',
      help: 'Account state changes made by validation: migration, throttled, missing-prev-data, unverified-handle, re-resolve',
      labelNames: ['event'],
      registers,
    });
    this.whereReadCounter = new Counter({
      name: 'relay_validation_verified_where_read_total',
      help: '#commit/#sync verified on the worker thread that read them from the host socket (no task posted); the rest of relay_validation_identity_lookups_total went to the verify pool',
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.identityCounter = new Counter({
      name: 'relay_validation_identity_lookups_total',
      help: 'Signing-key lookups at admission of #commit/#sync: hit (cached, verified in a worker at once) or miss (resolved first)',
      labelNames: ['result'],
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.identityRetryCounter = new Counter({
      name: 'relay_validation_identity_retries_total',
      help: 'DID resolutions retried after a transient failure (PLC or did:web host unreachable, 5xx, 429): the events waited instead of being dropped',
      registers,
    });
    this.mainThreadSignatureCounter = new Counter({
      name: 'relay_validation_main_thread_signatures_total',
      help: 'Commit signatures checked on the main thread instead of a worker: the key the worker had was missing or has changed since (a rotation). Near 0 in the steady state; each costs the main thread one ECDSA verification',
      registers,
    });
    this.headBackpressureCounter = new Counter({
      name: 'relay_validation_head_backpressure_total',
      help: 'Append batches whose frames were held in flight until their repo heads were written, because too many heads waited (the metadata store is slow or stalled; ingest pauses through the frame budget)',
      registers,
    });
    this.headWriteFailureCounter = new Counter({
      name: 'relay_validation_head_write_failures_total',
      help: 'Repo head write attempts that failed (the metadata store refused or was unreachable); they are retried with back-off, in order',
      registers,
    });
    new Gauge({
      name: 'relay_validation_account_writes_waiting',
      help: 'Account status writes (an upstream status, desynchronized) waiting until the events decided before them are durable and their repo heads stored; stuck above 0 means head writes are stalled',
      registers,
      collect() {
        this.set(metrics.accountWritesWaiting);
      },
    });
    new Gauge({
      name: 'relay_validation_identity_waiting_events',
      help: 'Events waiting because their DID could not be resolved yet (transient failure; retried with back-off)',
      labelNames: ['what'],
      registers,
      collect() {
        const w = metrics.identityWaiting();
        this.set({ what: 'repos' }, w.repos);
        this.set({ what: 'events' }, w.events);
      },
    });
    this.resyncQueue = new Gauge({
      name: 'relay_validation_resync_queue',
      help: 'Resyncs waiting for a rate-limit token or a free slot',
      registers,
    });
    this.latencyHistogram = new TallyHistogram({
      name: 'relay_validation_latency_seconds',
      help: 'Ingest-to-durable latency of passed events: frame read from the host socket to event durable in the log, by type',
      labelNames: ['type'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.verifyHistogram = new TallyHistogram({
      name: 'relay_validation_verify_seconds',
      help: 'Verification round trip of #commit/#sync in the worker pool (queue wait included), by type',
      labelNames: ['type'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
  }

  // The per-event counts (passed by type and by host, identity lookups) are
  // plain tallies, added to their Prometheus counters when the registry is
  // read (the counters' collect hooks call flushTallies): a prom-client
  // increment hashes its label set, which showed in the main thread's
  // profile at one or two per event. The two per-event histograms are
  // TallyHistograms (tally-histogram.ts: prom-client's observe hashes the
  // label set too), their children looked up once per label value and kept.
  private readonly passedByHost = new Map<string, number>();
  private readonly flushed = {
    passed: new Map<string, number>(),
    byHost: new Map<string, number>(),
    hits: 0,
    whereRead: 0,
    misses: 0,
  };
  private readonly latencyChildren = new Map<string, TallyChild>();
  private readonly verifyChildren = new Map<string, TallyChild>();

  /** Adds what was tallied since the last read to the Prometheus counters. */
  private flushTallies(): void {
    const f = this.flushed;
    for (const [type, n] of this.passed) {
      const d = n - (f.passed.get(type) ?? 0);
      if (d > 0) this.passedCounter.inc({ type }, d);
      f.passed.set(type, n);
    }
    for (const [host, n] of this.passedByHost) {
      const d = n - (f.byHost.get(host) ?? 0);
      if (d > 0) this.byHostCounter.inc({ host, result: 'passed' }, d);
      f.byHost.set(host, n);
    }
    if (this.identity.hits > f.hits) this.identityCounter.inc({ result: 'hit' }, this.identity.hits - f.hits);
    if (this.identity.misses > f.misses)
      this.identityCounter.inc({ result: 'miss' }, this.identity.misses - f.misses);
    if (this.verifiedWhereRead > f.whereRead) this.whereReadCounter.inc(this.verifiedWhereRead - f.whereRead);
    f.whereRead = this.verifiedWhereRead;
    f.hits = this.identity.hits;
    f.misses = this.identity.misses;
  }

  /** Seconds from ingest reading the frame to its event being durable. */
  latency(type: string, seconds: number): void {
    let c = this.latencyChildren.get(type);
    if (c === undefined) {
      c = this.latencyHistogram.labels(type);
      this.latencyChildren.set(type, c);
    }
    c.observe(seconds);
  }

  /** Seconds from handing a frame to the verification pool to its result. */
  verifyTime(type: string, seconds: number): void {
    let c = this.verifyChildren.get(type);
    if (c === undefined) {
      c = this.verifyHistogram.labels(type);
      this.verifyChildren.set(type, c);
    }
    c.observe(seconds);
  }

  pass(type: string, host?: string): void {
    this.passed.set(type, (this.passed.get(type) ?? 0) + 1);
    if (host !== undefined) this.passedByHost.set(host, (this.passedByHost.get(host) ?? 0) + 1);
  }

  drop(type: string, reason: DropReason, host?: string): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    this.droppedCounter.inc({ type, reason });
    if (host !== undefined) this.byHostCounter.inc({ host, result: 'dropped' });
  }

  chainFailure(check: ChainFailure, lenient: boolean): void {
    this.chainFailures.set(check, (this.chainFailures.get(check) ?? 0) + 1);
    this.chainCounter.inc({ check, mode: lenient ? 'lenient' : 'strict' });
  }

  resync(ok: boolean): void {
    if (ok) this.resyncs.ok++;
    else this.resyncs.failed++;
    this.resyncCounter.inc({ result: ok ? 'ok' : 'failed' });
  }

  resyncHostLimited(result: 'deferred' | 'refused'): void {
    this.resyncHostLimits[result]++;
    this.resyncHostCounter.inc({ result });
  }

  /** A repo head write attempt failed (it is retried). */
  headWriteFailed(): void {
    this.headWriteFailures++;
    this.headWriteFailureCounter.inc();
  }

  /** An append batch's submits wait for its heads (head-writer.ts, "Backpressure"). */
  heldForHeads(): void {
    this.headBackpressure++;
    this.headBackpressureCounter.inc();
  }

  event(name: 'migration' | 'throttled' | 'missing-prev-data' | 'unverified-handle' | 're-resolve'): void {
    if (name === 'migration') this.migrations++;
    else if (name === 'throttled') this.throttledAccounts++;
    else if (name === 'missing-prev-data') this.missingPrevData++;
    else if (name === 'unverified-handle') this.unverifiedHandles++;
    else this.reresolutions++;
    this.miscCounter.inc({ event: name });
  }

  /** A commit signature checked on the main thread, after the worker (key missing there, or rotated since). */
  signatureOnMainThread(): void {
    this.mainThreadSignatures++;
    this.mainThreadSignatureCounter.inc();
  }

  identityRetry(): void {
    this.identityRetries++;
    this.identityRetryCounter.inc();
  }

  identityLookup(hit: boolean): void {
    if (hit) this.identity.hits++;
    else this.identity.misses++;
  }

  droppedCount(reason: DropReason): number {
    return this.dropped.get(reason) ?? 0;
  }
}
