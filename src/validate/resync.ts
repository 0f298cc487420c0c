// Repo resync: when a #commit does not follow the stored head (sync 1.1
// chain break), the relay neither freezes the repo nor passes data it cannot
// verify. It fetches the whole repo from the account's PDS
// (`com.atproto.sync.getRepo`) and reads it in a worker thread
// (repo-fetch.ts: byte and block-count limits, every block hash checked, the
// root a v3 commit of this DID whose signature verifies against the
// account's key, the collection names read from the MST); only that digest
// comes back to the main thread, and the validator then resets the head to
// that commit and emits a #sync. Resyncs cost a PDS a full repo export, so
// they go through a queue with a concurrency limit and a token bucket (at
// most `perSecond` starts per second), and the queue is bounded: past it, a
// resync fails at once and the account stays desynchronized until a later
// event or an upstream #sync retries it.
//
// The relay hands the Validator its RepoFetcher as the `fetcher` (a
// RepoFetcher is a SafeFetcher), so resyncs share the relay's repo limits,
// workers and metrics with the collection index's fetches. Given a plain
// SafeFetcher (tests, tools), the Resyncer makes a RepoFetcher of its own
// from `maxRepoBytes`/`maxRepoBlocks` and closes it with itself.
import type { Cid } from '../protocol/cid.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { PublicKey } from '../protocol/keys.ts';
import { DEFAULT_REPO_LIMITS, RepoFetcher } from './repo-fetch.ts';

export interface ResyncOptions {
  /** getRepo goes through this; a RepoFetcher brings its own limits and workers (see above). */
  fetcher: SafeFetcher;
  /** Resync starts per second (token bucket, burst = max(1, perSecond)). */
  perSecond: number;
  /** Resyncs in flight at once. */
  concurrency: number;
  /** Resyncs waiting before new ones are refused. */
  maxQueued: number;
  timeoutMs: number;
  /** Largest repo CAR accepted (when `fetcher` is not a RepoFetcher). */
  maxRepoBytes: number;
  /** Most blocks a repo CAR may hold (when `fetcher` is not a RepoFetcher; default 1,000,000). */
  maxRepoBlocks?: number;
  now?: () => number;
}

export interface ResyncedHead {
  rev: string;
  commitCid: Cid;
  dataCid: Cid;
  /** The signed commit block, for the #sync the validator emits. */
  commitBlock: Uint8Array;
  /**
   * The collection names of the fetched repo's MST, read by the worker (the
   * CAR itself is never handed back), for the collection index.
   */
  collections: readonly string[];
}

export class ResyncError extends Error {
  override name = 'ResyncError';
}

interface QueuedResync {
  run: () => Promise<void>;
  reject: (err: Error) => void;
}

export class Resyncer {
  private readonly opts: ResyncOptions;
  private readonly repos: RepoFetcher;
  /** The RepoFetcher was made here (closed with the Resyncer). */
  private readonly ownsRepos: boolean;
  private readonly now: () => number;
  private readonly queue: QueuedResync[] = [];
  private running = 0;
  private tokens: number;
  private lastRefill: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(opts: ResyncOptions) {
    this.opts = opts;
    this.ownsRepos = !(opts.fetcher instanceof RepoFetcher);
    this.repos =
      opts.fetcher instanceof RepoFetcher
        ? opts.fetcher
        : new RepoFetcher({
            fetcher: opts.fetcher,
            maxBytes: opts.maxRepoBytes,
            maxBlocks: opts.maxRepoBlocks ?? DEFAULT_REPO_LIMITS.maxBlocks,
            concurrency: opts.concurrency,
          });
    this.now = opts.now ?? Date.now;
    this.tokens = Math.max(1, opts.perSecond);
    this.lastRefill = this.now();
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Fetches and verifies the repo's current commit; rejects with ResyncError on any failure. */
  fetchHead(did: string, pdsEndpoint: string, key: PublicKey): Promise<ResyncedHead> {
    if (this.closed) return Promise.reject(new ResyncError('resyncer closed'));
    if (this.queue.length >= this.opts.maxQueued) {
      return Promise.reject(new ResyncError(`resync queue full (${this.opts.maxQueued})`));
    }
    return new Promise<ResyncedHead>((resolve, reject) => {
      this.queue.push({
        run: () => this.fetchAndVerify(did, pdsEndpoint, key).then(resolve, reject),
        reject,
      });
      this.pump();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const q of this.queue.splice(0)) q.reject(new ResyncError('resyncer closed'));
    if (this.ownsRepos) void this.repos.close();
  }

  private refill(): void {
    const t = this.now();
    const burst = Math.max(1, this.opts.perSecond);
    this.tokens = Math.min(burst, this.tokens + ((t - this.lastRefill) / 1000) * this.opts.perSecond);
    this.lastRefill = t;
  }

  private pump(): void {
    if (this.closed) return;
    this.refill();
    while (this.queue.length > 0 && this.running < this.opts.concurrency && this.tokens >= 1) {
      const next = this.queue.shift() as QueuedResync;
      this.tokens -= 1;
      this.running++;
      next.run().finally(() => {
        this.running--;
        this.pump();
      });
    }
    if (this.queue.length > 0 && this.tokens < 1 && !this.timer && this.opts.perSecond > 0) {
      const waitMs = Math.ceil(((1 - this.tokens) / this.opts.perSecond) * 1000);
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, waitMs);
    }
  }

  private async fetchAndVerify(did: string, pdsEndpoint: string, key: PublicKey): Promise<ResyncedHead> {
    let repo: Awaited<ReturnType<RepoFetcher['fetchRepo']>>;
    try {
      repo = await this.repos.fetchRepo(did, pdsEndpoint, {
        purpose: 'resync',
        key,
        timeoutMs: this.opts.timeoutMs,
      });
    } catch (err) {
      throw new ResyncError(`repo fetch failed: ${(err as Error).message}`, { cause: err });
    }
    if (!repo) throw new ResyncError('the PDS has no such repo');
    return {
      rev: repo.rev,
      commitCid: repo.commitCid,
      dataCid: repo.dataCid,
      commitBlock: repo.commitBlock,
      collections: repo.collections,
    };
  }
}
