// Repo resync: when a #commit does not follow the stored head (sync 1.1
// chain break), the relay neither freezes the repo nor passes data it cannot
// verify. It fetches the whole repo from the account's PDS
// (`com.atproto.sync.getRepo`), downloaded and read in a worker thread
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
// A host decides when its accounts' chains break, so a hostile host could
// otherwise make the relay fetch its repos (CAR bombs) with every resync
// slot and token. Each host (the PDS endpoint's host) therefore also has a
// budget of its own: at most `hostConcurrency` of its resyncs at once,
// `hostPerSecond` starts per second, `hostMaxQueued` waiting. The queue is
// one per host, served round-robin, so a host's backlog never stands in
// front of another host's resync. Resyncs that waited for their host's
// budget, and those refused because their host's queue was full, are
// counted (`onHostLimit`: relay_validation_resync_host_limited_total).
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
  /** Resyncs of one host's accounts at once (default: `concurrency`). */
  hostConcurrency?: number;
  /** Resync starts per second for one host (token bucket, burst = max(1, this); default: `perSecond`). */
  hostPerSecond?: number;
  /** One host's resyncs waiting before more of its are refused (default: `maxQueued`). */
  hostMaxQueued?: number;
  /** Told when a resync waits for its host's budget ('deferred', once per resync) or is refused for it ('refused'). */
  onHostLimit?: (result: 'deferred' | 'refused') => void;
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
  /** Already counted as waiting for its host's budget. */
  deferred: boolean;
}

/** One host's queue and budget. */
interface HostBudget {
  queue: QueuedResync[];
  running: number;
  tokens: number;
  lastRefill: number;
}

/** The budget key of a PDS endpoint: its host (with port), or the string itself if it is not a URL. */
function hostOf(pdsEndpoint: string): string {
  try {
    return new URL(pdsEndpoint).host.toLowerCase();
  } catch {
    return pdsEndpoint;
  }
}

export class Resyncer {
  private readonly opts: ResyncOptions;
  private readonly repos: RepoFetcher;
  /** The RepoFetcher was made here (closed with the Resyncer). */
  private readonly ownsRepos: boolean;
  private readonly now: () => number;
  /** Hosts with resyncs waiting, running, or a budget still refilling; served round-robin in this order. */
  private readonly hosts = new Map<string, HostBudget>();
  private waiting = 0;
  private running = 0;
  private tokens: number;
  private lastRefill: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly hostConcurrency: number;
  private readonly hostPerSecond: number;
  private readonly hostMaxQueued: number;

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
    this.hostConcurrency = opts.hostConcurrency ?? opts.concurrency;
    this.hostPerSecond = opts.hostPerSecond ?? opts.perSecond;
    this.hostMaxQueued = opts.hostMaxQueued ?? opts.maxQueued;
  }

  /** Resyncs waiting (all hosts). */
  get queued(): number {
    return this.waiting;
  }

  /** Hosts the resyncer holds a budget for (tests: it forgets idle ones). */
  get hostsTracked(): number {
    return this.hosts.size;
  }

  /** Fetches and verifies the repo's current commit; rejects with ResyncError on any failure. */
  fetchHead(did: string, pdsEndpoint: string, key: PublicKey): Promise<ResyncedHead> {
    if (this.closed) return Promise.reject(new ResyncError('resyncer closed'));
    if (this.waiting >= this.opts.maxQueued) {
      return Promise.reject(new ResyncError(`resync queue full (${this.opts.maxQueued})`));
    }
    const hostKey = hostOf(pdsEndpoint);
    const host = this.hostBudget(hostKey);
    if (host.queue.length >= this.hostMaxQueued) {
      this.opts.onHostLimit?.('refused');
      return Promise.reject(new ResyncError(`resync queue of host ${hostKey} full (${this.hostMaxQueued})`));
    }
    return new Promise<ResyncedHead>((resolve, reject) => {
      host.queue.push({
        run: () => this.fetchAndVerify(did, pdsEndpoint, key).then(resolve, reject),
        reject,
        deferred: false,
      });
      this.waiting++;
      this.pump();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const host of this.hosts.values())
      for (const q of host.queue.splice(0)) q.reject(new ResyncError('resyncer closed'));
    this.waiting = 0;
    if (this.ownsRepos) void this.repos.close();
  }

  private hostBudget(key: string): HostBudget {
    let host = this.hosts.get(key);
    if (!host) {
      host = { queue: [], running: 0, tokens: Math.max(1, this.hostPerSecond), lastRefill: this.now() };
      this.hosts.set(key, host);
    }
    return host;
  }

  private refill(t: number): void {
    const burst = Math.max(1, this.opts.perSecond);
    this.tokens = Math.min(burst, this.tokens + ((t - this.lastRefill) / 1000) * this.opts.perSecond);
    this.lastRefill = t;
  }

  private refillHost(host: HostBudget, t: number): void {
    const burst = Math.max(1, this.hostPerSecond);
    host.tokens = Math.min(burst, host.tokens + ((t - host.lastRefill) / 1000) * this.hostPerSecond);
    host.lastRefill = t;
  }

  /** Starts what the global and per-host budgets allow, round-robin over hosts; arms a timer for the rest. */
  private pump(): void {
    if (this.closed) return;
    const t = this.now();
    this.refill(t);
    let hostWaitMs = Number.POSITIVE_INFINITY;
    let started = true;
    while (started && this.waiting > 0 && this.running < this.opts.concurrency && this.tokens >= 1) {
      started = false;
      hostWaitMs = Number.POSITIVE_INFINITY;
      for (const [key, host] of this.hosts) {
        if (host.queue.length === 0) continue;
        this.refillHost(host, t);
        if (host.running >= this.hostConcurrency || host.tokens < 1) {
          for (const q of host.queue) {
            if (q.deferred) continue;
            q.deferred = true;
            this.opts.onHostLimit?.('deferred');
          }
          if (host.running < this.hostConcurrency && this.hostPerSecond > 0)
            hostWaitMs = Math.min(hostWaitMs, ((1 - host.tokens) / this.hostPerSecond) * 1000);
          continue;
        }
        const next = host.queue.shift() as QueuedResync;
        this.waiting--;
        this.tokens -= 1;
        host.tokens -= 1;
        this.running++;
        host.running++;
        // round-robin: this host goes to the back of the order
        this.hosts.delete(key);
        this.hosts.set(key, host);
        next.run().finally(() => {
          this.running--;
          host.running--;
          this.pump();
        });
        started = true;
        break;
      }
    }
    // forget hosts with nothing queued or running whose budget is full again (a fresh one starts full)
    for (const [key, host] of this.hosts) {
      if (host.queue.length > 0 || host.running > 0) continue;
      this.refillHost(host, t);
      if (host.tokens >= Math.max(1, this.hostPerSecond)) this.hosts.delete(key);
    }
    if (this.waiting > 0 && !this.timer && this.running < this.opts.concurrency) {
      const globalWaitMs =
        this.tokens >= 1 || this.opts.perSecond <= 0 ? 0 : ((1 - this.tokens) / this.opts.perSecond) * 1000;
      const waitMs = Math.max(globalWaitMs, hostWaitMs === Number.POSITIVE_INFINITY ? 0 : hostWaitMs);
      // hosts held only by their concurrency wait for a finish (which pumps), not a timer
      if (hostWaitMs !== Number.POSITIVE_INFINITY || this.tokens < 1) {
        this.timer = setTimeout(
          () => {
            this.timer = null;
            this.pump();
          },
          Math.max(1, Math.ceil(waitMs)),
        );
      }
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
