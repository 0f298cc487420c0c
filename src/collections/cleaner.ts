// Periodic repair of the collection index, for what inline upkeep cannot see
// or could not decide:
// - pending checks (deletes whose commit carried no usable proof): the
//   account's current collections are fetched from its PDS and the pair is
//   dropped if the collection is gone (or the whole account if the repo is);
//   a repo that cannot be read as served (over the repo size or block limit,
//   broken, badly signed) settles its checks without a decision — the pairs
//   stay, counted as `pendingUnreadable` — instead of being fetched again on
//   every run; a transient failure (network, PDS down) keeps them for later;
// - a sweep over every DID in the index, a batch per run, against the
//   relay's account state: deleted accounts lose their pairs (an `#account`
//   event the relay missed, e.g. while down), taken-down / suspended /
//   deactivated ones are hidden, active ones shown (repairs drift either way).
//   Accounts the relay has never seen are kept by default — a backfill from
//   another relay legitimately brings in DIDs this relay has not crawled.
// The sweep cursor is saved in the index store (as the backfill job
// 'cleaner'), so a restart continues the sweep instead of restarting it.
//
// Pending checks on the pseudo-collection SYNC_PENDING are not deletes but
// accounts awaiting a recompute after an upstream #sync: the cleaner hands
// them to the #sync recompute queue (sync-recompute.ts; it left them in the
// store when it was full or the relay restarted) and never settles them
// itself. stop() also stops that queue.
//
// Known window: a pending check's fetched repo may be older than a create
// the firehose applied meanwhile; the resulting wrong removal is repaired by
// the next create in that collection or by a resync.
import { isPermanentRepoFailure } from '../validate/repo-fetch.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { SYNC_PENDING } from './upkeep.ts';

export interface CleanerOptions {
  store: CollectionIndexStore;
  /** the relay's view of an account: an #account status, or null if the relay has no such account */
  accountStatus: (did: string) => Promise<string | null>;
  /**
   * the account's current collections from its PDS; null if the repo does not
   * exist; throws to retry later (a permanent RepoFetchError: never retried)
   */
  fetchCollections?: (did: string) => Promise<string[] | null>;
  /** drop pairs of DIDs the relay has no account for (default false) */
  removeUnknownAccounts?: boolean;
  /** time between runs (default 60 s) */
  intervalMs?: number;
  /** DIDs looked at per sweep batch (default 1000) and batches per run (default 10) */
  sweepBatch?: number;
  sweepBatchesPerRun?: number;
  /** pending checks settled per run (default 200) */
  pendingPerRun?: number;
  /** the #sync recompute queue, handed the SYNC_PENDING markers it does not hold */
  syncQueue?: { adopt(did: string): boolean; stop(): Promise<void> };
  onError?: (err: unknown) => void;
}

export interface CleanerStats {
  runs: number;
  didsSwept: number;
  /** full passes over the index */
  sweepsCompleted: number;
  accountsRemoved: number;
  pairsRemoved: number;
  hidden: number;
  unhidden: number;
  pendingSettled: number;
  pendingFailed: number;
  /** checks settled undecided: the repo could not be read within the limits (pairs kept) */
  pendingUnreadable: number;
}

const JOB = 'cleaner';
const SWEEP_ITEM = 'sweep';
const HIDE = new Set(['takendown', 'suspended', 'deactivated']);

export class CollectionCleaner {
  readonly stats: CleanerStats = {
    runs: 0,
    didsSwept: 0,
    sweepsCompleted: 0,
    accountsRemoved: 0,
    pairsRemoved: 0,
    hidden: 0,
    unhidden: 0,
    pendingSettled: 0,
    pendingFailed: 0,
    pendingUnreadable: 0,
  };
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(private readonly opts: CleanerOptions) {}

  /** Runs every intervalMs (the first run after one interval). */
  start(): void {
    if (this.timer || this.stopped) return;
    const tick = () => {
      this.running = this.runOnce()
        .then(() => {})
        .catch((err) => this.opts.onError?.(err))
        .finally(() => {
          this.running = null;
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.intervalMs ?? 60_000).unref();
        });
    };
    this.timer = setTimeout(tick, this.opts.intervalMs ?? 60_000).unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
    await this.opts.syncQueue?.stop();
  }

  /** One run: settle pending checks, then sweep the next batches of DIDs. */
  async runOnce(): Promise<CleanerStats> {
    this.stats.runs++;
    await this.settlePending();
    await this.sweep();
    return { ...this.stats };
  }

  private async settlePending(): Promise<void> {
    const { store, fetchCollections } = this.opts;
    if (!fetchCollections) return;
    const checks = await store.pendingChecks(this.opts.pendingPerRun ?? 200);
    const byDid = new Map<string, string[]>();
    for (const c of checks) {
      if (c.collection === SYNC_PENDING) this.opts.syncQueue?.adopt(c.did);
      else byDid.set(c.did, [...(byDid.get(c.did) ?? []), c.collection]);
    }
    for (const [did, collections] of byDid) {
      let current: string[] | null;
      try {
        current = await fetchCollections(did);
      } catch (err) {
        this.opts.onError?.(err);
        if (!isPermanentRepoFailure(err)) {
          this.stats.pendingFailed += collections.length;
          continue;
        }
        // Over a repo limit or broken as served: the same fetch would fail on every run.
        for (const collection of collections) await store.removePendingCheck({ did, collection });
        this.stats.pendingUnreadable += collections.length;
        continue;
      }
      if (current === null) {
        this.stats.pairsRemoved += await store.removeAccount(did);
        this.stats.accountsRemoved++;
        this.stats.pendingSettled += collections.length;
        continue;
      }
      const have = new Set(current);
      const gone = collections.filter((c) => !have.has(c)).map((collection) => ({ did, collection }));
      this.stats.pairsRemoved += await store.removePairs(gone);
      for (const collection of collections) await store.removePendingCheck({ did, collection });
      this.stats.pendingSettled += collections.length;
    }
  }

  private async sweep(): Promise<void> {
    const { store } = this.opts;
    const saved = (await store.backfillItems(JOB)).find((i) => i.item === SWEEP_ITEM);
    let cursor = saved?.cursor ?? undefined;
    const batches = this.opts.sweepBatchesPerRun ?? 10;
    for (let b = 0; b < batches; b++) {
      const page = await store.listDids(this.opts.sweepBatch ?? 1000, cursor);
      for (const did of page.items) await this.checkAccount(did);
      this.stats.didsSwept += page.items.length;
      cursor = page.cursor;
      if (!cursor) {
        this.stats.sweepsCompleted++;
        break;
      }
    }
    await store.saveBackfillItem(JOB, { item: SWEEP_ITEM, cursor: cursor ?? null, done: false, pairs: 0 });
  }

  private async checkAccount(did: string): Promise<void> {
    const { store } = this.opts;
    const status = await this.opts.accountStatus(did);
    if (status === 'deleted' || (status === null && this.opts.removeUnknownAccounts)) {
      this.stats.pairsRemoved += await store.removeAccount(did);
      this.stats.accountsRemoved++;
      return;
    }
    if (status === null) return;
    const hide = HIDE.has(status);
    if (hide !== (await store.isHidden(did))) {
      await store.setHidden(did, hide);
      if (hide) this.stats.hidden++;
      else this.stats.unhidden++;
    }
  }
}
