// SQLite backend (better-sqlite3): the embedded default, one file under the
// data directory, nothing to install. better-sqlite3 is synchronous, so every
// method runs its statements to completion and returns a resolved promise;
// multi-statement writes use db.transaction(), which cannot interleave with
// other work. Statements are prepared once at open.
//
// Durability: WAL with synchronous=NORMAL. A commit is in the WAL file (the OS
// page cache) before the call returns, so a process crash or SIGKILL loses
// nothing reported written. On power loss the newest transactions since the
// last WAL sync may be lost, but the file stays consistent and heads and
// cursors roll back together, so the relay re-reads those events upstream.
// Pass `synchronous: 'FULL'` to fsync every commit instead.
import Database from 'better-sqlite3';
import type {
  Account,
  AccountPageOptions,
  AccountStatus,
  Created,
  CursorUpdate,
  DomainBan,
  HeadUpdate,
  Host,
  HostPageOptions,
  HostStatus,
  MetadataBackend,
  NewAccount,
  NewHost,
  PageOptions,
  RepoHead,
  Takedown,
} from './metadata-store.ts';
import { DEFAULT_HOST_ACCOUNT_LIMIT } from './metadata-store.ts';
import { migrateSqlite } from './migrations.ts';
import {
  type AccountRow,
  accountFromRow,
  banFromRow,
  emptyHostCounts,
  type HostRow,
  hostFromRow,
  LOG_CHECKPOINT_KEY,
  takedownFromRow,
} from './rows.ts';
import { type HeadRows, headRows, headRowsWriter, SqliteHeadWriter } from './sqlite-head-writer.ts';

export interface SqliteBackendOptions {
  /** File path, or ':memory:'. */
  path: string;
  synchronous?: 'NORMAL' | 'FULL';
  /** How long to wait for another process's write lock, ms. */
  busyTimeoutMs?: number;
  /**
   * Where `updateAccountHeads` runs: 'worker' (the default for a database
   * file: a thread with its own connection, sqlite-head-writer.ts) or
   * 'inline' (on this connection; always so for an in-memory database).
   */
  headWrites?: 'worker' | 'inline';
}

const INSERT_ACCOUNT = `INSERT INTO accounts (did, host_id, status, upstream_status, created_at)
  VALUES (@did, @hostId,
    CASE WHEN EXISTS (SELECT 1 FROM takedowns WHERE did = @did) THEN 'takendown' ELSE @status END,
    @upstreamStatus, @now)
  ON CONFLICT (did) DO NOTHING RETURNING *`;

/**
 * First row of a statement stepped to completion. Statements with RETURNING
 * must not use .get(): it resets the statement before SQLITE_DONE, which skips
 * SQLite's WAL hook, so auto-checkpoints never run and the WAL grows without bound.
 */
function first(stmt: Database.Statement, ...params: unknown[]): unknown {
  return stmt.all(...params)[0];
}

