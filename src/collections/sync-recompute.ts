// Recomputes an account's collections after an upstream `#sync`. A #sync
// resets a repo's head (a PDS after an import or a migration) and carries only
// the signed commit block, so the index cannot tell from the event which
// collections the new tree holds. Each #sync the relay appended (seen on the
// committed-event stream, relay-upkeep.ts) queues its DID
// here; the queue fetches the account's repo from its PDS (`fetchRepo`: the
// relay's getRepo through the SSRF-safe fetcher, size-limited) and replaces
// the account's collections (`indexer.resync`).
//
// The queue is small and bounded: one entry per DID (a repeated #sync of a
// queued DID folds into it), at most `maxQueued` entries, `perSecond` fetch
// starts and `concurrency` fetches at a time, failures retried with doubling
// backoff up to `maxAttempts`. Each queued DID is also persisted as a pending
// check on the pseudo-collection `#sync` (SYNC_PENDING; not an NSID, so it
// never names a real collection) in the index store, written through the
// indexer's per-DID order. A resync clears it with the account's other
// pending checks; `resume()` reloads the markers after a restart and the
// cleaner hands over markers it meets (including DIDs that found the queue
// full), so no #sync is lost to a restart or an overflow.
//
// Ordering. The fetch takes time, and the firehose keeps applying commits of
// the same account meanwhile; a repo fetched before such a commit must not
// undo it. Revisions decide (TIDs, ordered as strings): the entry remembers
// the newest #sync rev (`syncRev`) and the newest rev applied to the index for
// the account since it was queued (`appliedRev`: each commit, told by the
// upkeep before it submits the commit to the indexer). When the fetch returns
// a repo at rev `r`, in one synchronous step:
// - r < syncRev: the PDS served a repo older than the #sync (lag, or an old
//   PDS mid-migration) → fetched again later;
// - r < appliedRev: a commit newer than the fetched repo is already in the
//   index → fetched again (the next fetch includes it);
// - else every commit submitted to the indexer so far is at most r, i.e.
//   already in the fetched repo, and `indexer.resync` is submitted in that
//   same step, so it lands in the DID's chain after all of them and before
//   any later commit (whose rev is above r and whose ops then apply on top).
// A repo that cannot be read as served (over the repo limits, broken, badly
// signed: a permanent RepoFetchError) is given up at once, not fetched
// `maxAttempts` times; the index keeps what it had, counted as `unreadable`.
// A relay resync (chain break) of a queued account covers the #sync when its
// repo is at least as new (`resynced`), and a deleted account is dropped
// (`forget`).
import { isPermanentRepoFailure } from '../validate/repo-fetch.ts';
import { type CollectionIndexer, SYNC_PENDING } from './upkeep.ts';

export { SYNC_PENDING };

/** What a repo fetch reports: its commit rev and its collections. */
export interface RepoCollections {
  rev: string;
  collections: string[];
}

export interface SyncRecomputeOptions {
  indexer: Pick<CollectionIndexer, 'resync' | 'markSyncPending' | 'clearSyncPending' | 'store'>;
  /** the account's repo from its PDS; null if the PDS says it does not exist; throws to retry */
  fetchRepo: (did: string, signal: AbortSignal) => Promise<RepoCollections | null>;
  /** fetch starts per second (default 2) */
  perSecond?: number;
  /** fetches in flight (default 2) */
  concurrency?: number;
  /** DIDs held in memory (default 10,000); more stay persisted for later */
  maxQueued?: number;
  /** wait after a #sync before the first fetch (default 1 s; repeats coalesce meanwhile) */
  delayMs?: number;
  /** first retry delay, doubled per attempt (default 30 s), capped at maxRetryMs (default 15 min) */
  retryMs?: number;
  maxRetryMs?: number;
  /** fetches per #sync before giving up (default 6) */
  maxAttempts?: number;
  onError?: (err: unknown, did: string) => void;
  now?: () => number;
}

export interface SyncRecomputeStats {
  /** DIDs queued by a #sync */
  queued: number;
  /** #syncs folded into a DID already queued */
  coalesced: number;
  /** #syncs of DIDs left persisted only, the queue being full */
  overflowed: number;
  /** accounts whose collections were replaced from the fetched repo */
  recomputes: number;
  /** fetched repos older than the #sync or than a commit applied meanwhile (fetched again) */
  stale: number;
  /** fetches that failed (error, or no such repo) */
  failed: number;
  /** DIDs dropped after maxAttempts, or at once when their repo cannot be read (unreadable) */
  gaveUp: number;
  /** fetches whose repo was over the limits or broken as served (given up without retrying) */
  unreadable: number;
  /** DIDs a relay resync recomputed first */
  covered: number;
}

