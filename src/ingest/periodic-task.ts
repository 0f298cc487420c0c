// A background job that runs on an interval (coverage, re-probe,
// reconciliation): one run at a time (a tick while one runs shares it), a
// failed run logged and the next one tried on schedule, and a stop that waits
// for the run in progress. The timer is unref'd: it never keeps the process
// alive. Nothing is kept across a restart; each job starts its rounds over.
export interface PeriodicTaskOptions {
  /** Milliseconds between runs; ≤ 0 means start() does nothing (the job is off). */
  intervalMs: number;
  run: () => Promise<void>;
  /** A run that threw (it is not retried before the next interval). */
  onError: (err: unknown) => void;
  /** Also run once at start() rather than only after the first interval. */
  runAtStart?: boolean;
}

export class PeriodicTask {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private ended = false;

  constructor(private readonly opts: PeriodicTaskOptions) {}

  /** True once stop() was called: long runs check it between steps. */
  get stopped(): boolean {
    return this.ended;
  }

  start(): void {
    if (this.timer || this.ended || this.opts.intervalMs <= 0) return;
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
    if (this.opts.runAtStart) void this.tick();
  }

  /** No further runs; resolves once the one in progress (if any) has ended. */
  async stop(): Promise<void> {
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One run now (overlapping calls share the running one). */
  tick(): Promise<void> {
    this.running ??= this.opts
      .run()
      .catch(this.opts.onError)
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }
}
