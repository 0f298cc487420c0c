// The one way the relay fetches a whole repository (com.atproto.sync.getRepo):
// the resync after a chain break (resync.ts), the collection index's #sync
// recompute and cleaner (collections/relay-upkeep.ts) and the backfill's
// per-account fallback (collections/backfill.ts) all call `fetchRepo` and get
// back only what they need — rev, commit and MST root CIDs, the signed commit
// block, the collection names — never the CAR.
//
// Every repo is a hostile input until read, so each step is bounded before
// it costs anything: the download through the SSRF-safe fetcher with a byte
// cap (a declared Content-Length over it is refused before the body, a body
// that grows past it is cut off) and a deadline; at most `concurrency`
// fetches at a time, so at most concurrency × maxBytes of CAR bytes are held
// (callers beyond it wait their turn, in order); the download and the
// reading both in a worker thread (repo-digest.ts: the fetcher lends the
// worker its rules, and each hop's host is still resolved and checked on
// this thread, so the main thread spends nothing per byte), under a
// block-count limit, a heap cap and a deadline. A fetcher that cannot lend
// its rules (test doubles without `workerRules`) downloads here and only
// the reading goes to the worker. When the caller passes the account's signing key, the commit
// signature is verified in the worker too. Every outcome is counted in
// `relay_repo_fetches_total{purpose,result}`; a failure is a RepoFetchError
// whose `reason` says which limit or check it was, and `permanent` whether
// fetching the same repo again could help.
//
// A RepoFetcher is also a SafeFetcher (its other requests go straight to the
// fetcher it wraps), so it can be handed to the Validator as the fetcher it
// uses for resyncs (ValidatorOptions.fetcher): the resync then shares these
// limits and workers (resync.ts).
import { Counter, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { type Cid, CidLinkWrapper } from '../protocol/cid.ts';
import {
  HttpStatusError,
  type RequestOptions,
  ResponseTooLargeError,
  type SafeFetcher,
} from '../protocol/identity/safe-fetch.ts';
import type { PublicKey } from '../protocol/keys.ts';
import { RepoCarError, type RepoCarErrorReason, type RepoDigest } from '../protocol/repo-car.ts';
import {
  DEFAULT_REPO_WORKER_NICE,
  RepoDigestPool,
  type RepoDigestPoolOptions,
  RepoWorkerError,
  type RepoWorkerFailure,
} from './repo-digest.ts';

/** Who fetched the repo (a metric label). */
export type RepoFetchPurpose = 'resync' | 'sync-recompute' | 'cleaner' | 'backfill';

/** Why a fetch failed: a check on the repo, the download, or the worker. */
export type RepoFetchFailure = RepoCarErrorReason | RepoWorkerFailure | 'fetch-failed';

/** Failures that fetching the same repo again cannot cure (it is too big or broken as served). */
const TRANSIENT: ReadonlySet<RepoFetchFailure> = new Set(['fetch-failed', 'closed', 'busy', 'interrupted']);

export class RepoFetchError extends Error {
  constructor(
    readonly reason: RepoFetchFailure,
    message: string,
    /** The HTTP status when the PDS answered with an error (0 otherwise). */
    readonly httpStatus = 0,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RepoFetchError';
  }

  /**
   * True when the repo as served is over a limit or broken: fetching it again
   * will not help. Download failures, HTTP errors included (a PDS mid-migration
   * may answer 400 for a while), are not permanent; callers judge statuses.
   */
  get permanent(): boolean {
    return !TRANSIENT.has(this.reason);
  }
}

/** The repo as served cannot be read within the limits (or is broken): fetching it again will not help. */
export function isPermanentRepoFailure(err: unknown): boolean {
  return err instanceof RepoFetchError && err.permanent;
}

/** What a fetched repo comes down to. */
export interface FetchedRepo {
  did: string;
  rev: string;
  commitCid: Cid;
  dataCid: Cid;
  /** The signed commit block (for a #sync). */
  commitBlock: Uint8Array;
  /** Distinct collection names (key prefixes of the MST), sorted. */
  collections: string[];
  /** 'ok' when a key was given (a bad signature is an error), else 'unchecked'. */
  signature: 'ok' | 'unchecked';
  /** Size of the CAR: distinct blocks and bytes. */
  blocks: number;
  bytes: number;
}

export interface RepoFetchOptions {
  purpose: RepoFetchPurpose;
  /** The account's signing key: the commit signature must verify against it. */
  key?: PublicKey;
  signal?: AbortSignal;
  /** Download deadline (default: the fetcher's `timeoutMs`). */
  timeoutMs?: number;
  /** A lower byte limit for this fetch (never above the configured one). */
  maxBytes?: number;
}

/** The limits of repo fetches (RELAY_MAX_REPO_MB, RELAY_MAX_REPO_BLOCKS, RELAY_REPO_*). */
export interface RepoLimits {
  /** Largest repo CAR downloaded and read, bytes. */
  maxBytes: number;
  /** Most blocks a repo CAR may hold. */
  maxBlocks: number;
  /** Repo fetches (download + read) at once; more wait. */
  concurrency: number;
  /** Worker threads downloading and reading repo CARs. */
  workers: number;
  /** Nice value of those threads (0: the relay's priority). */
  workerNice: number;
  /** Heap cap of each of those workers, MiB. */
  workerHeapMb: number;
}

export const DEFAULT_REPO_LIMITS: RepoLimits = {
  maxBytes: 128 * 1024 * 1024,
  maxBlocks: 1_000_000,
  concurrency: 4,
  workers: 1,
  workerNice: DEFAULT_REPO_WORKER_NICE,
  workerHeapMb: 256,
};

export interface RepoFetcherOptions extends Partial<RepoLimits> {
  /** The SSRF-safe fetcher every download goes through. */
  fetcher: SafeFetcher;
  /** Download deadline (default 60 s). */
  timeoutMs?: number;
  /** Deadline for reading one CAR in a worker (default 60 s). */
  digestTimeoutMs?: number;
  /** Distinct collections a repo may hold (default 10,000). */
  maxCollections?: number;
  /** Where the counters go (default: a private registry). */
  registry?: Registry;
  logger?: Logger;
  /** Tests: another worker entry (repo-digest.ts). */
  worker?: RepoDigestPoolOptions['worker'];
}

export class RepoFetcher implements SafeFetcher {
  readonly limits: RepoLimits;
  private readonly fetcher: SafeFetcher;
  private readonly pool: RepoDigestPool;
  private readonly waiting: (() => void)[] = [];
  private active = 0;
  private readonly fetches: Counter<'purpose' | 'result'>;
  private readonly digestSeconds: Histogram;

  constructor(private readonly opts: RepoFetcherOptions) {
    this.fetcher = opts.fetcher;
    this.limits = {
      maxBytes: opts.maxBytes ?? DEFAULT_REPO_LIMITS.maxBytes,
      maxBlocks: opts.maxBlocks ?? DEFAULT_REPO_LIMITS.maxBlocks,
      concurrency: opts.concurrency ?? DEFAULT_REPO_LIMITS.concurrency,
      workers: opts.workers ?? DEFAULT_REPO_LIMITS.workers,
      workerNice: opts.workerNice ?? DEFAULT_REPO_LIMITS.workerNice,
      workerHeapMb: opts.workerHeapMb ?? DEFAULT_REPO_LIMITS.workerHeapMb,
    };
    this.pool = new RepoDigestPool({
      workers: this.limits.workers,
      // every fetch admitted (`concurrency`) downloads at once, spread over the workers
      jobsPerWorker: Math.ceil(this.limits.concurrency / Math.max(1, this.limits.workers)),
      nice: this.limits.workerNice,
      heapMb: this.limits.workerHeapMb,
      timeoutMs: opts.digestTimeoutMs,
      logger: opts.logger,
      worker: opts.worker,
    });
    const registers = [opts.registry ?? new Registry()];
    this.fetches = new Counter({
      name: 'relay_repo_fetches_total',
      help: 'Whole-repo fetches (getRepo) by purpose and result: ok, not-found, or the limit or check that failed',
      labelNames: ['purpose', 'result'],
      registers,
    });
    this.digestSeconds = new Histogram({
      name: 'relay_repo_digest_seconds',
      help: 'Time to download and read a repo CAR in a worker (queue wait included); only fetches that reached the read',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
  }

  /** Fetches being downloaded or read (at most `concurrency`). */
  get inFlight(): number {
    return this.active;
  }

  /** Fetches waiting for a slot. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Repo reads in a worker / waiting for one (tests, diagnostics). */
  get digests(): { running: number; queued: number; workersStarted: number } {
    return { running: this.pool.running, queued: this.pool.queued, workersStarted: this.pool.started };
  }

  /**
   * The repo of `did` from `pdsEndpoint`, read in a worker; null when the PDS
   * says it has no such repo (404, or 400 RepoNotFound). Throws RepoFetchError.
   */
  async fetchRepo(did: string, pdsEndpoint: string, opts: RepoFetchOptions): Promise<FetchedRepo | null> {
    if (this.active >= this.limits.concurrency) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.active++;
    try {
      const repo = await this.fetchAndRead(did, pdsEndpoint, opts);
      this.fetches.inc({ purpose: opts.purpose, result: repo ? 'ok' : 'not-found' });
      return repo;
    } catch (err) {
      const failure =
        err instanceof RepoFetchError
          ? err
          : new RepoFetchError('fetch-failed', String(err), 0, { cause: err });
      this.fetches.inc({ purpose: opts.purpose, result: failure.reason });
      throw failure;
    } finally {
      const next = this.waiting.shift();
      if (next)
        next(); // the slot passes straight to the next caller
      else this.active--;
    }
  }

  private async fetchAndRead(
    did: string,
    pdsEndpoint: string,
    opts: RepoFetchOptions,
  ): Promise<FetchedRepo | null> {
    const maxBytes = Math.min(opts.maxBytes ?? this.limits.maxBytes, this.limits.maxBytes);
    const url = `${pdsEndpoint}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`;
    const timeoutMs = opts.timeoutMs ?? this.opts.timeoutMs ?? 60_000;
    const headers = { accept: 'application/vnd.ipld.car' };
    const digestOpts = {
      did,
      key: opts.key,
      maxBytes,
      maxBlocks: this.limits.maxBlocks,
      maxCollections: this.opts.maxCollections,
    };
    const rules = this.fetcher.workerRules?.();
    const started = performance.now();
    let digested = false;
    try {
      let d: RepoDigest;
      if (rules) {
        // downloaded and read in a worker: this thread only checks the hosts
        d = await this.pool.fetchAndDigest(
          { url, timeoutMs, maxResponseBytes: maxBytes, headers, rules, signal: opts.signal },
          digestOpts,
        );
      } else {
        const res = await this.fetcher.request(url, {
          timeoutMs,
          maxResponseBytes: maxBytes,
          headers,
          signal: opts.signal,
        });
        d = await this.pool.digest(res.body, digestOpts);
      }
      digested = true;
      return {
        did: d.did,
        rev: d.rev,
        commitCid: new CidLinkWrapper(d.commitCid),
        dataCid: new CidLinkWrapper(d.dataCid),
        commitBlock: d.commitBlock,
        collections: d.collections,
        signature: d.signature,
        blocks: d.blocks,
        bytes: d.bytes,
      };
    } catch (err) {
      if (err instanceof HttpStatusError) {
        if (err.status === 404 || (err.status === 400 && err.bodyPreview.includes('RepoNotFound')))
          return null;
        throw new RepoFetchError('fetch-failed', `getRepo failed: ${err.message}`, err.status, {
          cause: err,
        });
      }
      if (err instanceof ResponseTooLargeError)
        throw new RepoFetchError('too-large', `repo CAR exceeds ${maxBytes} bytes`, 0, { cause: err });
      if (err instanceof RepoCarError || err instanceof RepoWorkerError) {
        digested = true;
        throw new RepoFetchError(err.reason, err.message, 0, { cause: err });
      }
      throw new RepoFetchError('fetch-failed', `getRepo failed: ${(err as Error).message}`, 0, {
        cause: err,
      });
    } finally {
      if (digested) this.digestSeconds.observe((performance.now() - started) / 1000);
    }
  }

  /** Stops the repo workers (the wrapped SafeFetcher is left to its owner). */
  async close(): Promise<void> {
    await this.pool.close();
  }

  // SafeFetcher: anything else goes straight to the wrapped fetcher.
  request(url: string, opts?: RequestOptions) {
    return this.fetcher.request(url, opts);
  }

  getJson(url: string, opts?: RequestOptions) {
    return this.fetcher.getJson(url, opts);
  }

  getText(url: string, opts?: RequestOptions) {
    return this.fetcher.getText(url, opts);
  }
}
