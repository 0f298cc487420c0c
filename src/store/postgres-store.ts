// PostgreSQL backend (node-postgres Pool) for production deployments that
// already run PostgreSQL, like zlay and Bluesky's relay. Multi-statement writes
// are single statements with data-modifying CTEs where possible (one round
// trip, atomic), otherwise an explicit transaction on one pooled client. Hot
// paths (lookup by DID, head update) use named prepared statements so the
// server parses them once per connection. Cursor flushes are one UPDATE over
// unnest() arrays: one round trip for any number of hosts. Head updates go
// through a group-commit batcher (head-batcher.ts): one fsync per batch, and
// updateAccountHeads queues its whole list into one batch (one round trip).
import type pg from 'pg';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import { HeadUpdateBatcher, type HeadWrite } from './head-batcher.ts';
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
import { migratePostgres } from './migrations.ts';
import { createPgPool } from './pg-pool.ts';
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

export interface PostgresBackendOptions {
  connectionString: string;
  /** Schema to use via search_path (must exist); default: the role's search_path. */
  schema?: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  log?: Logger;
}

export class PostgresBackend implements MetadataBackend {
  readonly kind = 'postgres' as const;
  private closed = false;

  private readonly heads = new HeadUpdateBatcher((writes) => this.writeHeads(writes));

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects, runs migrations, and fails (rejects) if the server is unreachable. */
  static async open(opts: PostgresBackendOptions): Promise<PostgresBackend> {
    const pool = createPgPool({
      connectionString: opts.connectionString,
      schema: opts.schema,
      max: opts.poolSize ?? 8,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      log: opts.log ?? silentLogger,
      purpose: 'metadata store',
    });
    try {
      const client = await pool.connect();
      try {
        await migratePostgres(client);
      } finally {
        client.release();
      }
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PostgresBackend(pool);
  }

  private async one<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[],
    name?: string,
  ): Promise<R | undefined> {
    const res = await this.pool.query<R>({ text, values, name });
    return res.rows[0];
  }

  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async createHost(input: NewHost): Promise<Created<Host>> {
    const now = Date.now();
    const row = await this.one<HostRow>(
      `INSERT INTO hosts (hostname, tls, status, account_limit, trusted, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (hostname) DO NOTHING RETURNING *`,
      [
        input.hostname,
        input.tls !== false,
        input.status ?? 'active',
        input.accountLimit ?? DEFAULT_HOST_ACCOUNT_LIMIT,
        input.trusted === true,
        now,
      ],
    );
    if (row) return { value: hostFromRow(row), created: true };
    const existing = await this.getHostByHostname(input.hostname);
    if (!existing) throw new Error(`host ${input.hostname} vanished during create`);
    return { value: existing, created: false };
  }

  async getHost(id: number): Promise<Host | undefined> {
    const row = await this.one<HostRow>('SELECT * FROM hosts WHERE id = $1', [id]);
    return row && hostFromRow(row);
  }

  async getHostByHostname(hostname: string): Promise<Host | undefined> {
    const row = await this.one<HostRow>('SELECT * FROM hosts WHERE hostname = $1', [hostname]);
    return row && hostFromRow(row);
  }

  async listHosts(opts: HostPageOptions): Promise<Host[]> {
    const res = opts.status
      ? await this.pool.query<HostRow>(
          'SELECT * FROM hosts WHERE id > $1 AND status = $2 ORDER BY id LIMIT $3',
          [opts.after ?? 0, opts.status, opts.limit],
        )
      : await this.pool.query<HostRow>('SELECT * FROM hosts WHERE id > $1 ORDER BY id LIMIT $2', [
          opts.after ?? 0,
          opts.limit,
        ]);
    return res.rows.map(hostFromRow);
  }

  async setHostStatus(id: number, status: HostStatus): Promise<Host | undefined> {
    const row = await this.one<HostRow>(
      'UPDATE hosts SET status = $1, updated_at = $2 WHERE id = $3 RETURNING *',
      [status, Date.now(), id],
    );
    return row && hostFromRow(row);
  }

  async setHostCursor(id: number, seq: number): Promise<void> {
    await this.pool.query('UPDATE hosts SET last_seq = $1, updated_at = $2 WHERE id = $3', [
      seq,
      Date.now(),
      id,
    ]);
  }

