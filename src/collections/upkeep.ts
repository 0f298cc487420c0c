// Keeps the collection index exact from the firehose. For each verified
// `#commit`: a create adds (DID, collection); a delete removes the pair when
// it took the account's last record of that collection, decided from the
// commit's own blocks (protocol/commit-collections.ts, worked out by the
// validation workers for relayed commits) — no repo fetch. A delete the blocks
// cannot decide (no proof) becomes a pending check for the cleaner to settle
// against the PDS, and is counted. Account events remove (deleted) or hide
// (taken down, suspended, deactivated) the account's pairs; a resync
// replaces an account's collections with those of its fetched repo (after a
// chain break, or an upstream #sync via sync-recompute.ts) — read in a worker
// by the relay's repo fetch (validate/repo-fetch.ts), so only the collection
// names arrive here.
//
// Calls for one DID are applied in arrival order even on an async backend:
// each DID has a promise chain, so a create and a following delete of the
// same account can never reach the store swapped.
import type { Cid } from '../protocol/cid.ts';
import { type CommitCollections, commitCollections } from '../protocol/commit-collections.ts';
import type { BlockSource } from '../protocol/mst.ts';
import type { CollectionIndexStore, CollectionPair } from './index-store.ts';

/**
 * The pending-check pseudo-collection of an account awaiting a recompute
 * after an upstream #sync (sync-recompute.ts); not an NSID, so it never names
 * a real collection.
 */
export const SYNC_PENDING = '#sync';

export interface IndexedOp {
  action: 'create' | 'update' | 'delete';
  /** `collection/rkey` */
  path: string;
}

/** What upkeep needs from a verified `#commit`. */
export interface IndexedCommit {
  did: string;
  /** the MST root of the new commit (the signed commit's `data`) */
  dataRoot: Cid;
  /** the event's blocks (the CAR reader's BlockMap) */
  blocks: BlockSource;
  ops: readonly IndexedOp[];
}

export interface ApplyCommitResult {
  added: string[];
  removed: string[];
  /** collections whose remaining presence the blocks could not decide (queued as pending checks) */
  unknown: string[];
}

export type AccountState =
  | 'active'
  | 'deactivated'
  | 'takendown'
  | 'suspended'
  | 'deleted'
  | 'desynchronized'
  | 'throttled';

export interface UpkeepStats {
  commits: number;
  pairsAdded: number;
  pairsRemoved: number;
  /** deletes of a collection's (possibly) last record decided from the proof */
  deletesDecided: number;
  /** deletes that could not be decided from the blocks and went to the pending queue */
  deletesUndecided: number;
  accountsRemoved: number;
  resyncs: number;
}

/** A commit's effect on the index (protocol/commit-collections.ts: no store access). */
export function commitEffect(commit: IndexedCommit): CommitCollections {
  return commitCollections(commit.ops, commit.blocks, commit.dataRoot);
}

/** Stateless upkeep for one commit (the indexer below adds ordering and stats). */
export async function applyCommit(
  store: CollectionIndexStore,
  commit: IndexedCommit,
): Promise<ApplyCommitResult> {
  const eff = commitEffect(commit);
  const pairs = (cs: string[]): CollectionPair[] => cs.map((collection) => ({ did: commit.did, collection }));
  if (eff.created.length > 0) await store.addPairs(pairs(eff.created));
  if (eff.gone.length > 0) await store.removePairs(pairs(eff.gone));
  if (eff.unknown.length > 0) await store.addPendingChecks(pairs(eff.unknown));
  return { added: eff.created, removed: eff.gone, unknown: eff.unknown };
}

export class CollectionIndexer {
  readonly stats: UpkeepStats = {
    commits: 0,
    pairsAdded: 0,
    pairsRemoved: 0,
    deletesDecided: 0,
    deletesUndecided: 0,
    accountsRemoved: 0,
    resyncs: 0,
  };
  private readonly chains = new Map<string, Promise<unknown>>();

  constructor(readonly store: CollectionIndexStore) {}

