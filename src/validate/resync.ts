// Repo resync: when a #commit does not follow the stored head (sync 1.1
// chain break), the relay neither freezes the repo nor passes data it cannot
// verify. It fetches the whole repo from the account's PDS
// (`com.atproto.sync.getRepo`), checks the CAR (every block hash), that its
// root is a v3 commit of this DID, and that the commit's signature verifies
// against the account's key; the validator then resets the head to that
// commit and emits a #sync. Resyncs cost a PDS a full repo export, so they go
// through a queue with a concurrency limit and a token bucket (at most
// `perSecond` starts per second), and the queue is bounded: past it, a resync
// fails at once and the account stays desynchronized until a later event or
// an upstream #sync retries it.
import { readCar } from '../protocol/car.ts';
import type { Cid } from '../protocol/cid.ts';
import { decodeCommit, unsignedCommitBytes } from '../protocol/commit.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { PublicKey } from '../protocol/keys.ts';
import { checkSignature } from './verify-frame.ts';

export interface ResyncOptions {
  fetcher: SafeFetcher;
  /** Resync starts per second (token bucket, burst = max(1, perSecond)). */
  perSecond: number;
  /** Resyncs in flight at once. */
  concurrency: number;
  /** Resyncs waiting before new ones are refused. */
  maxQueued: number;
  timeoutMs: number;
  /** Largest repo CAR accepted. */
  maxRepoBytes: number;
  now?: () => number;
}

export interface ResyncedHead {
  rev: string;
  commitCid: Cid;
  dataCid: Cid;
  /** The signed commit block, for the #sync the validator emits. */
  commitBlock: Uint8Array;
  /** The whole fetched repo CAR (verified), for observers that rebuild derived state. */
  car: Uint8Array;
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
  private readonly now: () => number;
  private readonly queue: QueuedResync[] = [];
  private running = 0;
  private tokens: number;
  private lastRefill: number;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(opts: ResyncOptions) {
    this.opts = opts;
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
    const url = `${pdsEndpoint}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`;
    let body: Uint8Array;
    try {
      const res = await this.opts.fetcher.request(url, {
        timeoutMs: this.opts.timeoutMs,
        maxResponseBytes: this.opts.maxRepoBytes,
        headers: { accept: 'application/vnd.ipld.car' },
      });
      body = res.body;
    } catch (err) {
      throw new ResyncError(`getRepo failed: ${(err as Error).message}`, { cause: err });
    }
    try {
      const car = readCar(body, { maxBytes: this.opts.maxRepoBytes });
      const root = car.roots[0];
      const block = root ? car.blocks.get(root) : undefined;
      if (!root || !block) throw new ResyncError('repo CAR lacks its root commit');
      const commit = decodeCommit(block);
      if (commit.did !== did) throw new ResyncError(`repo commit is for ${commit.did}`);
      if (!car.blocks.has(commit.data)) throw new ResyncError('repo CAR lacks the MST root');
      const sig = checkSignature(key, unsignedCommitBytes(commit), commit.sig);
      if (sig !== 'ok')
        throw new ResyncError(`repo commit signature is ${sig === 'high-s' ? 'high-S' : 'invalid'}`);
      return { rev: commit.rev, commitCid: root, dataCid: commit.data, commitBlock: block, car: body };
    } catch (err) {
      if (err instanceof ResyncError) throw err;
      throw new ResyncError(`repo does not verify: ${(err as Error).message}`, { cause: err });
    }
  }
}
