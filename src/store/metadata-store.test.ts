// Runs the shared metadata store suite against both backends. SQLite uses a
// fresh temp directory per test; PostgreSQL uses a fresh schema per test in
// the `test` database (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
// and drops it afterwards. An unreachable PostgreSQL fails these tests; it is
// never skipped.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describeMetadataStore, type StoreLocation } from '../../test/support/metadata-store-contract.ts';
import { removeTempDir, tempDir, tempMetadataStore } from '../../test/support/temp.ts';
import { migratePostgres, migrateSqlite } from './migrations.ts';
import { SQLITE_FILE_NAME } from './open-store.ts';

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

describeMetadataStore('sqlite', {
  async fresh(): Promise<StoreLocation> {
    const dataDir = tempDir('atrelay-store-');
    const path = join(dataDir, SQLITE_FILE_NAME);
    const withDb = <T>(fn: (db: Database.Database) => T): T => {
      const db = new Database(path);
      try {
        db.pragma('busy_timeout = 5000');
        return fn(db);
      } finally {
        db.close();
      }
    };
    return {
      options: { dataDir },
      migrate: async () => withDb((db) => migrateSqlite(db)),
      countMigrationRows: async () =>
        withDb((db) => (db.prepare('SELECT count(*) AS n FROM schema_migrations').get() as { n: number }).n),
      destroy: async () => removeTempDir(dataDir),
    };
  },
});

describe('metadata store: sqlite specifics', () => {
  it('keeps the WAL bounded under a stream of head updates (auto-checkpoints run)', async () => {
    const temp = await tempMetadataStore();
    const { store } = temp;
    try {
      const { value: h } = await store.createHost({ hostname: 'wal.example.com' });
      const { value: a } = await store.createAccount({ did: 'did:plc:wal', hostId: h.id });
      for (let i = 1; i <= 3000; i++) {
        const rev = `3l${String(i).padStart(11, '0')}`;
        assert.equal(
          await store.updateAccountHead(a.uid, { rev, commitCid: 'bafyc', dataCid: 'bafyd' }),
          true,
        );
      }
      // 3,000 commits of at least one 4 KiB page each would be > 12 MB without checkpoints.
      const walBytes = statSync(join(temp.dir, `${SQLITE_FILE_NAME}-wal`)).size;
      assert.ok(walBytes < 6_000_000, `WAL is ${walBytes} bytes`);
    } finally {
      await temp.destroy();
    }
  });
});

async function withPgClient<T>(schema: string | undefined, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: PG_URL,
    connectionTimeoutMillis: 5000,
    options: schema ? `-c search_path=${schema}` : undefined,
  });
  try {
    await client.connect();
  } catch (err) {
    throw new Error(`PostgreSQL at ${PG_URL} is unreachable (set TEST_DATABASE_URL): ${String(err)}`);
  }
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describeMetadataStore('postgres', {
  async fresh(): Promise<StoreLocation> {
    const schema = `atrelay_test_${randomBytes(6).toString('hex')}`;
    await withPgClient(undefined, (c) => c.query(`CREATE SCHEMA ${schema}`));
    // pg.Client has the PoolClient query surface migratePostgres needs.
    const migrateOnce = () => withPgClient(schema, (c) => migratePostgres(c as pg.PoolClient));
    return {
      options: { dataDir: tmpdir(), databaseUrl: PG_URL, pgSchema: schema },
      migrate: migrateOnce,
      migrateConcurrently: (n) => Promise.all(Array.from({ length: n }, migrateOnce)),
      countMigrationRows: () =>
        withPgClient(schema, async (c) => {
          const res = await c.query<{ n: number }>('SELECT count(*)::int AS n FROM schema_migrations');
          return res.rows[0].n;
        }),
      destroy: () => withPgClient(undefined, (c) => c.query(`DROP SCHEMA ${schema} CASCADE`)).then(() => {}),
    };
  },
});
