// Worker threads that download and read whole repo CARs off the main thread.
// A getRepo CAR can be 128 MiB and a million blocks; read on the main thread
// it blocked the event loop for seconds and cost ~400 bytes of heap per
// block, and even only receiving its bytes there cost ~0.25 s of main-thread
// CPU per 128 MiB. Here a job is either a CAR whose buffer is transferred
// (not copied) to a worker, or a whole getRepo: the worker downloads it
// itself under the relay fetcher's SSRF rules (each hop's host resolved and
// checked on the main thread, answered over the worker's port; see
// repo-worker-jobs.ts and safe-fetch.ts `workerRules`), reads it, and
// answers with the digest only (rev, CIDs, the commit block, collection
// names), so the main thread never holds the bytes or a decoded repo.
//
// These are not the verify pool's workers (pool.ts): a repo takes up to a
// second of CPU where a frame takes ~100 µs, so sharing would stall the
// firehose behind it, and a worker a hostile repo brings down must not fail
// frames in flight. The workers run at a lower scheduling priority (`nice`),
// so on a busy machine a repo read takes the CPU the event loop and the
// validation workers leave. Each worker runs up to `jobsPerWorker` jobs at
// once (downloads overlap; reads are one at a time) under a heap cap
// (`resourceLimits`: an exhausted heap ends that worker, not the process) and
// a deadline per job (counted from the worker's ready message, so its
// start-up does not count; the download's own deadline plus `timeoutMs` for
// the read); a job past it ends its worker. Either way the job fails with a
// RepoWorkerError — and so do the other jobs that worker held (after a
// crash or a deadline the jobs still downloading fail 'interrupted', not
// permanent: retried like any download failure) — and a fresh
// worker takes the next jobs. Workers start on first use and exit after
// `idleMs` without work, and are unref'd while idle, so an idle pool costs
// nothing and holds no process open. The queue is bounded by the callers
// (RepoFetcher admits `concurrency` fetches at a time); `maxQueued` is only a
// backstop.
import type { Worker } from 'node:worker_threads';
import { type Logger, silentLogger } from '../log.ts';
import { siblingModuleUrl, startWorker } from '../module-url.ts';
import {
  FetchNetworkError,
  type HostResolution,
  HttpStatusError,
  type PortableFetchSettings,
  ResponseTooLargeError,
  type WorkerFetchRules,
} from '../protocol/identity/safe-fetch.ts';
import {
  RepoCarError,
  type RepoCarErrorReason,
  type RepoDigest,
  type RepoDigestOptions,
} from '../protocol/repo-car.ts';

/** A job for a repo worker: read this CAR, or download it first. */
export type RepoDigestRequest =
  | { type: 'digest'; id: number; car: Uint8Array; opts: RepoDigestOptions }
  | {
      type: 'fetch';
      id: number;
      url: string;
      request: { timeoutMs: number; maxResponseBytes: number; headers: Record<string, string> };
      settings: PortableFetchSettings;
      opts: RepoDigestOptions;
    };

/** What the main thread sends a repo worker. */
export type RepoWorkerInbound =
  | RepoDigestRequest
  | { type: 'setup'; nice: number }
  | { type: 'cancel'; id: number }
  | { type: 'resolved'; rid: number; result: HostResolution };

/** Why a download in a worker failed, as the safe fetcher said (rebuilt into its error on the main thread). */
export type DownloadFailure =
  | { kind: 'http'; status: number; preview: string; message: string }
  | { kind: 'too-large'; limit: number; message: string }
  | { kind: 'network'; message: string };

export type RepoDigestResponse =
  | { type: 'done'; id: number; ok: true; digest: RepoDigest }
  | { type: 'done'; id: number; ok: false; reason: RepoCarErrorReason | 'internal'; message: string }
  | { type: 'done'; id: number; ok: false; reason: 'download'; failure: DownloadFailure };

/** What a worker posts once its modules are loaded: job deadlines count from then, not from its start-up. */
export const REPO_WORKER_READY = 'ready';

