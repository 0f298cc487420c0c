// Test helper: fresh collection index stores on both backends. SQLite gets a
// temp directory, PostgreSQL a throwaway schema in the `test` database
// (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test) that is
// dropped afterwards. An unreachable PostgreSQL fails the tests loudly.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import type { CollectionIndexStore } from '../../src/collections/index-store.ts';
import { PostgresCollectionIndex } from '../../src/collections/postgres-index.ts';
import { COLLECTIONS_SQLITE_FILE, SqliteCollectionIndex } from '../../src/collections/sqlite-index.ts';
import { removeTempDir, tempDir } from './temp.ts';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface TestStore {
  store: CollectionIndexStore;
  /** closes and reopens the same storage (for resume tests) */
  reopen(): Promise<CollectionIndexStore>;
  destroy(): Promise<void>;
}

export type StoreFactory = () => Promise<TestStore>;

async function pgAdmin(sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
  try {
    await c.connect();
  } catch (err) {
    throw new Error(`PostgreSQL at ${PG_URL} is unreachable (set TEST_DATABASE_URL): ${String(err)}`);
  }
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export const backends: ReadonlyArray<[string, StoreFactory]> = [
  [
    'sqlite',
    async () => {
      const dir = tempDir('atrelay-coll-');
      const path = join(dir, COLLECTIONS_SQLITE_FILE);
      let store: CollectionIndexStore = new SqliteCollectionIndex({ path });
      return {
        get store() {
          return store;
        },
        async reopen() {
          await store.close();
          store = new SqliteCollectionIndex({ path });
          return store;
        },
        async destroy() {
          await store.close();
          removeTempDir(dir);
        },
      };
    },
  ],
  [
    'postgres',
    async () => {
      const schema = `atrelay_coll_${randomBytes(6).toString('hex')}`;
      await pgAdmin(`CREATE SCHEMA ${schema}`);
      const open = () => PostgresCollectionIndex.open({ connectionString: PG_URL, schema, poolSize: 2 });
      let store: CollectionIndexStore = await open();
      return {
        get store() {
          return store;
        },
        async reopen() {
          await store.close();
          store = await open();
          return store;
        },
        async destroy() {
          await store.close();
          await pgAdmin(`DROP SCHEMA ${schema} CASCADE`);
        },
      };
    },
  ],
];