function prepareStatements(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    insertHost: p(`INSERT INTO hosts (hostname, tls, status, account_limit, trusted, created_at, updated_at)
      VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hostname) DO NOTHING RETURNING *`),
    hostById: p('SELECT * FROM hosts WHERE id = ?'),
    hostByName: p('SELECT * FROM hosts WHERE hostname = ?'),
    hostPage: p('SELECT * FROM hosts WHERE id > ? ORDER BY id LIMIT ?'),
    hostPageByStatus: p('SELECT * FROM hosts WHERE id > ? AND status = ? ORDER BY id LIMIT ?'),
    setHostStatus: p('UPDATE hosts SET status = ?, updated_at = ? WHERE id = ? RETURNING *'),
    setHostCursor: p('UPDATE hosts SET last_seq = ?, updated_at = ? WHERE id = ?'),
    advanceHostCursor: p('UPDATE hosts SET last_seq = ?, updated_at = ? WHERE id = ? AND last_seq < ?'),
    hostFailure: p(
      'UPDATE hosts SET failures = failures + 1, updated_at = ? WHERE id = ? RETURNING failures',
    ),
    resetFailures: p('UPDATE hosts SET failures = 0, updated_at = ? WHERE id = ? AND failures <> 0'),
    setLimit: p('UPDATE hosts SET account_limit = ?, updated_at = ? WHERE id = ?'),
    setTrusted: p('UPDATE hosts SET trusted = ?, updated_at = ? WHERE id = ?'),
    hostCounts: p('SELECT status, count(*) AS n FROM hosts GROUP BY status'),
    bumpAccountCount: p('UPDATE hosts SET account_count = account_count + ? WHERE id = ?'),

    accountByDid: p('SELECT * FROM accounts WHERE did = ?'),
    accountByUid: p('SELECT * FROM accounts WHERE uid = ?'),
    insertAccount: p(INSERT_ACCOUNT),
    setAccountHost: p('UPDATE accounts SET host_id = ? WHERE uid = ? RETURNING *'),
    setAccountStatus: p('UPDATE accounts SET status = ? WHERE uid = ? RETURNING *'),
    setUpstreamStatus: p('UPDATE accounts SET upstream_status = ? WHERE uid = ? RETURNING *'),
    updateHead: p(`UPDATE accounts SET rev = ?, commit_cid = ?, data_cid = ?
      WHERE uid = ? AND (rev IS NULL OR rev < ?) RETURNING *`),
    resetHead: p('UPDATE accounts SET rev = ?, commit_cid = ?, data_cid = ? WHERE uid = ? RETURNING *'),
    accountPage: p('SELECT * FROM accounts WHERE uid > ? ORDER BY uid LIMIT ?'),
    activeAccountPage: p(`SELECT * FROM accounts WHERE uid > ? AND status = 'active'
      AND upstream_status = 'active' ORDER BY uid LIMIT ?`),
    countByHost: p('SELECT count(*) AS n FROM accounts WHERE host_id = ?'),
    throttledPage: p(`SELECT * FROM accounts WHERE host_id = ? AND status = 'throttled' AND uid > ?
      ORDER BY uid LIMIT ?`),

    addBan: p('INSERT INTO domain_bans (domain, created_at) VALUES (?, ?) ON CONFLICT (domain) DO NOTHING'),
    removeBan: p('DELETE FROM domain_bans WHERE domain = ?'),
    listBans: p('SELECT * FROM domain_bans ORDER BY domain'),

    addTakedown: p(`INSERT INTO takedowns (did, reason, created_at) VALUES (?, ?, ?)
      ON CONFLICT (did) DO UPDATE SET reason = excluded.reason`),
    takedownAccount: p(`UPDATE accounts SET status = 'takendown' WHERE did = ? RETURNING *`),
    removeTakedown: p('DELETE FROM takedowns WHERE did = ?'),
    restoreAccount: p(`UPDATE accounts SET status = 'active' WHERE did = ? AND status = 'takendown'`),
    isTakenDown: p('SELECT 1 AS x FROM takedowns WHERE did = ?'),
    takedownPage: p('SELECT * FROM takedowns WHERE did > ? ORDER BY did LIMIT ?'),

    getSetting: p('SELECT value FROM settings WHERE key = ?'),
    setSetting: p(`INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`),
  };
}

/**
 * `PRAGMA journal_mode = WAL`, retried for up to `waitMs` while SQLite answers
 * SQLITE_BUSY. Switching a new database to WAL needs an exclusive lock, and
 * when another process is migrating the same new file at that moment SQLite
 * may refuse at once instead of calling the busy handler (a connection
 * holding a shared lock is not made to wait for one that waits for it): seen
 * about once in 80 starts of two processes on one new database.
 */
function enableWal(db: Database.Database, waitMs: number): void {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      // start-up only, and SQLite's own busy wait blocks the same way
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
}

export class SqliteBackend implements MetadataBackend {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepareStatements>;
  /** Ban lookups prepared per number of hostname labels. */
  private readonly banLookups = new Map<number, Database.Statement>();
  /** The head writes' thread (null: they run inline, on this connection). */
  private readonly heads: SqliteHeadWriter | null;
  /** The inline head write (sqlite-head-writer.ts; the worker runs the same). */
  private readonly writeHeadRows: (rows: HeadRows) => boolean[];
  private closed = false;

  constructor(opts: SqliteBackendOptions) {
    this.db = new Database(opts.path);
    const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
    const synchronous = opts.synchronous ?? 'NORMAL';
    // busy_timeout first: switching to WAL and migrating both need the lock
    // another process starting at the same moment may hold.
    this.db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    enableWal(this.db, busyTimeoutMs);
    this.db.pragma(`synchronous = ${synchronous}`);
    this.db.pragma('foreign_keys = ON');
    migrateSqlite(this.db);
    this.s = prepareStatements(this.db);
    this.writeHeadRows = headRowsWriter(this.db);
    this.heads =
      this.db.memory || opts.headWrites === 'inline'
        ? null
        : new SqliteHeadWriter({ path: this.db.name, busyTimeoutMs, synchronous });
  }

  private accountParams(input: NewAccount, now: number) {
    return {
      did: input.did,
      hostId: input.hostId,
      status: input.status ?? 'active',
      upstreamStatus: input.upstreamStatus ?? 'active',
      now,
    };
  }

