// The SQLite head writer's thread (sqlite-head-writer.ts): answers match the
// inline path, the main connection keeps writing while heads are written,
// close() lets calls already made finish, and a worker that fails fails only
// the calls in flight.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { tempDir } from '../../test/support/temp.ts';
import type { HeadUpdate, RepoHead } from './metadata-store.ts';
import { migrateSqlite } from './migrations.ts';
import { SqliteHeadWriter } from './sqlite-head-writer.ts';
import { SqliteBackend } from './sqlite-store.ts';

const head = (n: number): RepoHead => ({
  rev: `3l${String(n).padStart(11, '0')}`,
  commitCid: `bafycommit${n}`,
  dataCid: `bafydata${n}`,
});

function migratedFile(): string {
  const path = join(tempDir('atrelay-heads-'), 'relay.sqlite');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  migrateSqlite(db);
  db.close();
  return path;
}

async function backendWithAccounts(
  headWrites: 'worker' | 'inline',
  path: string,
  n: number,
): Promise<{ backend: SqliteBackend; uids: number[] }> {
  const backend = new SqliteBackend({ path, headWrites });
  const { value: host } = await backend.createHost({ hostname: 'pds.example.com' });
  const uids: number[] = [];
  for (let i = 0; i < n; i++) {
    const { value } = await backend.createAccount({ did: `did:plc:acct${i}`, hostId: host.id });
    uids.push(value.uid);
  }
  return { backend, uids };
}

describe('SQLite head writer thread', () => {
  it('answers exactly as the inline path does, rev gate and repeats included', async () => {
    const dir = tempDir('atrelay-heads-');
    const results: Array<{ answers: boolean[][]; rows: unknown[] }> = [];
    for (const mode of ['inline', 'worker'] as const) {
      const { backend, uids } = await backendWithAccounts(mode, join(dir, `${mode}.sqlite`), 20);
      const answers: boolean[][] = [];
      // a fixed sequence: rising, falling and repeated revs across calls and within a call
      for (let round = 0; round < 6; round++) {
        const updates: HeadUpdate[] = [];
        for (let k = 0; k < 30; k++) {
          const uid = uids[(round * 7 + k * 3) % uids.length];
          updates.push({ uid, head: head(((round * 13 + k * 5) % 17) + round) });
        }
        answers.push(await backend.updateAccountHeads(updates));
      }
      const rows = (await backend.listAccounts({ limit: 100 })).map((a) => [a.uid, a.head]);
      results.push({ answers, rows });
      await backend.close();
    }
    assert.deepEqual(results[1], results[0]);
    assert.ok(results[0].answers.flat().includes(false), 'the sequence exercises the rev gate');
  });

  it('keeps the main connection writing while heads are written, and close() lets calls already made finish', async () => {
    const path = migratedFile();
    const { backend, uids } = await backendWithAccounts('worker', path, 200);
    const calls: Array<Promise<boolean[]>> = [];
    for (let round = 1; round <= 20; round++) {
      calls.push(backend.updateAccountHeads(uids.map((uid) => ({ uid, head: head(round) }))));
      // main-connection writes to the same rows and table meanwhile
      await backend.setAccountStatus(uids[round], 'takendown');
      await backend.createAccount({ did: `did:plc:new${round}`, hostId: 1 });
    }
    const last = backend.updateAccountHeads([{ uid: uids[0], head: head(99) }]);
    await backend.close(); // not awaiting `last` first
    assert.deepEqual(await last, [true]);
    for (const answer of await Promise.all(calls)) assert.ok(answer.every((w) => w));
    const db = new Database(path);
    try {
      const rows = db.prepare('SELECT uid, rev, status FROM accounts ORDER BY uid').all() as Array<{
        uid: number;
        rev: string | null;
        status: string;
      }>;
      assert.equal(rows.length, 220);
      assert.equal(rows[0].rev, head(99).rev);
      for (const r of rows.slice(1, 200)) assert.equal(r.rev, head(20).rev);
      assert.equal(rows.filter((r) => r.status === 'takendown').length, 20);
    } finally {
      db.close();
    }
  });

  it('a worker that cannot start fails the calls in flight; the next call starts a new one', async () => {
    const path = join(tempDir('atrelay-heads-'), 'later.sqlite');
    const writer = new SqliteHeadWriter({ path, busyTimeoutMs: 5000, synchronous: 'NORMAL' });
    // the file does not exist yet: the worker refuses to create it
    await assert.rejects(writer.write([{ uid: 1, head: head(1) }]));
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    migrateSqlite(db);
    db.prepare(
      `INSERT INTO hosts (hostname, account_limit, created_at, updated_at) VALUES ('h', 10, 0, 0)`,
    ).run();
    db.prepare(`INSERT INTO accounts (did, host_id, created_at) VALUES ('did:plc:a', 1, 0)`).run();
    db.close();
    assert.deepEqual(await writer.write([{ uid: 1, head: head(2) }]), [true]);
    await writer.close();
    await assert.rejects(writer.write([{ uid: 1, head: head(3) }]), /closed/);
  });
});
