// Keeps the host list in step with the seed relay (RELAY_UPSTREAM, default
// bsky.network): runs the bootstrap (bootstrap.ts: page through its listHosts,
// add every active host) at start, retries a failed run with exponential
// back-off and jitter until one succeeds (a relay started without internet,
// or while the seed relay is down, catches up once it is reachable instead of
// staying empty), then runs it again every RELAY_BOOTSTRAP_INTERVAL_MINUTES,
// because new PDS hosts keep appearing on the seed relay. Runs never overlap;
// stop() cancels the wait and waits for a run in progress (which checks
// isStopping between hosts). Metrics: relay_bootstrap_runs_total{result},
// relay_bootstrap_hosts_total{outcome}, relay_bootstrap_consecutive_failures,
// relay_bootstrap_last_success_timestamp_seconds.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import type { BootstrapStats } from './bootstrap.ts';

export interface BootstrapLoopOptions {
  /** One bootstrap pass; rejects when it could not finish (seed unreachable, bad answer). */
  run: () => Promise<BootstrapStats>;
  upstream: string;
  log: Logger;
  registry?: Registry;
  /** First retry delay; doubles per consecutive failure, with ±50% jitter (default 5 s). */
  retryBaseMs?: number;
  /** Longest retry delay (default 10 min). */
  retryMaxMs?: number;
  /** Delay between successful passes; 0 = only until the first success (default 6 h). */
  intervalMs?: number;
  random?: () => number;
}

export class BootstrapMetrics {
  readonly runs: Counter<'result'>;
  readonly hosts: Counter<'outcome'>;
  readonly consecutiveFailures: Gauge;
  readonly lastSuccess: Gauge;

  constructor(registry?: Registry) {
    const registers = registry ? [registry] : [];
    this.runs = new Counter({
      name: 'relay_bootstrap_runs_total',
      help: 'bootstrap passes over the seed relay listHosts, by result (ok, failed)',
      labelNames: ['result'],
      registers,
    });
    this.hosts = new Counter({
      name: 'relay_bootstrap_hosts_total',
      help: 'hosts seen by bootstrap passes, by outcome (added or already known, refused, failed)',
      labelNames: ['outcome'],
      registers,
    });
    this.consecutiveFailures = new Gauge({
      name: 'relay_bootstrap_consecutive_failures',
      help: 'bootstrap passes failed in a row (0 after a success); retried with back-off',
      registers,
    });
    this.lastSuccess = new Gauge({
      name: 'relay_bootstrap_last_success_timestamp_seconds',
      help: 'Unix time the last bootstrap pass finished (0: none yet)',
      registers,
    });
  }
}

export class BootstrapLoop {
  readonly metrics: BootstrapMetrics;
  private readonly opts: Required<Omit<BootstrapLoopOptions, 'registry'>>;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private failures = 0;
  private resolveFirst!: () => void;
  /** Resolves after the first successful pass, or when the loop is stopped before one. */
  readonly firstSuccess: Promise<void>;

  constructor(opts: BootstrapLoopOptions) {
    this.opts = {
      run: opts.run,
      upstream: opts.upstream,
      log: opts.log,
      retryBaseMs: opts.retryBaseMs ?? 5_000,
      retryMaxMs: opts.retryMaxMs ?? 10 * 60_000,
      intervalMs: opts.intervalMs ?? 6 * 3600_000,
      random: opts.random ?? Math.random,
    };
    this.metrics = new BootstrapMetrics(opts.registry);
    this.firstSuccess = new Promise((resolve) => {
      this.resolveFirst = resolve;
    });
  }

  /** Starts the first pass now; later passes follow on their own. */
  start(): void {
    if (this.running || this.stopped) return;
    this.running = this.loop();
  }

  /** Cancels any wait and resolves once a pass in progress has returned. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.running;
    this.resolveFirst();
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  /** The delay before retry number `failures` (1 = first retry): doubling, capped, ±50% jitter. */
  retryDelayMs(failures: number): number {
    const raw = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(30, failures - 1));
    return Math.round(raw * (0.5 + this.opts.random()));
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      let delay: number;
      let idle = false;
      try {
        const stats = await this.opts.run();
        this.failures = 0;
        this.metrics.runs.labels('ok').inc();
        this.metrics.hosts.labels('added').inc(stats.added);
        this.metrics.hosts.labels('refused').inc(stats.refused);
        this.metrics.hosts.labels('failed').inc(stats.failed);
        this.metrics.consecutiveFailures.set(0);
        this.metrics.lastSuccess.set(Date.now() / 1000);
        this.resolveFirst();
        if (this.opts.intervalMs <= 0) return;
        delay = this.opts.intervalMs;
        idle = true;
      } catch (err) {
        this.failures++;
        this.metrics.runs.labels('failed').inc();
        this.metrics.consecutiveFailures.set(this.failures);
        delay = this.retryDelayMs(this.failures);
        this.opts.log.warn(
          { err, upstream: this.opts.upstream, failures: this.failures, retryInMs: delay },
          'bootstrap from upstream relay failed; retrying',
        );
      }
      if (this.stopped) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        this.timer = setTimeout(resolve, delay);
        // the periodic wait alone does not keep a process alive; a pending retry does
        if (idle) this.timer.unref();
      });
      this.wake = undefined;
      this.timer = undefined;
    }
  }
}
