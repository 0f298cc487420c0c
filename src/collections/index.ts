// The collection index (com.atproto.sync.listReposByCollection): what the
// relay wires in. See docs/collections.md.
export { collectionsAdminRoutes } from './admin.ts';
export {
  type BackfillSource,
  type BackfillStatus,
  CollectionBackfiller,
  type HostsSource,
  parseNsidList,
  type RelaySource,
} from './backfill.ts';
export { type CleanerOptions, CollectionCleaner } from './cleaner.ts';
export type {
  BackfillItem,
  CollectionCount,
  CollectionIndexStore,
  CollectionPair,
  Page,
} from './index-store.ts';
export { KnownPairsIndex } from './known-pairs.ts';
export { registerCollectionMetrics } from './metrics.ts';
export { openCollectionIndex } from './open-index.ts';
export { PostgresCollectionIndex } from './postgres-index.ts';
export { formatProgress } from './progress.ts';
export {
  CollectionIndexUpkeep,
  relayAccountStatus,
  repoCollectionsFetcher,
  repoStateFetcher,
} from './relay-upkeep.ts';
export { COLLECTIONS_SQLITE_FILE, SqliteCollectionIndex } from './sqlite-index.ts';
export {
  type RepoCollections,
  type SyncRecomputeOptions,
  SyncRecomputeQueue,
} from './sync-recompute.ts';
export {
  type AccountState,
  applyCommit,
  CollectionIndexer,
  type IndexedCommit,
  SYNC_PENDING,
} from './upkeep.ts';
export { LIST_REPOS_BY_COLLECTION_PATH, listReposByCollectionRoutes } from './xrpc.ts';