interface Entry {
  did: string;
  /** newest #sync rev ('' when reloaded from the store) */
  syncRev: string;
  /** newest rev applied to the index for this DID since it was queued */
  appliedRev: string;
  /** newest rev of a full recompute (relay resync) since it was queued */
  coveredRev: string;
  attempts: number;
  notBefore: number;
  inFlight: boolean;
  dropped: boolean;
}

const maxRev = (a: string, b: string): string => (a >= b ? a : b);

export class SyncRecomputeQueue {
  readonly stats: SyncRecomputeStats = {
    queued: 0,
    coalesced: 0,
    overflowed: 0,
    recomputes: 0,
    stale: 0,
    failed: 0,
    gaveUp: 0,
    unreadable: 0,
    covered: 0,
  };
  private readonly entries = new Map<string, Entry>();
  private readonly tasks = new Set<Promise<void>>();
  private readonly aborts = new Set<AbortController>();
  private idleWaiters: (() => void)[] = [];
  private running = 0;
  private lastStart = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Number.POSITIVE_INFINITY;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly opts: SyncRecomputeOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** DIDs queued (in flight included). */
  get size(): number {
    return this.entries.size;
  }

  /** An upstream #sync of `did` at `rev` was appended to the log. */
  syncAccepted(did: string, rev: string): void {
    if (this.stopped) return;
    const e = this.entries.get(did);
    if (e) {
      e.syncRev = maxRev(e.syncRev, rev);
      e.dropped = false;
      this.stats.coalesced++;
      return;
    }
    this.persist(did);
    if (this.entries.size >= this.maxQueued) {
      this.stats.overflowed++;
      return;
    }
    this.add(did, rev, this.opts.delayMs ?? 1000);
    this.stats.queued++;
    this.pump();
  }

  /** Queues a DID whose marker was found in the store; false if the queue is full. */
  adopt(did: string): boolean {
    if (this.stopped) return false;
    if (this.entries.has(did)) return true;
    if (this.entries.size >= this.maxQueued) return false;
    this.add(did, '', 0);
    this.pump();
    return true;
  }

  /** Reloads the markers persisted before a restart (those among the oldest maxQueued pending checks). */
  async resume(): Promise<number> {
    const checks = await this.opts.indexer.store.pendingChecks(this.maxQueued);
    let n = 0;
    for (const c of checks) if (c.collection === SYNC_PENDING && this.adopt(c.did)) n++;
    return n;
  }

  /** A commit at `rev` is being submitted to the indexer (call before submitting it). */
  commitSeen(did: string, rev: string): void {
    const e = this.entries.get(did);
    if (e) e.appliedRev = maxRev(e.appliedRev, rev);
  }

  /** A relay resync replaced the account's collections from its repo at `rev` (call after submitting it). */
  resynced(did: string, rev: string): void {
    const e = this.entries.get(did);
    if (!e) return;
    e.appliedRev = maxRev(e.appliedRev, rev);
    e.coveredRev = maxRev(e.coveredRev, rev);
    if (e.coveredRev >= e.syncRev) {
      if (!e.inFlight) this.finish(e, 'covered');
      return;
    }
    // The resync cleared the marker but this #sync is newer: persist it again.
    this.persist(did);
  }

  /** The account was deleted (its pairs and pending checks are gone). */
  forget(did: string): void {
    const e = this.entries.get(did);
    if (!e) return;
    if (e.inFlight) e.dropped = true;
    else this.entries.delete(did);
    this.checkIdle();
  }