/** What a repo worker sends the main thread. */
export type RepoWorkerOutbound =
  | typeof REPO_WORKER_READY
  | RepoDigestResponse
  | { type: 'resolve'; rid: number; id: number; host: string }
  /** The job's download is done and its CAR is being read (a crash now is this job's). */
  | { type: 'reading'; id: number };

/**
 * worker-failed: the job's own worker died (its heap cap, a crash); interrupted:
 * another job's failure ended the worker this job shared (not this repo's fault).
 */
export type RepoWorkerFailure = 'worker-failed' | 'interrupted' | 'timeout' | 'closed' | 'busy';

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
  /** Jobs one worker holds at once (downloads overlap, reads take turns; default 1). */
  jobsPerWorker?: number;
  /** Nice value of the worker threads (0: as the relay; default 10). */
  nice?: number;
  /** Reading a CAR longer than this ends its worker (default 60 s; a download's own deadline comes on top). */
  timeoutMs?: number;
  /** A worker idle this long exits (default 30 s). */
  idleMs?: number;
  /** Jobs waiting for a worker before more are refused (default 1,000). */
  maxQueued?: number;
  logger?: Logger;
  /** Tests: another worker entry answering like repo-worker.ts (e.g. one that holds jobs), and its workerData. */
  worker?: { url: URL; data?: unknown };
}

/** One getRepo for a worker to download and read. */
export interface RepoDownload {
  url: string;
  timeoutMs: number;
  maxResponseBytes: number;
  headers: Record<string, string>;
  /** The fetcher rules the worker downloads under (its hosts are checked here). */
  rules: WorkerFetchRules;
  signal?: AbortSignal;
}

export const DEFAULT_REPO_WORKER_NICE = 10;

interface Job {
  req: RepoDigestRequest;
  /** The job's deadline from the worker's ready message, ms. */
  budgetMs: number;
  rules?: WorkerFetchRules;
  resolve: (d: RepoDigest) => void;
  reject: (e: Error) => void;
  deadline: NodeJS.Timeout | null;
  /** Its CAR is being read (digest jobs from the start, fetch jobs once downloaded). */
  reading: boolean;
  /** Removes the abort listener (fetch jobs with a signal). */
  unlisten?: () => void;
}

interface Slot {
  worker: Worker | null;
  /** The worker has loaded (REPO_WORKER_READY). */
  ready: boolean;
  jobs: Map<number, Job>;
  idle: NodeJS.Timeout | null;
}

const REPO_WORKER_URL = siblingModuleUrl('./repo-worker.ts', import.meta.url);

export class RepoDigestPool {
  private readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private readonly log: Logger;
  private readonly jobsPerWorker: number;
  private readonly timeoutMs: number;
  private nextId = 1;
  private closed = false;
  /** Workers started (tests, metrics). */
  started = 0;

  constructor(private readonly opts: RepoDigestPoolOptions) {
    this.log = opts.logger ?? silentLogger;
    this.jobsPerWorker = Math.max(1, opts.jobsPerWorker ?? 1);
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.slots = Array.from({ length: Math.max(1, opts.workers) }, () => ({
      worker: null,
      ready: false,
      jobs: new Map(),
      idle: null,
    }));
  }

  /** Jobs held by a worker (downloading or being read). */
  get running(): number {
    let n = 0;
    for (const s of this.slots) n += s.jobs.size;
    return n;
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
    return this.submit((id) => ({ type: 'digest', id, car, opts }), this.timeoutMs);
  }

  /**
   * Downloads `download.url` in a worker (under `download.rules`) and reads
   * it there. Rejects like `digest`, or with the safe fetcher's error for the
   * download (HttpStatusError, ResponseTooLargeError, FetchNetworkError).
   */
  fetchAndDigest(download: RepoDownload, opts: RepoDigestOptions): Promise<RepoDigest> {
    if (download.signal?.aborted)
      return Promise.reject(new FetchNetworkError(download.url, 'aborted', download.signal.reason));
    const make = (id: number): RepoDigestRequest => ({
      type: 'fetch',
      id,
      url: download.url,
      request: {
        timeoutMs: download.timeoutMs,
        maxResponseBytes: download.maxResponseBytes,
        headers: download.headers,
      },
      settings: download.rules.settings,
      opts,
    });
    return this.submit(make, download.timeoutMs + this.timeoutMs, download.rules, download.signal);
  }

