// A pool of worker threads for the CPU-heavy, stateless part of validation
// (verify-frame.ts: decode, CAR hash checks, commit decode, signature, MST
// inversion). Tasks are collected (until a batch is full or the next turn of
// the event loop), split evenly over the workers, and each part goes to the
// worker with the fewest tasks outstanding, so every core stays busy without
// a per-frame message, and a small burst is not serialised on one worker. Results come back per batch; callers get one promise per task.
// Tasks and results cross as arrays of their fields, rebuilt as objects on
// arrival (wire.ts: a structured clone of an object repeats its keys).
// The pool does not order anything: results of different batches may settle
// in any order, and the validator restores order itself (see validator.ts).
// The same workers may also read host sockets (`socketThreads`: each gets a
// port for them at start, ingest/socket-threads.ts) and verify what they read
// in place (in-place.ts); what they cannot verify there comes back as tasks.
//
// Size 0 runs the same function inline on the main thread (tests, and the
// one-core baseline of the benchmark). In the compiled build (dist/) workers
// are plain .js modules started directly (module-url.ts picks the file); from
// the sources they are .ts modules: under
// tsx (how the project runs) a worker does not inherit the parent's
// `--import tsx` on Node 20, so the worker is started from a tiny ESM
// bootstrap that registers tsx's loader and then imports worker.ts
// (`startWorker` in module-url.ts, shared with the repo digest pool in
// repo-digest.ts, which keeps whole-repo CARs off these workers, and the
// SQLite head writer).
import type { EventLoopUtilization } from 'node:perf_hooks';
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import type { SocketPortMessage } from '../ingest/socket-wire.ts';
import { type Logger, silentLogger } from '../log.ts';
import { siblingModuleUrl, startWorker } from '../module-url.ts';
import { isWholeBuffer } from '../protocol/bytes.ts';
import { shedding } from './in-place.ts';
import { DEFAULT_MAX_REV_SKEW_MS, type VerifyResult, type VerifyTask, verifyFrame } from './verify-frame.ts';
import { type ResultWire, resultFromWire, type TaskWire, taskToWire } from './wire.ts';

/** Tasks and results cross as arrays of fields (wire.ts). */
export interface WorkerRequest {
  batch: number;
  tasks: TaskWire[];
}

/** Everything the pool sends a worker: batches, the socket port (first, when it hosts sockets), shed on/off. */
export type WorkerMessage = WorkerRequest | SocketPortMessage | { shed: boolean };

export interface WorkerResponse {
  batch: number;
  results: ResultWire[];
}

export interface VerifyPoolOptions {
  /** Worker threads; 0 = verify inline on the calling thread. */
  size: number;
  /** Tasks per message (default 32). */
  batchSize?: number;
  logger?: Logger;
  /** Called per task with the seconds from verify() to its result (a histogram observes it). */
  observe?: (type: string, seconds: number) => void;
  /**
   * Host sockets live on these workers too (ingest/socket-threads.ts): each
   * worker gets a port for them when it starts; the returned function is
   * called when that worker ends.
   */
  socketThreads?: { attach(port: MessagePort): () => void };
  /** For the frames the workers verify where they read them (in-place.ts). */
  maxRevSkewMs?: number;
}

interface Waiter {
  resolve: (r: VerifyResult) => void;
  reject: (e: Error) => void;
  type: string;
  /** performance.now() at verify() */
  queuedAt: number;
}

interface PoolWorker {
  worker: Worker;
  outstanding: number;
  batches: Map<number, Waiter[]>;
  /** Closes the worker's socket port (ingest/socket-threads.ts) when it ends. */
  detachSockets?: () => void;
  /** Its event-loop utilisation at the last balance() and whether it was told to shed (in-place.ts). */
  elu?: EventLoopUtilization;
  shedding: boolean;
}

/** How often the pool compares its workers' load (in-place.ts shedding()). */
const BALANCE_MS = 100;

const WORKER_URL = siblingModuleUrl('./worker.ts', import.meta.url);

export class VerifyPool {
  private readonly workers: PoolWorker[] = [];
  private readonly batchSize: number;
  private readonly log: Logger;
  private readonly observe: ((type: string, seconds: number) => void) | undefined;
  private readonly socketThreads: VerifyPoolOptions['socketThreads'];
  private readonly maxRevSkewMs: number;
  private pendingTasks: VerifyTask[] = [];
  private pendingWaiters: Waiter[] = [];
  private flushScheduled: NodeJS.Immediate | null = null;
  private balanceTimer: NodeJS.Timeout | undefined;
  private nextBatch = 1;
  private closed = false;

  constructor(opts: VerifyPoolOptions) {
    this.batchSize = opts.batchSize ?? 32;
    this.log = opts.logger ?? silentLogger;
    this.observe = opts.observe;
    this.socketThreads = opts.socketThreads;
    this.maxRevSkewMs = opts.maxRevSkewMs ?? DEFAULT_MAX_REV_SKEW_MS;
    for (let i = 0; i < opts.size; i++) this.workers.push(this.spawn());
    if (this.socketThreads && opts.size > 1) {
      this.balanceTimer = setInterval(() => this.balance(), BALANCE_MS);
      this.balanceTimer.unref();
    }
  }

  get size(): number {
    return this.workers.length;
  }