  async createHost(input: NewHost): Promise<Created<Host>> {
    const now = Date.now();
    const row = first(
      this.s.insertHost,
      input.hostname,
      input.tls === false ? 0 : 1,
      input.status ?? 'active',
      input.accountLimit ?? DEFAULT_HOST_ACCOUNT_LIMIT,
      input.trusted ? 1 : 0,
      now,
      now,
    ) as HostRow | undefined;
    if (row) return { value: hostFromRow(row), created: true };
    return { value: hostFromRow(this.s.hostByName.get(input.hostname) as HostRow), created: false };
  }

  async getHost(id: number): Promise<Host | undefined> {
    const row = this.s.hostById.get(id) as HostRow | undefined;
    return row && hostFromRow(row);
  }

  async getHostByHostname(hostname: string): Promise<Host | undefined> {
    const row = this.s.hostByName.get(hostname) as HostRow | undefined;
    return row && hostFromRow(row);
  }

  async listHosts(opts: HostPageOptions): Promise<Host[]> {
    const after = opts.after ?? 0;
    const rows = (
      opts.status
        ? this.s.hostPageByStatus.all(after, opts.status, opts.limit)
        : this.s.hostPage.all(after, opts.limit)
    ) as HostRow[];
    return rows.map(hostFromRow);
  }

  async setHostStatus(id: number, status: HostStatus): Promise<Host | undefined> {
    const row = first(this.s.setHostStatus, status, Date.now(), id) as HostRow | undefined;
    return row && hostFromRow(row);
  }

  async setHostCursor(id: number, seq: number): Promise<void> {
    this.s.setHostCursor.run(seq, Date.now(), id);
  }

  async flushHostCursors(updates: readonly CursorUpdate[], checkpoint?: number): Promise<number> {
    if (updates.length === 0 && checkpoint === undefined) return 0;
    const now = Date.now();
    return this.db.transaction(() => {
      let written = 0;
      for (const u of updates) written += this.s.advanceHostCursor.run(u.seq, now, u.hostId, u.seq).changes;
      if (checkpoint !== undefined) this.s.setSetting.run(LOG_CHECKPOINT_KEY, String(checkpoint), now);
      return written;
    })();
  }

  async recordHostFailure(id: number): Promise<number> {
    const row = first(this.s.hostFailure, Date.now(), id) as { failures: number } | undefined;
    return row ? Number(row.failures) : 0;
  }

  async resetHostFailures(id: number): Promise<void> {
    this.s.resetFailures.run(Date.now(), id);
  }

  async setHostAccountLimit(id: number, limit: number): Promise<void> {
    this.s.setLimit.run(limit, Date.now(), id);
  }

  async setHostTrusted(id: number, trusted: boolean): Promise<void> {
    this.s.setTrusted.run(trusted ? 1 : 0, Date.now(), id);
  }

  async countHostsByStatus(): Promise<Record<HostStatus, number>> {
    const counts = emptyHostCounts();
    for (const r of this.s.hostCounts.all() as { status: HostStatus; n: number }[]) counts[r.status] = r.n;
    return counts;
  }

  async getAccountByDid(did: string): Promise<Account | undefined> {
    const row = this.s.accountByDid.get(did) as AccountRow | undefined;
    return row && accountFromRow(row);
  }

  async getAccountByUid(uid: number): Promise<Account | undefined> {
    const row = this.s.accountByUid.get(uid) as AccountRow | undefined;
    return row && accountFromRow(row);
  }

  async createAccount(input: NewAccount): Promise<Created<Account>> {
    return this.db.transaction((): Created<Account> => {
      const row = first(this.s.insertAccount, this.accountParams(input, Date.now())) as
        | AccountRow
        | undefined;
      if (row) {
        this.s.bumpAccountCount.run(1, input.hostId);
        return { value: accountFromRow(row), created: true };
      }
      return { value: accountFromRow(this.s.accountByDid.get(input.did) as AccountRow), created: false };
    })();
  }

  async importAccounts(inputs: readonly NewAccount[]): Promise<number> {
    const now = Date.now();
    return this.db.transaction(() => {
      const perHost = new Map<number, number>();
      for (const input of inputs) {
        if (first(this.s.insertAccount, this.accountParams(input, now)) !== undefined) {
          perHost.set(input.hostId, (perHost.get(input.hostId) ?? 0) + 1);
        }
      }
      let created = 0;
      for (const [hostId, n] of perHost) {
        this.s.bumpAccountCount.run(n, hostId);
        created += n;
      }
      return created;
    })();
  }

  async setAccountHost(uid: number, hostId: number): Promise<Account | undefined> {
    return this.db.transaction(() => {
      const before = this.s.accountByUid.get(uid) as AccountRow | undefined;
      if (!before) return undefined;
      const row = first(this.s.setAccountHost, hostId, uid) as AccountRow;
      if (Number(before.host_id) !== hostId) {
        this.s.bumpAccountCount.run(-1, before.host_id);
        this.s.bumpAccountCount.run(1, hostId);
      }
      return accountFromRow(row);
    })();
  }

