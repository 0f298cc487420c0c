// Worker threads that read whole repo CARs (protocol/repo-car.ts
// `digestRepoCar`) off the main thread. A getRepo CAR can be tens of MB and a
// million blocks; read on the main thread it blocked the event loop for
// seconds and cost ~400 bytes of heap per block, so one hostile PDS could
// stall or kill the relay. Here the CAR's buffer is transferred (not copied)
// to a worker, which answers with the digest only (rev, CIDs, the commit
// block, collection names), so the main thread never holds a decoded repo.
//
// These are not the verify pool's workers (pool.ts): a repo takes up to a
// second of CPU where a frame takes ~100 µs, so sharing would stall the
// firehose behind it, and a worker a hostile repo brings down must not fail
// frames in flight. Each worker runs one job at a time under a heap cap
// (`resourceLimits`: an exhausted heap ends that worker, not the process)
// and a deadline (counted from the worker's ready message, so its start-up
// does not count; past it the worker is terminated); either way the job
// fails with a RepoWorkerError and a fresh worker takes the next job.
// Workers start on first use and exit after `idleMs` without work, and are
// unref'd while idle, so an idle pool costs nothing and holds no process open.
// The queue is bounded by the callers (RepoFetcher admits `concurrency`
// fetches at a time); `maxQueued` is only a backstop.
import type { Worker } from 'node:worker_threads';
import { type Logger, silentLogger } from '../log.ts';
import { siblingModuleUrl } from '../module-url.ts';
import {
  digestRepoCar,
  RepoCarError,
  type RepoCarErrorReason,
  type RepoDigest,
  type RepoDigestOptions,
} from '../protocol/repo-car.ts';
import { startWorker } from './pool.ts';

export interface RepoDigestRequest {
  id: number;
  car: Uint8Array;
  opts: RepoDigestOptions;
}

export type RepoDigestResponse =
  | { id: number; ok: true; digest: RepoDigest }
  | { id: number; ok: false; reason: RepoCarErrorReason | 'internal'; message: string };

/** What a worker posts once its modules are loaded: job deadlines count from then, not from its start-up. */
export const REPO_WORKER_READY = 'ready';

/** The worker side of one job (repo-worker.ts); never throws. */
export function answerRepoDigest(req: RepoDigestRequest): RepoDigestResponse {
  try {
    return { id: req.id, ok: true, digest: digestRepoCar(req.car, req.opts) };
  } catch (err) {
    if (err instanceof RepoCarError)
      return { id: req.id, ok: false, reason: err.reason, message: err.message };
    return { id: req.id, ok: false, reason: 'internal', message: (err as Error)?.message ?? String(err) };
  }
}

export type RepoWorkerFailure = 'worker-failed' | 'timeout' | 'closed' | 'busy';

/** The job did not get an answer: the worker died (e.g. its heap cap), ran past the deadline, or the pool closed. */
export class RepoWorkerError extends Error {
  constructor(
    readonly reason: RepoWorkerFailure,
    message: string,
  ) {
    super(message);
    this.name = 'RepoWorkerError';
  }
}

export interface RepoDigestPoolOptions {
  /** Worker threads at most. */
  workers: number;
  /** Each worker's V8 heap cap (old generation), MiB. */
  heapMb: number;
  /** A job running longer than this ends its worker (default 60 s). */
  timeoutMs?: number;
  /** A worker idle this long exits (default 30 s). */
  idleMs?: number;
  /** Jobs waiting for a worker before more are refused (default 1,000). */
  maxQueued?: number;
  logger?: Logger;
  /** Tests: another worker entry answering like repo-worker.ts (e.g. one that holds jobs), and its workerData. */
  worker?: { url: URL; data?: unknown };
}

interface Job {
  req: RepoDigestRequest;
  resolve: (d: RepoDigest) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker | null;
  /** The worker has loaded (REPO_WORKER_READY). */
  ready: boolean;
  job: Job | null;
  deadline: NodeJS.Timeout | null;
  idle: NodeJS.Timeout | null;
}

const REPO_WORKER_URL = siblingModuleUrl('./repo-worker.ts', import.meta.url);

export class RepoDigestPool {
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private readonly log: Logger;
  private nextId = 1;
  private closed = false;
  /** Workers started (tests, metrics). */
  started = 0;

  constructor(private readonly opts: RepoDigestPoolOptions) {
    this.log = opts.logger ?? silentLogger;
    this.slots = Array.from({ length: Math.max(1, opts.workers) }, () => ({
      worker: null,
      ready: false,
      job: null,
      deadline: null,
      idle: null,
    }));
  }