  private submit(
    make: (id: number) => RepoDigestRequest,
    budgetMs: number,
    rules?: WorkerFetchRules,
    signal?: AbortSignal,
  ): Promise<RepoDigest> {
    if (this.closed) return Promise.reject(new RepoWorkerError('closed', 'repo digest pool closed'));
    if (this.queue.length >= (this.opts.maxQueued ?? 1000))
      return Promise.reject(new RepoWorkerError('busy', 'repo digest queue full'));
    return new Promise((resolve, reject) => {
      const req = make(this.nextId++);
      const job: Job = {
        req,
        budgetMs,
        rules,
        resolve,
        reject,
        deadline: null,
        reading: req.type === 'digest',
      };
      if (signal) {
        const onAbort = () => this.abort(job, signal);
        signal.addEventListener('abort', onAbort, { once: true });
        job.unlisten = () => signal.removeEventListener('abort', onAbort);
      }
      this.queue.push(job);
      this.pump();
    });
  }

  /** An aborted fetch: dropped from the queue, or cancelled in its worker (which then answers 'aborted'). */
  private abort(job: Job, signal: AbortSignal): void {
    const queuedAt = this.queue.indexOf(job);
    if (queuedAt >= 0) {
      this.queue.splice(queuedAt, 1);
      job.unlisten?.();
      const url = job.req.type === 'fetch' ? job.req.url : '';
      job.reject(new FetchNetworkError(url, 'aborted', signal.reason));
      return;
    }
    for (const slot of this.slots) {
      if (slot.jobs.get(job.req.id) === job) slot.worker?.postMessage({ type: 'cancel', id: job.req.id });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new RepoWorkerError('closed', 'repo digest pool closed');
    for (const job of this.queue.splice(0)) this.finish(job, (j) => j.reject(err));
    await Promise.all(
      this.slots.map(async (slot) => {
        const worker = slot.worker;
        this.failAll(slot, () => err);
        if (slot.idle) clearTimeout(slot.idle);
        slot.worker = null;
        await worker?.terminate();
      }),
    );
  }

  /** The slot with room that holds the fewest jobs (a started worker first among equals). */
  private freeSlot(): Slot | null {
    let best: Slot | null = null;
    for (const s of this.slots) {
      if (s.jobs.size >= this.jobsPerWorker) continue;
      if (
        !best ||
        s.jobs.size < best.jobs.size ||
        (s.jobs.size === best.jobs.size && s.worker && !best.worker)
      )
        best = s;
    }
    return best;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.closed) {
      const slot = this.freeSlot();
      if (!slot) return;
      const job = this.queue.shift() as Job;
      if (slot.idle) clearTimeout(slot.idle);
      slot.idle = null;
      const worker = slot.worker ?? this.spawn(slot);
      worker.ref();
      slot.jobs.set(job.req.id, job);
      if (slot.ready) this.arm(slot, worker, job);
      if (job.req.type === 'digest') {
        const car = job.req.car;
        const whole = car.byteOffset === 0 && car.byteLength === car.buffer.byteLength;
        const sent = whole && car.buffer instanceof ArrayBuffer ? car : car.slice();
        worker.postMessage({ ...job.req, car: sent }, [sent.buffer as ArrayBuffer]);
      } else worker.postMessage(job.req);
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
    worker.postMessage({
      type: 'setup',
      nice: this.opts.nice ?? DEFAULT_REPO_WORKER_NICE,
    } satisfies RepoWorkerInbound);
    worker.on('message', (res: RepoWorkerOutbound) => {
      if (slot.worker !== worker) return;
      if (res === REPO_WORKER_READY) {
        slot.ready = true;
        for (const job of slot.jobs.values()) this.arm(slot, worker, job);
        return;
      }
      if (res.type === 'resolve') {
        this.resolveFor(slot, worker, res);
        return;
      }
      if (res.type === 'reading') {
        const reading = slot.jobs.get(res.id);
        if (reading) reading.reading = true;
        return;
      }
      const job = slot.jobs.get(res.id);
      if (!job) return;
      slot.jobs.delete(res.id);
      this.finish(job, (j) => {
        if (res.ok) j.resolve(res.digest);
        else if (res.reason === 'download') j.reject(downloadError(j.req, res.failure));
        else if (res.reason === 'internal') j.reject(new RepoWorkerError('worker-failed', res.message));
        else j.reject(new RepoCarError(res.reason, res.message));
      });
      this.afterJob(slot, worker);
    });
    const failed = (why: string) => {
      if (slot.worker !== worker) return;
      slot.worker = null;
      // the job being read brought it down (reads take turns); downloads beside it were only interrupted
      this.failAll(slot, (job) =>
        job.reading
          ? new RepoWorkerError('worker-failed', why)
          : new RepoWorkerError('interrupted', `repo worker ended while downloading: ${why}`),
      );
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

  /** A worker asks for a hop's host of one of its downloads: resolved and checked here, under that job's rules. */
  private resolveFor(slot: Slot, worker: Worker, m: { rid: number; id: number; host: string }): void {
    const rules = slot.jobs.get(m.id)?.rules;
    const answer = (result: HostResolution) => {
      if (slot.worker === worker) worker.postMessage({ type: 'resolved', rid: m.rid, result });
    };
    if (!rules) {
      answer({ ok: false, refused: true, reason: 'no download in progress' });
      return;
    }
    rules
      .resolveHost(m.host)
      .then(answer, (err: unknown) =>
        answer({ ok: false, refused: false, message: `DNS lookup of ${m.host} failed: ${String(err)}` }),
      );
  }

  /** Starts a job's deadline (once its worker has loaded). */
  private arm(slot: Slot, worker: Worker, job: Job): void {
    if (job.deadline) return;
    job.deadline = setTimeout(() => this.expire(slot, worker, job), job.budgetMs);
  }

  /** Past a job's deadline: its worker is ended (its jobs fail) and a new one starts for the queue. */
  private expire(slot: Slot, worker: Worker, expired: Job): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    // a read that does not end blocks the worker, so the job being read is the one to blame
    let culprit = expired;
    for (const job of slot.jobs.values()) if (job.reading) culprit = job;
    this.failAll(slot, (job) =>
      job === culprit
        ? new RepoWorkerError('timeout', `repo not read within ${job.budgetMs} ms`)
        : new RepoWorkerError(
            'worker-failed',
            'repo worker ended: another of its jobs ran past its deadline',
          ),
    );
    void worker.terminate();
    this.pump();
  }

  private finish(job: Job, fn: (job: Job) => void): void {
    if (job.deadline) clearTimeout(job.deadline);
    job.deadline = null;
    job.unlisten?.();
    fn(job);
  }

  private failAll(slot: Slot, why: (job: Job) => Error): void {
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    for (const job of jobs) this.finish(job, (j) => j.reject(why(j)));
  }

  private afterJob(slot: Slot, worker: Worker): void {
    this.pump();
    if (slot.jobs.size > 0) return;
    worker.unref();
    slot.idle = setTimeout(() => {
      slot.idle = null;
      if (slot.worker !== worker || slot.jobs.size > 0) return;
      slot.worker = null;
      void worker.terminate();
    }, this.opts.idleMs ?? 30_000);
    slot.idle.unref();
  }
}

/** The safe fetcher's error for a download that failed in a worker. */
function downloadError(req: RepoDigestRequest, f: DownloadFailure): Error {
  const url = req.type === 'fetch' ? req.url : '';
  switch (f.kind) {
    case 'http':
      return new HttpStatusError(url, f.status, f.preview);
    case 'too-large':
      return new ResponseTooLargeError(url, f.limit);
    case 'network':
      return new FetchNetworkError(url, f.message);
  }
}
