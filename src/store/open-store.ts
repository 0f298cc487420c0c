// Chooses the metadata backend from configuration: no DATABASE_URL means the
// embedded SQLite file <dataDir>/relay.sqlite (created with the directory on
// first start), a postgres:// URL means PostgreSQL. Migrations run inside the
// backend's open, so a store returned from here is at the current schema.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { MetadataStore } from './metadata-store.ts';
import { PostgresBackend } from './postgres-store.ts';
import { SqliteBackend } from './sqlite-store.ts';
import { RelayMetadataStore, type RelayMetadataStoreOptions } from './store.ts';

export const SQLITE_FILE_NAME = 'relay.sqlite';

export interface OpenMetadataStoreOptions extends RelayMetadataStoreOptions {
  databaseUrl?: string;
  dataDir: string;
  /** PostgreSQL only: schema for search_path (tests use a throwaway one). */
  pgSchema?: string;
  pgPoolSize?: number;
  log?: Logger;
}

export async function openMetadataStore(opts: OpenMetadataStoreOptions): Promise<MetadataStore> {
  const log = opts.log ?? silentLogger;
  if (opts.databaseUrl) {
    if (!/^postgres(ql)?:\/\//.test(opts.databaseUrl)) {
      throw new Error('DATABASE_URL must be unset (embedded SQLite) or a postgres:// URL');
    }
    const backend = await PostgresBackend.open({
      connectionString: opts.databaseUrl,
      schema: opts.pgSchema,
      poolSize: opts.pgPoolSize,
      log,
    });
    log.info({ backend: 'postgres', schema: opts.pgSchema }, 'metadata store open');
    return new RelayMetadataStore(backend, opts);
  }
  mkdirSync(opts.dataDir, { recursive: true });
  const path = join(opts.dataDir, SQLITE_FILE_NAME);
  const backend = new SqliteBackend({ path });
  log.info({ backend: 'sqlite', path }, 'metadata store open');
  return new RelayMetadataStore(backend, opts);
}