  /** Runs `fn` after every earlier call for the same DID has finished. */
  private inOrder<T>(did: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.chains.get(did) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => {});
    this.chains.set(did, tail);
    void tail.then(() => {
      if (this.chains.get(did) === tail) this.chains.delete(did);
    });
    return run;
  }

  /** Upkeep for one verified `#commit`. */
  applyCommit(commit: IndexedCommit): Promise<ApplyCommitResult> {
    return this.inOrder(commit.did, () => this.applyEffectNow(commit.did, commitEffect(commit)));
  }

  /**
   * Applies a commit's effect already worked out (by a validation worker, from
   * the commit's verified blocks), in the DID's order.
   */
  applyEffect(did: string, effect: CommitCollections): Promise<ApplyCommitResult> {
    return this.inOrder(did, () => this.applyEffectNow(did, effect));
  }

  /**
   * The common case done at once, with no store call and no promise: nothing
   * of the DID is queued, and the commit only creates records in collections
   * the store says it already holds for the account (known-pairs.ts).
   * Returns false when the effect must go through applyEffect.
   */
  applyKnownEffect(did: string, effect: CommitCollections): boolean {
    if (effect.gone.length > 0 || effect.unknown.length > 0 || this.chains.has(did)) return false;
    const known = this.store.knows;
    if (
      effect.created.length > 0 &&
      (known === undefined || !effect.created.every((c) => known.call(this.store, did, c)))
    )
      return false;
    this.stats.commits++;
    this.stats.deletesDecided += effect.decided;
    return true;
  }

  private async applyEffectNow(did: string, eff: CommitCollections): Promise<ApplyCommitResult> {
    const pairs = (cs: string[]): CollectionPair[] => cs.map((collection) => ({ did, collection }));
    if (eff.created.length > 0) this.stats.pairsAdded += await this.store.addPairs(pairs(eff.created));
    if (eff.gone.length > 0) this.stats.pairsRemoved += await this.store.removePairs(pairs(eff.gone));
    if (eff.unknown.length > 0) await this.store.addPendingChecks(pairs(eff.unknown));
    this.stats.commits++;
    this.stats.deletesDecided += eff.decided;
    this.stats.deletesUndecided += eff.unknown.length;
    return { added: eff.created, removed: eff.gone, unknown: eff.unknown };
  }

  /**
   * An `#account` event (or an admin takedown): deleted removes the
   * account's pairs; takendown, suspended and deactivated hide them; active
   * shows them again. Other states leave the index alone.
   */
  applyAccountStatus(did: string, status: AccountState | string): Promise<void> {
    return this.inOrder(did, async () => {
      switch (status) {
        case 'deleted':
          await this.store.removeAccount(did);
          this.stats.accountsRemoved++;
          return;
        case 'takendown':
        case 'suspended':
        case 'deactivated':
          await this.store.setHidden(did, true);
          return;
        case 'active':
          await this.store.setHidden(did, false);
          return;
        default:
          return;
      }
    });
  }

  /** After a resync (chain break, `#sync`): the account's collections are exactly these. */
  resync(did: string, collections: readonly string[]): Promise<{ added: number; removed: number }> {
    return this.inOrder(did, async () => {
      const r = await this.store.setCollections(did, collections);
      // Whatever was pending for this account is settled by the full view.
      await this.store.removePendingChecksOf(did);
      this.stats.resyncs++;
      this.stats.pairsAdded += r.added;
      this.stats.pairsRemoved += r.removed;
      return r;
    });
  }

  /** Persists that the account awaits a #sync recompute (SYNC_PENDING), in order with its other updates. */
  markSyncPending(did: string): Promise<void> {
    return this.inOrder(did, () => this.store.addPendingChecks([{ did, collection: SYNC_PENDING }]));
  }

  /** Drops the account's #sync recompute marker (the recompute was given up). */
  clearSyncPending(did: string): Promise<void> {
    return this.inOrder(did, () => this.store.removePendingCheck({ did, collection: SYNC_PENDING }));
  }
}