  async flushHostCursors(updates: readonly CursorUpdate[], checkpoint?: number): Promise<number> {
    if (updates.length === 0 && checkpoint === undefined) return 0;
    const now = Date.now();
    const cursors = {
      name: 'atrelay_flush_cursors',
      text: `UPDATE hosts h SET last_seq = v.seq, updated_at = $3
             FROM unnest($1::int[], $2::bigint[]) AS v(id, seq)
             WHERE h.id = v.id AND h.last_seq < v.seq`,
      values: [updates.map((u) => u.hostId), updates.map((u) => u.seq), now],
    };
    if (checkpoint === undefined) return (await this.pool.query(cursors)).rowCount ?? 0;
    return this.tx(async (c) => {
      const res = updates.length > 0 ? await c.query(cursors) : { rowCount: 0 };
      await c.query(
        `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
        [LOG_CHECKPOINT_KEY, String(checkpoint), now],
      );
      return res.rowCount ?? 0;
    });
  }

  async recordHostFailure(id: number): Promise<number> {
    const row = await this.one<{ failures: number }>(
      'UPDATE hosts SET failures = failures + 1, updated_at = $1 WHERE id = $2 RETURNING failures',
      [Date.now(), id],
    );
    return row ? Number(row.failures) : 0;
  }

  async resetHostFailures(id: number): Promise<void> {
    await this.pool.query('UPDATE hosts SET failures = 0, updated_at = $1 WHERE id = $2 AND failures <> 0', [
      Date.now(),
      id,
    ]);
  }

  async setHostAccountLimit(id: number, limit: number): Promise<void> {
    await this.pool.query('UPDATE hosts SET account_limit = $1, updated_at = $2 WHERE id = $3', [
      limit,
      Date.now(),
      id,
    ]);
  }

  async setHostTrusted(id: number, trusted: boolean): Promise<void> {
    await this.pool.query('UPDATE hosts SET trusted = $1, updated_at = $2 WHERE id = $3', [
      trusted,
      Date.now(),
      id,
    ]);
  }

  async countHostsByStatus(): Promise<Record<HostStatus, number>> {
    const counts = emptyHostCounts();
    const res = await this.pool.query<{ status: HostStatus; n: number }>(
      'SELECT status, count(*)::int AS n FROM hosts GROUP BY status',
    );
    for (const r of res.rows) counts[r.status] = r.n;
    return counts;
  }

  async getAccountByDid(did: string): Promise<Account | undefined> {
    const row = await this.one<AccountRow>(
      'SELECT * FROM accounts WHERE did = $1',
      [did],
      'atrelay_account_by_did',
    );
    return row && accountFromRow(row);
  }

  async getAccountByUid(uid: number): Promise<Account | undefined> {
    const row = await this.one<AccountRow>(
      'SELECT * FROM accounts WHERE uid = $1',
      [uid],
      'atrelay_account_by_uid',
    );
    return row && accountFromRow(row);
  }

  async createAccount(input: NewAccount): Promise<Created<Account>> {
    // One statement: the insert and the host's account_count bump commit together.
    const row = await this.one<AccountRow>(
      `WITH ins AS (
         INSERT INTO accounts (did, host_id, status, upstream_status, created_at)
         VALUES ($1, $2,
           CASE WHEN EXISTS (SELECT 1 FROM takedowns WHERE did = $1) THEN 'takendown' ELSE $3::text END,
           $4, $5)
         ON CONFLICT (did) DO NOTHING RETURNING *
       ), bump AS (
         UPDATE hosts SET account_count = account_count + 1 WHERE id = (SELECT host_id FROM ins)
       )
       SELECT * FROM ins`,
      [input.did, input.hostId, input.status ?? 'active', input.upstreamStatus ?? 'active', Date.now()],
      'atrelay_create_account',
    );
    if (row) return { value: accountFromRow(row), created: true };
    const existing = await this.getAccountByDid(input.did);
    if (!existing) throw new Error(`account ${input.did} vanished during create`);
    return { value: existing, created: false };
  }

  async importAccounts(inputs: readonly NewAccount[]): Promise<number> {
    if (inputs.length === 0) return 0;
    const row = await this.one<{ created: number }>(
      `WITH input AS (
         SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[]) AS t(did, host_id, status, upstream_status)
       ), ins AS (
         INSERT INTO accounts (did, host_id, status, upstream_status, created_at)
         SELECT i.did, i.host_id, CASE WHEN td.did IS NULL THEN i.status ELSE 'takendown' END, i.upstream_status, $5
         FROM input i LEFT JOIN takedowns td ON td.did = i.did
         ON CONFLICT (did) DO NOTHING RETURNING host_id
       ), counts AS (
         SELECT host_id, count(*)::int AS n FROM ins GROUP BY host_id
       ), bump AS (
         UPDATE hosts h SET account_count = h.account_count + c.n FROM counts c WHERE h.id = c.host_id
       )
       SELECT coalesce(sum(n), 0)::int AS created FROM counts`,
      [
        inputs.map((a) => a.did),
        inputs.map((a) => a.hostId),
        inputs.map((a) => a.status ?? 'active'),
        inputs.map((a) => a.upstreamStatus ?? 'active'),
        Date.now(),
      ],
    );
    return row?.created ?? 0;
  }

  async setAccountHost(uid: number, hostId: number): Promise<Account | undefined> {
    return this.tx(async (c) => {
      const before = await c.query<{ host_id: number }>(
        'SELECT host_id FROM accounts WHERE uid = $1 FOR UPDATE',
        [uid],
      );
      if (before.rows.length === 0) return undefined;
      const oldHost = Number(before.rows[0].host_id);
      const res = await c.query<AccountRow>('UPDATE accounts SET host_id = $1 WHERE uid = $2 RETURNING *', [
        hostId,
        uid,
      ]);
      if (oldHost !== hostId) {
        await c.query('UPDATE hosts SET account_count = account_count - 1 WHERE id = $1', [oldHost]);
        await c.query('UPDATE hosts SET account_count = account_count + 1 WHERE id = $1', [hostId]);
      }
      return accountFromRow(res.rows[0]);
    });
  }

  async setAccountStatus(uid: number, status: AccountStatus): Promise<Account | undefined> {
    const row = await this.one<AccountRow>('UPDATE accounts SET status = $1 WHERE uid = $2 RETURNING *', [
      status,
      uid,
    ]);
    return row && accountFromRow(row);
  }

  async setAccountUpstreamStatus(uid: number, status: AccountStatus): Promise<Account | undefined> {
    const row = await this.one<AccountRow>(
      'UPDATE accounts SET upstream_status = $1 WHERE uid = $2 RETURNING *',
      [status, uid],
    );
    return row && accountFromRow(row);
  }

  updateAccountHead(uid: number, head: RepoHead): Promise<Account | undefined> {
    return this.heads.update(uid, head);
  }

  async updateAccountHeads(updates: readonly HeadUpdate[]): Promise<boolean[]> {
    return (await this.heads.updateAll(updates)).map((row) => row !== undefined);
  }

  private async writeHeads(writes: readonly HeadWrite[]): Promise<Account[]> {
    if (writes.length === 1) {
      const { uid, head } = writes[0];
      const row = await this.one<AccountRow>(
        `UPDATE accounts SET rev = $1, commit_cid = $2, data_cid = $3
         WHERE uid = $4 AND (rev IS NULL OR rev < $1) RETURNING *`,
        [head.rev, head.commitCid, head.dataCid, uid],
        'atrelay_update_head',
      );
      return row ? [accountFromRow(row)] : [];
    }
    const res = await this.pool.query<AccountRow>({
      name: 'atrelay_update_heads',
      text: `UPDATE accounts a SET rev = v.rev, commit_cid = v.commit_cid, data_cid = v.data_cid
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS v(uid, rev, commit_cid, data_cid)
             WHERE a.uid = v.uid AND (a.rev IS NULL OR a.rev < v.rev)
             RETURNING a.*`,
      values: [
        writes.map((w) => w.uid),
        writes.map((w) => w.head.rev),
        writes.map((w) => w.head.commitCid),
        writes.map((w) => w.head.dataCid),
      ],
    });
    return res.rows.map(accountFromRow);
  }

  async resetAccountHead(uid: number, head: RepoHead | null): Promise<Account | undefined> {
    const row = await this.one<AccountRow>(
      'UPDATE accounts SET rev = $1, commit_cid = $2, data_cid = $3 WHERE uid = $4 RETURNING *',
      [head?.rev ?? null, head?.commitCid ?? null, head?.dataCid ?? null, uid],
    );
    return row && accountFromRow(row);
  }

  async listAccounts(opts: AccountPageOptions): Promise<Account[]> {
    const text = opts.activeOnly
      ? `SELECT * FROM accounts WHERE uid > $1 AND status = 'active' AND upstream_status = 'active'
         ORDER BY uid LIMIT $2`
      : 'SELECT * FROM accounts WHERE uid > $1 ORDER BY uid LIMIT $2';
    const res = await this.pool.query<AccountRow>(text, [opts.after ?? 0, opts.limit]);
    return res.rows.map(accountFromRow);
  }

  async countAccountsByHost(hostId: number): Promise<number> {
    const row = await this.one<{ n: number }>(
      'SELECT count(*)::bigint AS n FROM accounts WHERE host_id = $1',
      [hostId],
    );
    return Number(row?.n ?? 0);
  }

  async listThrottledAccounts(hostId: number, opts: PageOptions): Promise<Account[]> {
    const res = await this.pool.query<AccountRow>(
      `SELECT * FROM accounts WHERE host_id = $1 AND status = 'throttled' AND uid > $2 ORDER BY uid LIMIT $3`,
      [hostId, opts.after ?? 0, opts.limit],
    );
    return res.rows.map(accountFromRow);
  }

  async addDomainBan(domain: string): Promise<void> {
    await this.pool.query(
      'INSERT INTO domain_bans (domain, created_at) VALUES ($1, $2) ON CONFLICT (domain) DO NOTHING',
      [domain, Date.now()],
    );
  }

  async removeDomainBan(domain: string): Promise<boolean> {
    const res = await this.pool.query('DELETE FROM domain_bans WHERE domain = $1', [domain]);
    return (res.rowCount ?? 0) > 0;
  }

  async listDomainBans(): Promise<DomainBan[]> {
    const res = await this.pool.query<{ domain: string; created_at: string }>(
      'SELECT * FROM domain_bans ORDER BY domain',
    );
    return res.rows.map(banFromRow);
  }

  async anyDomainBanned(suffixes: readonly string[]): Promise<boolean> {
    if (suffixes.length === 0) return false;
    const row = await this.one('SELECT 1 AS x FROM domain_bans WHERE domain = ANY($1::text[]) LIMIT 1', [
      [...suffixes],
    ]);
    return row !== undefined;
  }

  async setTakedown(did: string, reason?: string): Promise<Account | undefined> {
    return this.tx(async (c) => {
      await c.query(
        `INSERT INTO takedowns (did, reason, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (did) DO UPDATE SET reason = excluded.reason`,
        [did, reason ?? null, Date.now()],
      );
      const res = await c.query<AccountRow>(
        `UPDATE accounts SET status = 'takendown' WHERE did = $1 RETURNING *`,
        [did],
      );
      return res.rows[0] && accountFromRow(res.rows[0]);
    });
  }

  async clearTakedown(did: string): Promise<{ removed: boolean; account: Account | undefined }> {
    return this.tx(async (c) => {
      const del = await c.query('DELETE FROM takedowns WHERE did = $1', [did]);
      const removed = (del.rowCount ?? 0) > 0;
      if (removed) {
        await c.query(`UPDATE accounts SET status = 'active' WHERE did = $1 AND status = 'takendown'`, [did]);
      }
      const res = await c.query<AccountRow>('SELECT * FROM accounts WHERE did = $1', [did]);
      return { removed, account: res.rows[0] && accountFromRow(res.rows[0]) };
    });
  }

  async isTakenDown(did: string): Promise<boolean> {
    return (await this.one('SELECT 1 AS x FROM takedowns WHERE did = $1', [did])) !== undefined;
  }

  async listTakedowns(opts: { after?: string; limit: number }): Promise<Takedown[]> {
    const res = await this.pool.query<{ did: string; reason: string | null; created_at: string }>(
      'SELECT * FROM takedowns WHERE did > $1 ORDER BY did LIMIT $2',
      [opts.after ?? '', opts.limit],
    );
    return res.rows.map(takedownFromRow);
  }

  async getSettingJson(key: string): Promise<string | undefined> {
    return (await this.one<{ value: string }>('SELECT value FROM settings WHERE key = $1', [key]))?.value;
  }

  async setSettingJson(key: string, json: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [key, json, Date.now()],
    );
  }

  async healthCheck(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }
}
