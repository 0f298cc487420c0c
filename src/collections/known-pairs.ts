// A cache of (DID, collection) pairs known to be in the collection index, in
// front of the index store. Most commits create a record in a collection the
// account already has a record in; without this every such commit costs an
// `INSERT … ON CONFLICT DO NOTHING` on the main thread (SQLite is
// synchronous), which the end-to-end profile showed as one of its larger
// costs. With it, addPairs skips the pairs the cache knows and writes only
// the rest.
//
// Coherence: the cache only ever claims "present". It learns a pair after the
// store confirmed the add (or listed it), and forgets before any write that
// could remove one: removePairs forgets those pairs, setCollections and
// removeAccount forget the whole account, before calling the store. A pair
// it forgot is simply written again. Hiding an account leaves its pairs in
// place, so setHidden does not touch the cache. Every writer of the index
// (upkeep, cleaner, backfill) goes through the same wrapped store, so no
// removal bypasses it.
//
// Bound: at most `maxAccounts` accounts (LRU by account, src/lru.ts; default
// 200,000, about 100 bytes per account plus its collection names).
import { Lru } from '../lru.ts';
import type { CollectionIndexStore, CollectionPair } from './index-store.ts';

export class KnownPairsIndex implements CollectionIndexStore {
  readonly kind: CollectionIndexStore['kind'];
  /** Pairs addPairs did not have to write (already known). */
  skipped = 0;
  private readonly known: Lru<string, Set<string>>;

  constructor(
    private readonly store: CollectionIndexStore,
    opts: { maxAccounts?: number } = {},
  ) {
    this.kind = store.kind;
    this.known = new Lru(opts.maxAccounts ?? 200_000);
  }

  private has(p: CollectionPair): boolean {
    return this.known.peek(p.did)?.has(p.collection) ?? false;
  }

  knows(did: string, collection: string): boolean {
    return this.known.peek(did)?.has(collection) ?? false;
  }

  private learn(p: CollectionPair): void {
    const set = this.known.get(p.did); // a use: the account becomes the most recent
    if (set) set.add(p.collection);
    else this.known.set(p.did, new Set([p.collection]));
  }

  async addPairs(pairs: readonly CollectionPair[]): Promise<number> {
    const todo = pairs.filter((p) => !this.has(p));
    this.skipped += pairs.length - todo.length;
    if (todo.length === 0) return 0;
    const added = await this.store.addPairs(todo);
    for (const p of todo) this.learn(p);
    return added;
  }

  removePairs(pairs: readonly CollectionPair[]): Promise<number> {
    for (const p of pairs) this.known.peek(p.did)?.delete(p.collection);
    return this.store.removePairs(pairs);
  }

  setCollections(did: string, collections: readonly string[]): Promise<{ added: number; removed: number }> {
    this.known.delete(did);
    return this.store.setCollections(did, collections);
  }

  removeAccount(did: string): Promise<number> {
    this.known.delete(did);
    return this.store.removeAccount(did);
  }

  // --- everything else passes through ---
  setHidden(did: string, hidden: boolean): Promise<void> {
    return this.store.setHidden(did, hidden);
  }
  isHidden(did: string): Promise<boolean> {
    return this.store.isHidden(did);
  }
  collectionsOf(did: string): Promise<string[]> {
    return this.store.collectionsOf(did);
  }
  listRepos(
    ...a: Parameters<CollectionIndexStore['listRepos']>
  ): ReturnType<CollectionIndexStore['listRepos']> {
    return this.store.listRepos(...a);
  }
  listCollections(
    ...a: Parameters<CollectionIndexStore['listCollections']>
  ): ReturnType<CollectionIndexStore['listCollections']> {
    return this.store.listCollections(...a);
  }
  listDids(...a: Parameters<CollectionIndexStore['listDids']>): ReturnType<CollectionIndexStore['listDids']> {
    return this.store.listDids(...a);
  }
  countPairs(): Promise<number> {
    return this.store.countPairs();
  }
  addPendingChecks(pairs: readonly CollectionPair[]): Promise<void> {
    return this.store.addPendingChecks(pairs);
  }
  pendingChecks(limit: number): Promise<CollectionPair[]> {
    return this.store.pendingChecks(limit);
  }
  removePendingCheck(pair: CollectionPair): Promise<void> {
    return this.store.removePendingCheck(pair);
  }
  removePendingChecksOf(did: string): Promise<void> {
    return this.store.removePendingChecksOf(did);
  }
  countPendingChecks(): Promise<number> {
    return this.store.countPendingChecks();
  }
  backfillItems(job: string): ReturnType<CollectionIndexStore['backfillItems']> {
    return this.store.backfillItems(job);
  }
  saveBackfillItem(...a: Parameters<CollectionIndexStore['saveBackfillItem']>): Promise<void> {
    return this.store.saveBackfillItem(...a);
  }
  clearBackfill(job: string): Promise<void> {
    return this.store.clearBackfill(job);
  }
  close(): Promise<void> {
    this.known.clear();
    return this.store.close();
  }
}
