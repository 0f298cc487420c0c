// The worker-thread side of the repo digest pool (repo-digest.ts), shared by
// the real worker entry (repo-worker.ts) and the test fixtures
// (test/support/repo-worker-fixture.ts). A job is either a CAR to read (its buffer
// transferred) or a getRepo to download and then read: the download runs
// here, in this thread, with a fetcher made from the relay fetcher's rules
// (safe-fetch.ts `createWorkerSafeFetcher`): every hop's host is resolved and
// checked on the main thread (a 'resolve' message), the connection pinned to
// the checked address here, the body read here under the byte cap and the
// deadline. So the relay's main thread spends nothing per byte of a repo: a
// hostile host's 128 MiB body costs this thread, not the event loop.
//
// Downloads of several jobs run at once (they wait on the network); reading
// a CAR is synchronous CPU work, one at a time. On 'setup' the thread lowers
// its own scheduling priority (Linux: setpriority on its thread id), so a
// million-block repo competes with the event loop and the validation workers
// only for CPU they leave idle. Never throws: every job gets an answer
// (unless a fixture hook holds it).
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { MessagePort } from 'node:worker_threads';
import {
  createWorkerSafeFetcher,
  FetchTimeoutError,
  type HostResolution,
  HttpStatusError,
  ResponseTooLargeError,
} from '../protocol/identity/safe-fetch.ts';
import { digestRepoCar, RepoCarError, type RepoDigestOptions } from '../protocol/repo-car.ts';
import {
  type DownloadFailure,
  REPO_WORKER_READY,
  type RepoDigestRequest,
  type RepoDigestResponse,
  type RepoWorkerInbound,
  type RepoWorkerOutbound,
} from './repo-digest.ts';

/** Reads one CAR; never throws. */
export function answerRepoDigest(req: {
  id: number;
  car: Uint8Array;
  opts: RepoDigestOptions;
}): RepoDigestResponse {
  try {
    return { type: 'done', id: req.id, ok: true, digest: digestRepoCar(req.car, req.opts) };
  } catch (err) {
    if (err instanceof RepoCarError)
      return { type: 'done', id: req.id, ok: false, reason: err.reason, message: err.message };
    return {
      type: 'done',
      id: req.id,
      ok: false,
      reason: 'internal',
      message: (err as Error)?.message ?? String(err),
    };
  }
}

function downloadFailure(err: unknown): DownloadFailure {
  if (err instanceof HttpStatusError)
    return { kind: 'http', status: err.status, preview: err.bodyPreview, message: err.message };
  if (err instanceof ResponseTooLargeError)
    return { kind: 'too-large', limit: err.limit, message: err.message };
  if (err instanceof FetchTimeoutError) return { kind: 'network', message: err.message };
  return { kind: 'network', message: (err as Error)?.message ?? String(err) };
}

/**
 * Lowers this thread's priority to `nice` (Linux: /proc/thread-self names
 * the thread id, and setpriority on a thread id changes only that thread).
 * Returns false where it cannot (another OS, a sandbox).
 */
export function niceThisThread(nice: number): boolean {
  if (nice <= 0) return false;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}

export interface RepoJobHooks {
  /** Runs before a CAR is read (fixtures): 'hold' never answers the job. */
  beforeDigest?: (opts: RepoDigestOptions) => 'hold' | undefined;
}

/** Serves repo jobs on `port` until the thread ends. */
export function serveRepoJobs(port: MessagePort, hooks: RepoJobHooks = {}): void {
  const post = (m: RepoWorkerOutbound) => port.postMessage(m);
  const resolving = new Map<number, (r: HostResolution) => void>();
  const aborts = new Map<number, AbortController>();
  let nextRid = 1;

  const digest = (req: { id: number; car: Uint8Array; opts: RepoDigestOptions }, downloaded = false) => {
    if (downloaded) post({ type: 'reading', id: req.id });
    if (hooks.beforeDigest?.(req.opts) === 'hold') return;
    post(answerRepoDigest(req));
  };

  const fetchJob = async (req: Extract<RepoDigestRequest, { type: 'fetch' }>) => {
    const abort = new AbortController();
    aborts.set(req.id, abort);
    const resolveHost = (host: string) =>
      new Promise<HostResolution>((resolve) => {
        const rid = nextRid++;
        resolving.set(rid, resolve);
        post({ type: 'resolve', rid, id: req.id, host });
      });
    let body: Uint8Array;
    try {
      const fetcher = createWorkerSafeFetcher(req.settings, resolveHost);
      const res = await fetcher.request(req.url, { ...req.request, signal: abort.signal });
      body = res.body;
    } catch (err) {
      post({ type: 'done', id: req.id, ok: false, reason: 'download', failure: downloadFailure(err) });
      return;
    } finally {
      aborts.delete(req.id);
    }
    digest({ id: req.id, car: body, opts: req.opts }, true);
  };

  port.on('message', (m: RepoWorkerInbound) => {
    switch (m.type) {
      case 'setup':
        niceThisThread(m.nice);
        return;
      case 'digest':
        digest(m);
        return;
      case 'fetch':
        void fetchJob(m);
        return;
      case 'cancel':
        aborts.get(m.id)?.abort();
        return;
      case 'resolved': {
        const resolve = resolving.get(m.rid);
        resolving.delete(m.rid);
        resolve?.(m.result);
        return;
      }
    }
  });
  post(REPO_WORKER_READY);
}
