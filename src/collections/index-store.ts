// The collection index's storage contract: a set of (DID, collection) pairs
// readable in both directions — collection → DIDs in DID order (what
// com.atproto.sync.listReposByCollection pages through, with the last DID as
// the cursor, so pagination stays stable while writes continue) and DID →
// collections (what upkeep, resync and the cleaner need). Collections are
// interned to small integer ids with a per-collection pair count kept in the
// same transaction as the pair writes, so the list of known collections with
// counts is a scan of a few hundred rows, not of 100M pairs.
//
// Beside the pairs the store keeps its own small tables: hidden accounts
// (taken down / suspended / deactivated: their pairs stay but are not
// listed), pending checks (deletes whose effect the commit's proof could not
// decide, resolved later against the PDS), and backfill progress (so a
// backfill resumes where it stopped). Two implementations pass one test
// suite: SQLite (embedded default) and PostgreSQL.

export interface CollectionPair {
  did: string;
  collection: string;
}

export interface CollectionCount {
  collection: string;
  /** pairs in the index, hidden accounts included */
  count: number;
}

export interface Page<T> {
  items: T[];
  /** present when there may be more: pass it back to get the next page */
  cursor?: string;
}

/** One unit of backfill work (a collection for the relay source, a host for the hosts source). */
export interface BackfillItem {
  item: string;
  /** the source's pagination cursor after the last imported page, null at the start */
  cursor: string | null;
  done: boolean;
  /** pairs imported for this item so far (sent to the store; some may have existed) */
  pairs: number;
}

export interface CollectionIndexStore {
  readonly kind: 'sqlite' | 'postgres';

  /**
   * Whether the pair is known to be in the index without asking the database
   * (a cache in front of it, known-pairs.ts); false means "not known", not
   * "absent". Optional: plain stores do not know.
   */
  knows?(did: string, collection: string): boolean;
  /** Adds pairs (idempotent); returns how many were new. */
  addPairs(pairs: readonly CollectionPair[]): Promise<number>;
  /** Removes pairs; returns how many existed. */
  removePairs(pairs: readonly CollectionPair[]): Promise<number>;
  /** Makes the account's collections exactly `collections` (resync); returns pairs added and removed. */
  setCollections(did: string, collections: readonly string[]): Promise<{ added: number; removed: number }>;
  /** Drops every pair, the hidden flag and pending checks of an account; returns pairs removed. */
  removeAccount(did: string): Promise<number>;
  /** Hidden accounts keep their pairs but are left out of listRepos. */
  setHidden(did: string, hidden: boolean): Promise<void>;
  isHidden(did: string): Promise<boolean>;

  collectionsOf(did: string): Promise<string[]>;
  /** DIDs with at least one pair in `collection`, DID order, after `cursor` (a DID), hidden ones left out. */
  listRepos(collection: string, limit: number, cursor?: string): Promise<Page<string>>;
  /** Known collections with pair counts, name order, after `cursor` (a collection). Zero counts left out. */
  listCollections(limit: number, cursor?: string): Promise<Page<CollectionCount>>;
  /** Distinct DIDs in the index, DID order, after `cursor` (for the cleaner's sweep). */
  listDids(limit: number, cursor?: string): Promise<Page<string>>;
  countPairs(): Promise<number>;

  /** Queues a (DID, collection) whose presence must be checked against the PDS. */
  addPendingChecks(pairs: readonly CollectionPair[]): Promise<void>;
  pendingChecks(limit: number): Promise<CollectionPair[]>;
  removePendingCheck(pair: CollectionPair): Promise<void>;
  /** Drops every pending check of an account (its collections were just recomputed). */
  removePendingChecksOf(did: string): Promise<void>;
  countPendingChecks(): Promise<number>;

  backfillItems(job: string): Promise<BackfillItem[]>;
  saveBackfillItem(job: string, item: BackfillItem): Promise<void>;
  clearBackfill(job: string): Promise<void>;

  close(): Promise<void>;
}

/** Collection names a pair may carry: MST keys' collection part is limited to this charset. */
export function assertPairs(pairs: readonly CollectionPair[]): void {
  for (const p of pairs) {
    if (typeof p.did !== 'string' || !p.did.startsWith('did:') || p.did.length > 2048)
      throw new Error(`invalid DID in collection pair: ${String(p.did).slice(0, 80)}`);
    if (typeof p.collection !== 'string' || p.collection.length === 0 || p.collection.length > 512)
      throw new Error(`invalid collection in collection pair: ${String(p.collection).slice(0, 80)}`);
  }
}