  /** Resolves once nothing is queued or in flight (tests, tools). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops fetching: in-flight fetches are aborted and the timer (which holds
   * the process) is cleared; queued DIDs stay persisted for the next start.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    for (const ac of this.aborts) ac.abort(new Error('sync recompute queue stopped'));
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
    this.entries.clear();
    this.checkIdle();
  }

  private get maxQueued(): number {
    return this.opts.maxQueued ?? 10_000;
  }

  private add(did: string, syncRev: string, delayMs: number): void {
    this.entries.set(did, {
      did,
      syncRev,
      appliedRev: '',
      coveredRev: '',
      attempts: 0,
      notBefore: this.now() + delayMs,
      inFlight: false,
      dropped: false,
    });
  }

  private persist(did: string): void {
    this.opts.indexer.markSyncPending(did).catch((err: unknown) => this.opts.onError?.(err, did));
  }

  private pump(): void {
    if (this.stopped) return;
    const concurrency = this.opts.concurrency ?? 2;
    const interval = 1000 / (this.opts.perSecond ?? 2);
    while (this.running < concurrency) {
      const now = this.now();
      let next: Entry | undefined;
      let soonest = Number.POSITIVE_INFINITY;
      for (const e of this.entries.values()) {
        if (e.inFlight) continue;
        if (e.notBefore <= now) {
          next = e;
          break;
        }
        soonest = Math.min(soonest, e.notBefore);
      }
      if (!next) {
        if (soonest < Number.POSITIVE_INFINITY) this.schedule(soonest - now);
        return;
      }
      const wait = this.lastStart + interval - now;
      if (wait > 0) {
        this.schedule(wait);
        return;
      }
      this.lastStart = now;
      this.start(next);
    }
  }

  private schedule(delayMs: number): void {
    const at = this.now() + delayMs;
    if (this.timer && this.timerAt <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.pump();
      },
      Math.max(0, delayMs),
    );
  }

  private start(e: Entry): void {
    e.inFlight = true;
    e.attempts++;
    this.running++;
    const ac = new AbortController();
    this.aborts.add(ac);
    const task = new Promise<RepoCollections | null>((resolve) =>
      resolve(this.opts.fetchRepo(e.did, ac.signal)),
    )
      .then(
        (repo) => this.settle(e, repo, null),
        (err: unknown) => this.settle(e, null, err),
      )
      .catch((err: unknown) => this.opts.onError?.(err, e.did))
      .finally(() => {
        this.aborts.delete(ac);
        this.tasks.delete(task);
        e.inFlight = false;
        this.running--;
        this.pump();
        this.checkIdle();
      });
    this.tasks.add(task);
  }

  /** Decides on a finished fetch; the checks and the resync submission happen in one synchronous step. */
  private async settle(e: Entry, repo: RepoCollections | null, err: unknown): Promise<void> {
    if (this.stopped) return; // the marker stays for the next start
    if (e.dropped) {
      this.entries.delete(e.did);
      return;
    }
    if (e.coveredRev !== '' && e.coveredRev >= e.syncRev) {
      this.finish(e, 'covered');
      return;
    }
    if (!repo) {
      this.stats.failed++;
      this.opts.onError?.(err ?? new Error(`repo of ${e.did} not found on its PDS`), e.did);
      if (isPermanentRepoFailure(err)) {
        this.stats.unreadable++;
        return this.giveUp(e);
      }
      return this.retryOrGiveUp(e);
    }
    if (repo.rev < e.syncRev || repo.rev < e.appliedRev) {
      this.stats.stale++;
      return this.retryOrGiveUp(e);
    }
    const done = this.opts.indexer.resync(e.did, repo.collections);
    this.finish(e, 'recomputes');
    await done;
  }

  /** Back of the queue after the backoff for its attempt count, or dropped (with its marker) after maxAttempts. */
  private async retryOrGiveUp(e: Entry): Promise<void> {
    if (e.attempts >= (this.opts.maxAttempts ?? 6)) return this.giveUp(e);
    const base = this.opts.retryMs ?? 30_000;
    const delay = Math.min(base * 2 ** (e.attempts - 1), this.opts.maxRetryMs ?? 900_000);
    e.notBefore = this.now() + delay;
    this.entries.delete(e.did);
    this.entries.set(e.did, e);
  }

  /** Dropped with its marker; the index keeps what it had. */
  private async giveUp(e: Entry): Promise<void> {
    this.finish(e, 'gaveUp');
    await this.opts.indexer.clearSyncPending(e.did);
  }

  private finish(e: Entry, outcome: 'recomputes' | 'covered' | 'gaveUp'): void {
    this.entries.delete(e.did);
    this.stats[outcome]++;
    this.checkIdle();
  }

  private isIdle(): boolean {
    return this.entries.size === 0 && this.running === 0;
  }

  private checkIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