  async setAccountStatus(uid: number, status: AccountStatus): Promise<Account | undefined> {
    const row = first(this.s.setAccountStatus, status, uid) as AccountRow | undefined;
    return row && accountFromRow(row);
  }

  async setAccountUpstreamStatus(uid: number, status: AccountStatus): Promise<Account | undefined> {
    const row = first(this.s.setUpstreamStatus, status, uid) as AccountRow | undefined;
    return row && accountFromRow(row);
  }

  async updateAccountHead(uid: number, head: RepoHead): Promise<Account | undefined> {
    const row = first(this.s.updateHead, head.rev, head.commitCid, head.dataCid, uid, head.rev) as
      | AccountRow
      | undefined;
    return row && accountFromRow(row);
  }

  async updateAccountHeads(updates: readonly HeadUpdate[]): Promise<boolean[]> {
    if (updates.length === 0) return [];
    if (this.heads) return this.heads.write(updates);
    // One transaction: one WAL commit for the batch instead of one per head.
    return this.writeHeadRows(headRows(updates));
  }

  async resetAccountHead(uid: number, head: RepoHead | null): Promise<Account | undefined> {
    const row = first(
      this.s.resetHead,
      head?.rev ?? null,
      head?.commitCid ?? null,
      head?.dataCid ?? null,
      uid,
    ) as AccountRow | undefined;
    return row && accountFromRow(row);
  }

  async listAccounts(opts: AccountPageOptions): Promise<Account[]> {
    const stmt = opts.activeOnly ? this.s.activeAccountPage : this.s.accountPage;
    return (stmt.all(opts.after ?? 0, opts.limit) as AccountRow[]).map(accountFromRow);
  }

  async countAccountsByHost(hostId: number): Promise<number> {
    return Number((this.s.countByHost.get(hostId) as { n: number }).n);
  }

  async listThrottledAccounts(hostId: number, opts: PageOptions): Promise<Account[]> {
    return (this.s.throttledPage.all(hostId, opts.after ?? 0, opts.limit) as AccountRow[]).map(
      accountFromRow,
    );
  }

  async addDomainBan(domain: string): Promise<void> {
    this.s.addBan.run(domain, Date.now());
  }

  async removeDomainBan(domain: string): Promise<boolean> {
    return this.s.removeBan.run(domain).changes > 0;
  }

  async listDomainBans(): Promise<DomainBan[]> {
    return (this.s.listBans.all() as { domain: string; created_at: number }[]).map(banFromRow);
  }

  async anyDomainBanned(suffixes: readonly string[]): Promise<boolean> {
    if (suffixes.length === 0) return false;
    let stmt = this.banLookups.get(suffixes.length);
    if (!stmt) {
      const marks = suffixes.map(() => '?').join(', ');
      stmt = this.db.prepare(`SELECT 1 AS x FROM domain_bans WHERE domain IN (${marks}) LIMIT 1`);
      this.banLookups.set(suffixes.length, stmt);
    }
    return stmt.get(...suffixes) !== undefined;
  }

  async setTakedown(did: string, reason?: string): Promise<Account | undefined> {
    return this.db.transaction(() => {
      this.s.addTakedown.run(did, reason ?? null, Date.now());
      const row = first(this.s.takedownAccount, did) as AccountRow | undefined;
      return row && accountFromRow(row);
    })();
  }

  async clearTakedown(did: string): Promise<{ removed: boolean; account: Account | undefined }> {
    return this.db.transaction(() => {
      const removed = this.s.removeTakedown.run(did).changes > 0;
      if (removed) this.s.restoreAccount.run(did);
      const row = this.s.accountByDid.get(did) as AccountRow | undefined;
      return { removed, account: row && accountFromRow(row) };
    })();
  }

  async isTakenDown(did: string): Promise<boolean> {
    return this.s.isTakenDown.get(did) !== undefined;
  }

  async listTakedowns(opts: { after?: string; limit: number }): Promise<Takedown[]> {
    const rows = this.s.takedownPage.all(opts.after ?? '', opts.limit) as {
      did: string;
      reason: string | null;
      created_at: number;
    }[];
    return rows.map(takedownFromRow);
  }

  async getSettingJson(key: string): Promise<string | undefined> {
    return (this.s.getSetting.get(key) as { value: string } | undefined)?.value;
  }

  async setSettingJson(key: string, json: string): Promise<void> {
    this.s.setSetting.run(key, json, Date.now());
  }

  async healthCheck(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.heads?.close();
    this.db.close();
  }
}