  verify(task: VerifyTask): Promise<VerifyResult> {
    if (this.closed) return Promise.reject(new Error('verify pool closed'));
    if (this.workers.length === 0) {
      return new Promise((resolve) => {
        const started = performance.now();
        const r = verifyFrame(task);
        this.observe?.(task.type, (performance.now() - started) / 1000);
        resolve(r);
      });
    }
    return new Promise((resolve, reject) => {
      this.pendingTasks.push(task);
      this.pendingWaiters.push({ resolve, reject, type: task.type, queuedAt: performance.now() });
      if (this.pendingTasks.length >= this.batchSize) this.flush();
      else this.flushScheduled ??= setImmediate(() => this.flush());
    });
  }

  /** Tasks handed to workers and not yet answered. */
  get outstanding(): number {
    let n = this.pendingTasks.length;
    for (const w of this.workers) n += w.outstanding;
    return n;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.balanceTimer);
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    const err = new Error('verify pool closed');
    for (const w of this.pendingWaiters) w.reject(err);
    this.pendingTasks = [];
    this.pendingWaiters = [];
    await Promise.all(
      this.workers.map(async (w) => {
        this.failAll(w, err);
        w.detachSockets?.();
        await w.worker.terminate();
      }),
    );
  }

  /** Sends what is pending, split evenly over the workers (a small burst must not all land on one). */
  private flush(): void {
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    if (this.pendingTasks.length === 0 || this.closed) return;
    const tasks = this.pendingTasks;
    const waiters = this.pendingWaiters;
    this.pendingTasks = [];
    this.pendingWaiters = [];
    const chunk = Math.min(this.batchSize, Math.max(1, Math.ceil(tasks.length / this.workers.length)));
    for (let i = 0; i < tasks.length; i += chunk) {
      let target = this.workers[0];
      for (const w of this.workers) if (w.outstanding < target.outstanding) target = w;
      const batch = this.nextBatch++;
      const part = tasks.slice(i, i + chunk);
      target.batches.set(batch, waiters.slice(i, i + chunk));
      target.outstanding += part.length;
      // A frame that owns its whole buffer is moved, not copied, and comes
      // back with its result (worker.ts): structured-cloning ~3 KB per task
      // was the biggest item of the main thread's profile.
      const moved: ArrayBuffer[] = [];
      const wire: TaskWire[] = new Array(part.length);
      for (let k = 0; k < part.length; k++) {
        const t = part[k];
        if (t.movable && isWholeBuffer(t.frame)) {
          t.returnFrame = true;
          moved.push(t.frame.buffer as ArrayBuffer);
        }
        wire[k] = taskToWire(t);
      }
      const req: WorkerRequest = { batch, tasks: wire };
      target.worker.postMessage(req, moved);
    }
  }

  /**
   * Tells a worker far busier than the rest to pass the frames it reads on
   * unverified, and the rest to verify theirs (in-place.ts shedding()).
   */
  private balance(): void {
    const load = this.workers.map((w) => {
      const now = w.worker.performance.eventLoopUtilization();
      const u = w.elu ? w.worker.performance.eventLoopUtilization(now, w.elu).utilization : 0;
      w.elu = now;
      return u;
    });
    const shed = shedding(load);
    for (let i = 0; i < this.workers.length; i++) {
      const w = this.workers[i];
      if (w.shedding === shed[i]) continue;
      w.shedding = shed[i];
      const msg: WorkerMessage = { shed: shed[i] };
      w.worker.postMessage(msg);
    }
  }

  private spawn(): PoolWorker {
    const pw: PoolWorker = {
      worker: startWorker(WORKER_URL),
      outstanding: 0,
      batches: new Map(),
      shedding: false,
    };
    if (this.socketThreads) {
      const { port1, port2 } = new MessageChannel();
      const init: SocketPortMessage = { socketPort: port2, maxRevSkewMs: this.maxRevSkewMs };
      pw.worker.postMessage(init, [port2]);
      pw.detachSockets = this.socketThreads.attach(port1);
    }
    pw.worker.on('message', (res: WorkerResponse) => {
      const waiters = pw.batches.get(res.batch);
      if (!waiters) return;
      pw.batches.delete(res.batch);
      pw.outstanding -= waiters.length;
      const now = this.observe ? performance.now() : 0;
      for (let i = 0; i < waiters.length; i++) {
        const w = waiters[i];
        this.observe?.(w.type, (now - w.queuedAt) / 1000);
        w.resolve(resultFromWire(res.results[i]));
      }
    });
    pw.worker.on('error', (err) => {
      this.log.error({ err }, 'verify worker failed');
      this.failAll(pw, err);
    });
    pw.worker.on('exit', (code) => {
      pw.detachSockets?.();
      if (this.closed) return;
      this.log.error({ code }, 'verify worker exited; starting a new one');
      this.failAll(pw, new Error(`verify worker exited with code ${code}`));
      const i = this.workers.indexOf(pw);
      if (i >= 0) this.workers[i] = this.spawn();
    });
    return pw;
  }

  private failAll(pw: PoolWorker, err: Error): void {
    for (const waiters of pw.batches.values()) for (const w of waiters) w.reject(err);
    pw.batches.clear();
    pw.outstanding = 0;
  }
}
