// Chooses the collection index backend the same way the metadata store does:
// no database URL means the embedded SQLite file <dataDir>/collections.sqlite,
// a postgres:// URL means PostgreSQL (tables prefixed coll_, next to the
// metadata tables in the same database and schema).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { PostgresCollectionIndex } from './postgres-index.ts';
import { COLLECTIONS_SQLITE_FILE, SqliteCollectionIndex } from './sqlite-index.ts';

export interface OpenCollectionIndexOptions {
  databaseUrl?: string;
  dataDir: string;
  pgSchema?: string;
  /** Where the PostgreSQL pool logs (idle connection failures). */
  logger?: Logger;
  pgPoolSize?: number;
  /** SQLite page cache in KiB (default 64 MiB); raise it for a large backfill */
  sqliteCacheKiB?: number;
}

export async function openCollectionIndex(opts: OpenCollectionIndexOptions): Promise<CollectionIndexStore> {
  if (opts.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(opts.databaseUrl))
      throw new Error('DATABASE_URL must be unset (embedded SQLite) or a postgres:// URL');
    return PostgresCollectionIndex.open({
      connectionString: opts.databaseUrl,
      schema: opts.pgSchema,
      poolSize: opts.pgPoolSize,
      logger: opts.logger,
    });
  }
  mkdirSync(opts.dataDir, { recursive: true });
  return new SqliteCollectionIndex({
    path: join(opts.dataDir, COLLECTIONS_SQLITE_FILE),
    cacheKiB: opts.sqliteCacheKiB,
  });
}
