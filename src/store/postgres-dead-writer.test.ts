// A process that dies while its PostgreSQL write waits on a lock must not
// have that write land later. Without a liveness check the server keeps the
// dead client's backend waiting on the lock and, once the lock is released,
// runs the statement and commits it: a "zombie" write after its process is
// gone, e.g. an ingest process's account status stored after the process
// that took its hosts over wrote a newer one (account status writes are not
// rev-gated like heads). The store sets client_connection_check_interval on
// its connections (postgres-store.ts), so the backend notices the closed
// socket while it waits and gives up.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { waitFor } from '../../test/support/wait.ts';
import { openMetadataStore } from './open-store.ts';

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const WRITER = new URL('../../test/support/pg-dead-writer.ts', import.meta.url).pathname;

describe('postgres store: a dead process leaves no write behind', () => {
  const schema = `atrelay_test_${randomBytes(6).toString('hex')}`;
  const appName = `atrelay-dead-writer-${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  const locker = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });

  after(async () => {
    await locker.end().catch(() => {});
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
    await admin.end().catch(() => {});
  });

  it('drops the write of a process killed while it waited on a row lock', async () => {
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const opts = { dataDir: tmpdir(), databaseUrl: PG_URL, pgSchema: schema };
    const store = await openMetadataStore(opts);
    let uid: number;
    try {
      const { value: host } = await store.createHost({ hostname: 'zombie.example.com' });
      const { value: account } = await store.createAccount({ did: 'did:plc:zombie', hostId: host.id });
      uid = account.uid;
    } finally {
      await store.close();
    }

    // The row is locked, so the child's status write waits.
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('SELECT uid FROM accounts WHERE uid = $1 FOR UPDATE', [uid]);

    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, JSON.stringify(opts), String(uid)], {
      env: { ...process.env, PGAPPNAME: appName },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    const waitingBackends = async () =>
      (
        await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [appName],
        )
      ).rows.length;
    const backends = async () =>
      (await admin.query('SELECT pid FROM pg_stat_activity WHERE application_name = $1', [appName])).rows
        .length;
    try {
      await waitFor(async () => (await waitingBackends()) === 1, 'the child’s write waits on the lock');
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    child.kill('SIGKILL');
    await exited;

    // The server must notice by itself that the client is gone (before the
    // lock is released, or the write would run): its backend ends.
    await waitFor(async () => (await backends()) === 0, 'the dead process’s backend is gone', {
      describe: () => 'its backend still waits on the lock: the write would land once the lock is released',
    });
    await locker.query('COMMIT');
    const { rows } = await admin.query<{ status: string }>(
      `SELECT status FROM ${schema}.accounts WHERE uid = $1`,
      [uid],
    );
    assert.equal(rows[0]?.status, 'active');
  });
});