  /** Jobs being read by a worker. */
  get running(): number {
    return this.slots.filter((s) => s.job !== null).length;
  }

  /** Jobs waiting for a worker. */
  get queued(): number {
    return this.queue.length;
  }

  /**
   * Reads `car` in a worker. The CAR's buffer is transferred when `car`
   * spans all of it (the caller's view is then detached), else copied.
   * Rejects with RepoCarError (the repo is bad) or RepoWorkerError.
   */
  digest(car: Uint8Array, opts: RepoDigestOptions): Promise<RepoDigest> {
    if (this.closed) return Promise.reject(new RepoWorkerError('closed', 'repo digest pool closed'));
    if (this.queue.length >= (this.opts.maxQueued ?? 1000))
      return Promise.reject(new RepoWorkerError('busy', 'repo digest queue full'));
    return new Promise((resolve, reject) => {
      this.queue.push({ req: { id: this.nextId++, car, opts }, resolve, reject });
      this.pump();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new RepoWorkerError('closed', 'repo digest pool closed');
    for (const job of this.queue.splice(0)) job.reject(err);
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        this.settle(slot, (job) => job.reject(err));
        if (slot.idle) clearTimeout(slot.idle);
        slot.worker = null;
        await worker?.terminate();
      }),
    );
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0 || this.closed) return;
      if (slot.job) continue;
      const job = this.queue.shift() as Job;
      if (slot.idle) clearTimeout(slot.idle);
      slot.idle = null;
      const worker = slot.worker ?? this.spawn(slot);
      worker.ref();
      slot.job = job;
      if (slot.ready) this.arm(slot, worker);
      const car = job.req.car;
      const whole = car.byteOffset === 0 && car.byteLength === car.buffer.byteLength;
      const sent = whole && car.buffer instanceof ArrayBuffer ? car : car.slice();
      worker.postMessage({ ...job.req, car: sent }, [sent.buffer as ArrayBuffer]);
    }
  }

  private spawn(slot: Slot): Worker {
    const worker = startWorker(this.opts.worker?.url ?? REPO_WORKER_URL, {
      resourceLimits: { maxOldGenerationSizeMb: this.opts.heapMb },
      workerData: this.opts.worker?.data,
    });
    this.started++;
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (res: RepoDigestResponse | typeof REPO_WORKER_READY) => {
      if (slot.worker !== worker) return;
      if (res === REPO_WORKER_READY) {
        slot.ready = true;
        if (slot.job) this.arm(slot, worker);
        return;
      }
      if (slot.job?.req.id !== res.id) return;
      this.settle(slot, (job) => {
        if (res.ok) job.resolve(res.digest);
        else if (res.reason === 'internal') job.reject(new RepoWorkerError('worker-failed', res.message));
        else job.reject(new RepoCarError(res.reason, res.message));
      });
      this.afterJob(slot, worker);
    });
    const failed = (why: string) => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      this.settle(slot, (job) => job.reject(new RepoWorkerError('worker-failed', why)));
      this.pump();
    };
    // An exhausted heap arrives here (ERR_WORKER_OUT_OF_MEMORY), then 'exit'.
    worker.on('error', (err) => {
      this.log.warn({ err }, 'repo digest worker failed');
      failed(`repo worker failed: ${err.message}`);
    });
    worker.on('messageerror', (err) => failed(`repo worker message failed: ${err.message}`));
    worker.on('exit', (code) => failed(`repo worker exited with code ${code}`));
    return worker;
  }

  /** Starts the running job's deadline (once the worker has loaded). */
  private arm(slot: Slot, worker: Worker): void {
    slot.deadline = setTimeout(() => this.expire(slot, worker), this.opts.timeoutMs ?? 60_000);
  }

  /** Past the deadline: the worker is ended (its job fails) and a new one starts for the queue. */
  private expire(slot: Slot, worker: Worker): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const ms = this.opts.timeoutMs ?? 60_000;
    this.settle(slot, (job) => job.reject(new RepoWorkerError('timeout', `repo not read within ${ms} ms`)));
    void worker.terminate();
    this.pump();
  }

  private settle(slot: Slot, fn: (job: Job) => void): void {
    if (slot.deadline) clearTimeout(slot.deadline);
    slot.deadline = null;
    const job = slot.job;
    slot.job = null;
    if (job) fn(job);
  }

  private afterJob(slot: Slot, worker: Worker): void {
    this.pump();
    if (slot.job) return;
    worker.unref();
    slot.idle = setTimeout(() => {
      slot.idle = null;
      if (slot.worker !== worker || slot.job) return;
      slot.worker = null;
      void worker.terminate();
    }, this.opts.idleMs ?? 30_000);
    slot.idle.unref();
  }
}
