// The rig for the relay-under-attack tests (src/relay-attack/): a real relay
// in its own process (so its RSS is the relay's alone), a well-behaved
// simulated host writing at a steady rate, a hostile simulated host (same PLC)
// for the test to turn against the relay, and a normal firehose consumer that
// measures, for every good commit, the time from the host's emission to the
// consumer's receipt (the consumer runs in a worker thread, so the simulated
// hosts and attackers on this thread do not delay its clock). Everything is
// on loopback.
//
// `measure` runs a bounded number of good events (never a wall-clock
// duration), starts the attack partway through, waits until every good
// commit has arrived, and reports the latency percentiles, duplicates and
// the relay's peak RSS (VmHWM from /proc, which the kernel keeps for the
// process's whole life: each rig is a fresh relay, so the peak is this run's).
import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { SimPds } from '../../sim/pds.ts';
import { SimPds as Pds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { cidToString } from '../../src/protocol/cid.ts';
import type { ConsumerWorkerData, ConsumerWorkerMessage } from './latency-consumer-worker.ts';
import { type RelayProcess, spawnRelay } from './relay-process.ts';
import { removeTempDir, tempDir } from './temp.ts';
import { waitFor } from './wait.ts';

const ADMIN_PASSWORD = 'attack-test';
/** How often MeasureOptions.continueUntil is checked. */
const CONTINUE_POLL_MS = 250;

export interface AttackRigOptions {
  /** Accounts on the good host (default 10). */
  goodAccounts?: number;
  /** Accounts on the hostile host (default 10). */
  hostileAccounts?: number;
  /** Extra relay settings (environment variables). */
  relayEnv?: Record<string, string>;
  seed?: string;
}

/** CLOCK_MONOTONIC in ms: the same clock in every thread (emission here, receipt in the worker). */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * The commits of the given accounts as one firehose consumer sees them. The
 * socket lives in a worker thread (latency-consumer-worker.ts) that stamps
 * each frame on arrival, so a busy main thread (simulated hosts, attackers)
 * does not add to the latency measured; the results are mirrored here.
 */
export class LatencyConsumer {
  private readonly worker: Worker;
  readonly opened: Promise<void>;
  /** commit CID → monotonicMs() of receipt, for the first receipt */
  readonly receivedAt = new Map<string, number>();
  /** commits received per account (of the accounts given) */
  readonly commitsByRepo = new Map<string, number>();
  /** commit CIDs received more than once */
  readonly duplicates: string[] = [];
  /** frames that failed to decode, error frames, seqs out of order, socket errors */
  readonly problems: string[] = [];
  closed = false;

  constructor(url: string, repos: ReadonlySet<string>) {
    const data: Omit<ConsumerWorkerData, 'entry'> & { entry: string } = {
      entry: new URL('./latency-consumer-worker.ts', import.meta.url).href,
      url,
      repos: [...repos],
    };
    this.worker = new Worker(new URL('../../sim/worker-boot.mjs', import.meta.url), { workerData: data });
    this.worker.on('error', (err) => this.problems.push(`consumer worker failed: ${err.message}`));
    this.opened = new Promise((resolve, reject) => {
      this.worker.on('message', (m: ConsumerWorkerMessage) => {
        if (m.kind === 'open') resolve();
        else this.take(m);
      });
      this.worker.once('error', reject);
      this.worker.once('exit', () => reject(new Error('the consumer worker exited before connecting')));
    });
  }

  private take(m: ConsumerWorkerMessage): void {
    if (m.kind === 'problem') this.problems.push(m.text);
    else if (m.kind === 'close') this.closed = true;
    else if (m.kind === 'commit') {
      this.commitsByRepo.set(m.repo, (this.commitsByRepo.get(m.repo) ?? 0) + 1);
      if (this.receivedAt.has(m.cid)) this.duplicates.push(m.cid);
      else this.receivedAt.set(m.cid, m.at);
    }
  }

  async close(): Promise<void> {
    this.worker.postMessage('close');
    await this.worker.terminate();
  }
}

export interface MeasureOptions {
  /** Good commits to write (the run's length). */
  events: number;
  /** Good commits per second (default 100). */
  rate?: number;
  /** Called once this share of the events is written (default 0.1); the writer keeps going meanwhile. */
  attackAt?: number;
  attack?: () => void | Promise<void>;
  /**
   * Once `events` are written, keep writing at the same rate until this holds
   * (the attack has done what the test is about, e.g. a number of CAR bombs
   * read), checked between writes; at most `events` × `continueFactor` in all.
   */
  continueUntil?: () => boolean | Promise<boolean>;
  /** The most events continueUntil may take, as a multiple of `events` (default 10). */
  continueFactor?: number;
}

export interface LatencyReport {
  events: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  duplicates: number;
  /** seconds from the first good write to the last receipt */
  seconds: number;
  /** the relay's peak RSS over its life so far, bytes */
  peakRssBytes: number;
  /** CPU seconds the relay process used during the run (all its threads) */
  relayCpuSeconds: number;
  /** the longest the test's own main thread (hosts, attackers) was blocked, ms: context for the latency */
  testLoopDelayMaxMs: number;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** A process's peak and current resident set size in bytes (Linux /proc). */
export function processRss(pid: number): { peak: number; current: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { peak: kb('VmHWM') * 1024, current: kb('VmRSS') * 1024 };
}

export class AttackRig {
  private constructor(
    readonly relay: RelayProcess,
    readonly plc: SimPlc,
    readonly good: SimPds,
    readonly hostile: SimPds,
    readonly consumer: LatencyConsumer,
    private readonly dataDir: string,
  ) {}

  get publicUrl(): string {
    return `http://127.0.0.1:${this.relay.port}`;
  }

  get firehoseUrl(): string {
    return `ws://127.0.0.1:${this.relay.port}/xrpc/com.atproto.sync.subscribeRepos`;
  }

  get goodDids(): string[] {
    return [...this.good.accounts.keys()];
  }

  get hostileDids(): string[] {
    return [...this.hostile.accounts.keys()];
  }

  /**
   * Starts the relay, both hosts (crawled, subscribed), the consumer; the good
   * host gets rate limits no test reaches (an operator override), the hostile
   * one keeps the defaults. One commit per account has gone
   * through the relay (DID documents resolved and cached) before it returns.
   */
  static async start(opts: AttackRigOptions = {}): Promise<AttackRig> {
    const seed = opts.seed ?? 'attack';
    const dataDir = tempDir('atrelay-attack-');
    const plc = await SimPlc.start(seed);
    const good = await Pds.start({ plc, name: 'good', seed: `${seed}:good` });
    const hostile = await Pds.start({ plc, name: 'hostile', seed: `${seed}:hostile` });
    let relay: RelayProcess | undefined;
    try {
      for (let i = 0; i < (opts.goodAccounts ?? 10); i++) good.createAccount();
      for (let i = 0; i < (opts.hostileAccounts ?? 10); i++) hostile.createAccount();
      relay = await spawnRelay({
        RELAY_PORT: '0',
        RELAY_METRICS_PORT: '0',
        RELAY_BIND: '127.0.0.1',
        RELAY_DATA_DIR: dataDir,
        RELAY_PLC_URL: plc.url,
        RELAY_UPSTREAM: 'none',
        RELAY_ALLOW_INSECURE_HOSTS: 'true',
        RELAY_ADMIN_PASSWORD: ADMIN_PASSWORD,
        RELAY_EVENTLOG_FSYNC: 'false',
        RELAY_VALIDATION_WORKERS: '1',
        ...opts.relayEnv,
      });
      const child = relay.child;
      // If this test process exits without stop() (a crash), take the relay with it.
      const killRelay = (): void => {
        child.kill('SIGKILL');
      };
      process.once('exit', killRelay);
      void relay.exited.then(() => process.off('exit', killRelay));
      const base = `http://127.0.0.1:${relay.port}`;
      for (const h of [good, hostile]) {
        const status = await h.requestCrawl(base);
        if (status !== 200) throw new Error(`requestCrawl of ${h.hostname} answered ${status}`);
      }
      await waitFor(
        () => good.firehose.subscriberCount === 1 && hostile.firehose.subscriberCount === 1,
        'the relay subscribed to both hosts',
      );
      // An operator override for the good host (a large, well-behaved PDS):
      // with the defaults a host may send 50 events/s, and a bucket raised
      // later keeps its tokens and refills at the new rate (the hour bucket
      // of a host made trusted refills at 70/s), so the override is generous.
      const limits = await fetch(`${base}/admin/hosts/rate-limits`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_PASSWORD}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          hostname: good.hostname,
          perSecond: 100_000,
          perHour: 1_000_000_000,
          perDay: 1_000_000_000,
        }),
      });
      if (limits.status !== 200) throw new Error(`raising the good host's limits: ${await limits.text()}`);
      const consumer = new LatencyConsumer(
        `ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos`,
        new Set([...good.accounts.keys(), ...hostile.accounts.keys()]),
      );
      await consumer.opened;
      const rig = new AttackRig(relay, plc, good, hostile, consumer, dataDir);
      const warm = [
        ...[...good.accounts.keys()].map((did) => good.writeRecord(did)),
        ...[...hostile.accounts.keys()].map((did) => hostile.writeRecord(did)),
      ].map((ev) => cidToString(ev.commit!));
      await waitFor(() => warm.every((c) => consumer.receivedAt.has(c)), 'the warm-up commits', {
        describe: () =>
          `${warm.filter((c) => consumer.receivedAt.has(c)).length}/${warm.length}; ${relay?.tail()}`,
      });
      return rig;
    } catch (err) {
      relay?.child.kill('SIGKILL');
      await good.stop();
      await hostile.stop();
      await plc.stop();
      removeTempDir(dataDir);
      throw err;
    }
  }

  /**
   * Writes `events` good commits at `rate`/s round-robin over the good
   * accounts, runs `attack` once `attackAt` of them are written, and waits
   * until the consumer has every one. Latency: emission (right after the host
   * wrote the frame to its socket) to receipt, both in this process.
   */
  async measure(opts: MeasureOptions): Promise<LatencyReport> {
    const rate = opts.rate ?? 100;
    const dids = this.goodDids;
    const emittedAt = new Map<string, number>();
    const attackAfter = Math.max(1, Math.floor(opts.events * (opts.attackAt ?? 0.1)));
    const maxEvents = opts.continueUntil ? opts.events * (opts.continueFactor ?? 10) : opts.events;
    let attacked: Promise<void> | undefined;
    let written = 0;
    // Set by a poller of continueUntil once `events` are written.
    let enough = !opts.continueUntil;
    let polling = false;
    let lastPoll = 0;
    const cpuBefore = this.relayCpuSeconds();
    const loopDelay = monitorEventLoopDelay({ resolution: 10 });
    loopDelay.enable();
    const started = performance.now();
    const startedMono = monotonicMs();
    await new Promise<void>((resolve, reject) => {
      const tick = (): void => {
        const due = Math.min(maxEvents, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
        while (written < due && !(enough && written >= opts.events)) {
          const ev = this.good.writeRecord(dids[written % dids.length]);
          emittedAt.set(cidToString(ev.commit!), monotonicMs());
          written++;
          if (written === attackAfter && opts.attack) attacked = Promise.resolve().then(opts.attack);
        }
        // At most one check per CONTINUE_POLL_MS: a check usually scrapes the
        // relay's /metrics, which costs its main thread milliseconds.
        if (
          written >= opts.events &&
          !enough &&
          !polling &&
          opts.continueUntil &&
          performance.now() - lastPoll >= CONTINUE_POLL_MS
        ) {
          polling = true;
          Promise.resolve(opts.continueUntil()).then(
            (done) => {
              enough = done;
              polling = false;
              lastPoll = performance.now();
            },
            (err: unknown) => fail(err),
          );
        }
        if ((enough && written >= opts.events) || written >= maxEvents) {
          clearInterval(timer);
          if (!enough) fail(new Error(`the attack's condition did not hold after ${written} events`));
          else resolve();
        }
      };
      const fail = (err: unknown): void => {
        clearInterval(timer);
        reject(err);
      };
      const timer = setInterval(() => {
        try {
          tick();
        } catch (err) {
          fail(err);
        }
      }, 5);
    });
    await attacked;
    await waitFor(
      () => [...emittedAt.keys()].every((c) => this.consumer.receivedAt.has(c)),
      'every good commit at the consumer',
      {
        describe: () => {
          const missing = [...emittedAt.keys()].filter((c) => !this.consumer.receivedAt.has(c));
          return `${missing.length} of ${emittedAt.size} missing; consumer closed ${this.consumer.closed}; relay log:\n${this.relay.tail()}`;
        },
      },
    );
    loopDelay.disable();
    const latencies = [...emittedAt].map(([cid, at]) => (this.consumer.receivedAt.get(cid) ?? 0) - at);
    latencies.sort((a, b) => a - b);
    const lastReceipt = Math.max(...[...emittedAt.keys()].map((c) => this.consumer.receivedAt.get(c) ?? 0));
    return {
      events: latencies.length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: latencies[latencies.length - 1],
      duplicates: this.consumer.duplicates.filter((c) => emittedAt.has(c)).length,
      seconds: (lastReceipt - startedMono) / 1000,
      peakRssBytes: this.rss().peak,
      relayCpuSeconds: this.relayCpuSeconds() - cpuBefore,
      testLoopDelayMaxMs: loopDelay.max / 1e6,
    };
  }

  /** User + system CPU seconds of the relay process so far (/proc/<pid>/stat, clock ticks of 10 ms). */
  relayCpuSeconds(): number {
    const stat = readFileSync(`/proc/${this.relay.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  relayAlive(): boolean {
    return this.relay.child.exitCode === null && this.relay.child.signalCode === null;
  }

  rss(): { peak: number; current: number } {
    return processRss(this.relay.child.pid ?? 0);
  }

  /** The relay's Prometheus text (metrics port). */
  async metricsText(): Promise<string> {
    // A kept-alive connection the relay closes as idle just as it is reused
    // fails the fetch ("other side closed"); on a loaded machine, with the
    // polls seconds apart, that race is common. Retried while the relay lives.
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await fetch(`http://127.0.0.1:${this.relay.metricsPort}/metrics`);
        return await res.text();
      } catch (err) {
        if (attempt >= 3 || !this.relayAlive()) throw err;
      }
    }
  }

  /** One sample's value from the metrics text (0 when absent); `labels` exactly as printed, e.g. `reason="bad-did"`. */
  async metric(name: string, labels = ''): Promise<number> {
    const text = await this.metricsText();
    const escaped = labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const m = new RegExp(`^${name}${labels ? `\\{${escaped}\\}` : ''} ([0-9.e+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  }

  async stop(): Promise<void> {
    await this.consumer.close();
    this.hostile.hostile.stop();
    if (this.relay.child.exitCode === null && this.relay.child.signalCode === null) {
      this.relay.child.kill('SIGKILL');
      await this.relay.exited;
    }
    await this.good.stop();
    await this.hostile.stop();
    await this.plc.stop();
    removeTempDir(this.dataDir);
  }
}

/** The latency bound every attack test asserts on the good host's events. */
export const P99_BOUND_MS = 1000;

/** A report as one line for test diagnostics and the docs. */
export function formatReport(name: string, r: LatencyReport): string {
  const mb = (b: number) => (b / 1024 / 1024).toFixed(0);
  return `${name}: ${r.events} good events in ${r.seconds.toFixed(1)} s, latency p50 ${r.p50Ms.toFixed(0)} ms, p99 ${r.p99Ms.toFixed(0)} ms, max ${r.maxMs.toFixed(0)} ms; relay peak RSS ${mb(r.peakRssBytes)} MiB, CPU ${r.relayCpuSeconds.toFixed(1)} s; test main thread blocked up to ${r.testLoopDelayMaxMs.toFixed(0)} ms`;
}

/**
 * What every attack test asserts: the relay process is alive, the consumer
 * saw no error frame, no undecodable frame and no seq out of order, every
 * good commit arrived exactly once, p99 latency under P99_BOUND_MS (unless
 * the test passes null: a gap documented in docs/security.md), and the
 * relay's peak RSS under `ceilingMiB`. The report goes to the test's
 * diagnostics and, with ATRELAY_ATTACK_REPORT=<file>, as a JSON line to that
 * file (how the figures in docs/security.md were collected).
 */
export function assertServed(
  t: { diagnostic(message: string): void; name: string },
  rig: AttackRig,
  r: LatencyReport,
  ceilingMiB: number,
  /** null: report the latency without asserting it (a known gap, asserted by a skipped twin test) */
  p99BoundMs: number | null = P99_BOUND_MS,
): void {
  t.diagnostic(formatReport(t.name, r));
  if (process.env.ATRELAY_ATTACK_REPORT) {
    appendFileSync(
      process.env.ATRELAY_ATTACK_REPORT,
      `${JSON.stringify({ attack: t.name, ...r, ceilingMiB, p99BoundMs, at: new Date().toISOString() })}\n`,
    );
  }
  assert.ok(rig.relayAlive(), `the relay process is running\n${rig.relay.tail()}`);
  assert.deepEqual(
    rig.consumer.problems.slice(0, 5),
    [],
    'the consumer saw only well-formed, ordered events',
  );
  assert.equal(rig.consumer.closed, false, 'the consumer is still connected');
  assert.equal(r.duplicates, 0, 'no good commit arrived twice');
  if (p99BoundMs !== null) {
    assert.ok(r.p99Ms < p99BoundMs, `p99 latency ${r.p99Ms.toFixed(0)} ms < ${p99BoundMs} ms`);
  }
  const peakMiB = r.peakRssBytes / 1024 / 1024;
  assert.ok(peakMiB < ceilingMiB, `relay peak RSS ${peakMiB.toFixed(0)} MiB < ${ceilingMiB} MiB`);
}
