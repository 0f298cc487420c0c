// PostgreSQL collection index (node-postgres Pool), same tables and meaning
// as the SQLite one. Batches are one statement each: pairs go in and out via
// unnest() arrays, and the per-collection counts are adjusted in the same
// statement from the RETURNING rows (data-modifying CTE), so a batch of any
// size is one round trip and counts never drift from the pairs. Writes go
// through one in-process queue, in call order: concurrent statements that
// bump the same counter rows in different orders could otherwise deadlock,
// and a relay has one writer anyway. The queue group-commits: while one
// statement runs, the add (or remove) calls queued behind it are merged into
// the next statement — one commit, one fsync for all of them — which is what
// lets firehose-rate single-pair calls outrun the commit latency. Only runs
// of the same kind are merged, so call order is preserved. Text columns use
// COLLATE "C" so DID order — and thus cursors — is byte order, identical to
// SQLite's.
import type pg from 'pg';
import { type Logger, silentLogger } from '../log.ts';
import { createPgPool } from '../store/pg-pool.ts';
import {
  assertPairs,
  type BackfillItem,
  type CollectionCount,
  type CollectionIndexStore,
  type CollectionPair,
  type Page,
} from './index-store.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS coll_names (
  id serial PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  pairs bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS coll_pairs (
  coll integer NOT NULL,
  did text COLLATE "C" NOT NULL,
  PRIMARY KEY (coll, did)
);
CREATE INDEX IF NOT EXISTS coll_pairs_by_did ON coll_pairs (did, coll);
CREATE TABLE IF NOT EXISTS coll_hidden (did text COLLATE "C" PRIMARY KEY);
CREATE TABLE IF NOT EXISTS coll_pending (
  did text COLLATE "C" NOT NULL,
  collection text COLLATE "C" NOT NULL,
  added_at bigint NOT NULL,
  PRIMARY KEY (did, collection)
);
CREATE TABLE IF NOT EXISTS coll_backfill (
  job text COLLATE "C" NOT NULL,
  item text COLLATE "C" NOT NULL,
  cursor text,
  done boolean NOT NULL,
  pairs bigint NOT NULL,
  PRIMARY KEY (job, item)
);
`;

// Both return the pairs that changed, so merged calls can each be told their own count.
const ADD_PAIRS = `WITH ins AS (
    INSERT INTO coll_pairs (coll, did) SELECT * FROM unnest($1::int[], $2::text[])
    ON CONFLICT DO NOTHING RETURNING coll, did),
  c AS (SELECT coll, count(*) AS n FROM ins GROUP BY coll),
  upd AS (UPDATE coll_names SET pairs = pairs + c.n FROM c WHERE coll_names.id = c.coll)
  SELECT coll, did FROM ins`;

const REMOVE_PAIRS = `WITH del AS (
    DELETE FROM coll_pairs p USING unnest($1::int[], $2::text[]) AS x(coll, did)
    WHERE p.coll = x.coll AND p.did = x.did RETURNING p.coll, p.did),
  c AS (SELECT coll, count(*) AS n FROM del GROUP BY coll),
  upd AS (UPDATE coll_names SET pairs = pairs - c.n FROM c WHERE coll_names.id = c.coll)
  SELECT coll, did FROM del`;

/** Pairs per merged statement, at most. */
const MAX_GROUP_PAIRS = 20_000;

type WriteTask =
  | {
      kind: 'add' | 'remove';
      pairs: readonly CollectionPair[];
      resolve: (n: number) => void;
      reject: (e: unknown) => void;
    }
  | { kind: 'other'; run: () => Promise<void> };

const REMOVE_ACCOUNT = `WITH del AS (DELETE FROM coll_pairs WHERE did = $1 RETURNING coll),
  upd AS (UPDATE coll_names SET pairs = pairs - 1 FROM del WHERE coll_names.id = del.coll RETURNING 1),
  h AS (DELETE FROM coll_hidden WHERE did = $1),
  pc AS (DELETE FROM coll_pending WHERE did = $1)
  SELECT count(*)::int AS n FROM upd`;

export interface PostgresIndexOptions {
  connectionString: string;
  /** schema for search_path (must exist) */
  schema?: string;
  poolSize?: number;
  connectTimeoutMs?: number;
  logger?: Logger;
}

export class PostgresCollectionIndex implements CollectionIndexStore {
  readonly kind = 'postgres' as const;
  private readonly ids = new Map<string, number>();
  private readonly names = new Map<number, string>();
  private readonly queue: WriteTask[] = [];
  private draining: Promise<void> | null = null;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and creates the tables; rejects if the server is unreachable. */
  static async open(opts: PostgresIndexOptions): Promise<PostgresCollectionIndex> {
    const pool = createPgPool({
      connectionString: opts.connectionString,
      schema: opts.schema,
      max: opts.poolSize ?? 4,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
      log: opts.logger ?? silentLogger,
      purpose: 'collection index',
    });
    try {
      const c = await pool.connect();
      try {
        // Serialise concurrent first opens (CREATE ... IF NOT EXISTS can race).
        await c.query('BEGIN');
        await c.query("SELECT pg_advisory_xact_lock(hashtext('atrelay.coll_schema'))");
        await c.query(SCHEMA);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        c.release();
      }
    } catch (err) {
      await pool.end().catch(() => {});
      throw err;
    }
    return new PostgresCollectionIndex(pool);
  }

  /** Runs write work one at a time, in call order. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ kind: 'other', run: () => fn().then(resolve, reject) });
      this.drain();
    });
  }

  /** Resolves once every write queued before it has run: reads and direct writes see earlier calls. */
  private afterQueuedWrites(): Promise<void> {
    if (this.queue.length === 0 && this.draining === null) return Promise.resolve();
    return this.serial(async () => {});
  }

  private enqueuePairs(kind: 'add' | 'remove', pairs: readonly CollectionPair[]): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ kind, pairs, resolve, reject });
      this.drain();
    });
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = (async () => {
      while (this.queue.length > 0) {
        const head = this.queue[0];
        if (head.kind === 'other') {
          this.queue.shift();
          await head.run();
          continue;
        }
        // Merge the run of same-kind calls at the head of the queue.
        const group: Extract<WriteTask, { kind: 'add' | 'remove' }>[] = [];
        let size = 0;
        while (this.queue.length > 0) {
          const t = this.queue[0];
          if (t.kind !== head.kind || (group.length > 0 && size + t.pairs.length > MAX_GROUP_PAIRS)) break;
          this.queue.shift();
          group.push(t as Extract<WriteTask, { kind: 'add' | 'remove' }>);
          size += t.pairs.length;
        }
        try {
          const changed = await this.writePairs(
            head.kind,
            group.flatMap((t) => t.pairs),
          );
          // Credit each changed pair to the first call that asked for it.
          for (const t of group) {
            let n = 0;
            for (const p of t.pairs) if (changed.delete(`${p.collection} ${p.did}`)) n++;
            t.resolve(n);
          }
        } catch (err) {
          for (const t of group) t.reject(err);
        }
      }
      this.draining = null;
    })();
  }

  /** One statement for many pairs; returns the changed pairs as `collection did` keys. */
  private async writePairs(kind: 'add' | 'remove', pairs: readonly CollectionPair[]): Promise<Set<string>> {
    const [colls, dids] = await this.pairArrays(pairs, kind === 'add');
    const changed = new Set<string>();
    if (colls.length === 0) return changed;
    const res = await this.pool.query<{ coll: number; did: string }>(
      kind === 'add' ? ADD_PAIRS : REMOVE_PAIRS,
      [colls, dids],
    );
    for (const r of res.rows) changed.add(`${this.names.get(r.coll)} ${r.did}`);
    return changed;
  }

  private async idsFor(names: readonly string[], create: boolean): Promise<Map<string, number>> {
    const missing = [...new Set(names)].filter((n) => !this.ids.has(n));
    if (missing.length > 0) {
      if (create)
        await this.pool.query(
          'INSERT INTO coll_names (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING',
          [missing],
        );
      const res = await this.pool.query<{ id: number; name: string }>(
        'SELECT id, name FROM coll_names WHERE name = ANY($1::text[])',
        [missing],
      );
      for (const r of res.rows) {
        this.ids.set(r.name, r.id);
        this.names.set(r.id, r.name);
      }
    }
    return this.ids;
  }

  private async pairArrays(pairs: readonly CollectionPair[], create: boolean): Promise<[number[], string[]]> {
    const ids = await this.idsFor(
      pairs.map((p) => p.collection),
      create,
    );
    const seen = new Set<string>();
    const colls: number[] = [];
    const dids: string[] = [];
    for (const p of pairs) {
      const id = ids.get(p.collection);
      if (id === undefined) continue;
      const k = `${id} ${p.did}`;
      if (seen.has(k)) continue;
      seen.add(k);
      colls.push(id);
      dids.push(p.did);
    }
    return [colls, dids];
  }

  addPairs(pairs: readonly CollectionPair[]): Promise<number> {
    assertPairs(pairs);
    if (pairs.length === 0) return Promise.resolve(0);
    return this.enqueuePairs('add', pairs);
  }

  removePairs(pairs: readonly CollectionPair[]): Promise<number> {
    assertPairs(pairs);
    if (pairs.length === 0) return Promise.resolve(0);
    return this.enqueuePairs('remove', pairs);
  }

  setCollections(did: string, collections: readonly string[]): Promise<{ added: number; removed: number }> {
    const want = new Set(collections);
    assertPairs([...want].map((collection) => ({ did, collection })));
    return this.serial(async () => {
      const ids = await this.idsFor([...want], true);
      const wantIds = [...want].map((c) => ids.get(c) as number);
      const c = await this.pool.connect();
      try {
        await c.query('BEGIN');
        const del = await c.query<{ n: number }>(
          `WITH del AS (DELETE FROM coll_pairs WHERE did = $1 AND NOT (coll = ANY($2::int[])) RETURNING coll),
            upd AS (UPDATE coll_names SET pairs = pairs - 1 FROM del WHERE coll_names.id = del.coll RETURNING 1)
            SELECT count(*)::int AS n FROM upd`,
          [did, wantIds],
        );
        const add = await c.query(ADD_PAIRS, [wantIds, wantIds.map(() => did)]);
        await c.query('COMMIT');
        return { added: add.rowCount ?? 0, removed: del.rows[0].n };
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      } finally {
        c.release();
      }
    });
  }

  removeAccount(did: string): Promise<number> {
    return this.serial(async () => {
      const res = await this.pool.query<{ n: number }>(REMOVE_ACCOUNT, [did]);
      return res.rows[0].n;
    });
  }

  async setHidden(did: string, hidden: boolean): Promise<void> {
    await this.afterQueuedWrites();
    await this.serial(() =>
      hidden
        ? this.pool.query('INSERT INTO coll_hidden (did) VALUES ($1) ON CONFLICT DO NOTHING', [did])
        : this.pool.query('DELETE FROM coll_hidden WHERE did = $1', [did]),
    );
  }

  async isHidden(did: string): Promise<boolean> {
    await this.afterQueuedWrites();
    const res = await this.pool.query('SELECT 1 FROM coll_hidden WHERE did = $1', [did]);
    return res.rowCount !== null && res.rowCount > 0;
  }

  async collectionsOf(did: string): Promise<string[]> {
    await this.afterQueuedWrites();
    const res = await this.pool.query<{ name: string }>(
      'SELECT n.name FROM coll_pairs p JOIN coll_names n ON n.id = p.coll WHERE p.did = $1 ORDER BY n.name',
      [did],
    );
    return res.rows.map((r) => r.name);
  }

  async listRepos(collection: string, limit: number, cursor?: string): Promise<Page<string>> {
    await this.afterQueuedWrites();
    const id = (await this.idsFor([collection], false)).get(collection);
    if (id === undefined) return { items: [] };
    const res = await this.pool.query<{ did: string }>(
      {
        name: 'coll_list_repos',
        text: `SELECT did FROM coll_pairs p WHERE coll = $1 AND did > $2
          AND NOT EXISTS (SELECT 1 FROM coll_hidden h WHERE h.did = p.did) ORDER BY did LIMIT $3`,
      },
      [id, cursor ?? '', limit],
    );
    const items = res.rows.map((r) => r.did);
    return items.length === limit ? { items, cursor: items[items.length - 1] } : { items };
  }

  async listCollections(limit: number, cursor?: string): Promise<Page<CollectionCount>> {
    await this.afterQueuedWrites();
    const res = await this.pool.query<{ collection: string; count: string }>(
      'SELECT name AS collection, pairs AS count FROM coll_names WHERE name > $1 AND pairs > 0 ORDER BY name LIMIT $2',
      [cursor ?? '', limit],
    );
    const items = res.rows.map((r) => ({ collection: r.collection, count: Number(r.count) }));
    return items.length === limit ? { items, cursor: items[items.length - 1].collection } : { items };
  }

  async listDids(limit: number, cursor?: string): Promise<Page<string>> {
    await this.afterQueuedWrites();
    const res = await this.pool.query<{ did: string }>(
      'SELECT DISTINCT did FROM coll_pairs WHERE did > $1 ORDER BY did LIMIT $2',
      [cursor ?? '', limit],
    );
    const items = res.rows.map((r) => r.did);
    return items.length === limit ? { items, cursor: items[items.length - 1] } : { items };
  }

  async countPairs(): Promise<number> {
    await this.afterQueuedWrites();
    const res = await this.pool.query<{ n: string }>('SELECT coalesce(sum(pairs), 0) AS n FROM coll_names');
    return Number(res.rows[0].n);
  }

  async addPendingChecks(pairs: readonly CollectionPair[]): Promise<void> {
    if (pairs.length === 0) return;
    await this.serial(() =>
      this.pool.query(
        `INSERT INTO coll_pending (did, collection, added_at)
          SELECT d, c, $3 FROM unnest($1::text[], $2::text[]) AS x(d, c) ON CONFLICT DO NOTHING`,
        [pairs.map((p) => p.did), pairs.map((p) => p.collection), Date.now()],
      ),
    );
  }

  async pendingChecks(limit: number): Promise<CollectionPair[]> {
    await this.afterQueuedWrites();
    const res = await this.pool.query<CollectionPair>(
      'SELECT did, collection FROM coll_pending ORDER BY added_at, did, collection LIMIT $1',
      [limit],
    );
    return res.rows;
  }

  async removePendingCheck(pair: CollectionPair): Promise<void> {
    await this.afterQueuedWrites();
    await this.serial(() =>
      this.pool.query('DELETE FROM coll_pending WHERE did = $1 AND collection = $2', [
        pair.did,
        pair.collection,
      ]),
    );
  }

  async removePendingChecksOf(did: string): Promise<void> {
    await this.afterQueuedWrites();
    await this.serial(() => this.pool.query('DELETE FROM coll_pending WHERE did = $1', [did]));
  }

  async countPendingChecks(): Promise<number> {
    await this.afterQueuedWrites();
    const res = await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM coll_pending');
    return res.rows[0].n;
  }

  async backfillItems(job: string): Promise<BackfillItem[]> {
    const res = await this.pool.query<{ item: string; cursor: string | null; done: boolean; pairs: string }>(
      'SELECT item, cursor, done, pairs FROM coll_backfill WHERE job = $1 ORDER BY item',
      [job],
    );
    return res.rows.map((r) => ({ item: r.item, cursor: r.cursor, done: r.done, pairs: Number(r.pairs) }));
  }

  async saveBackfillItem(job: string, item: BackfillItem): Promise<void> {
    await this.serial(() =>
      this.pool.query(
        `INSERT INTO coll_backfill (job, item, cursor, done, pairs) VALUES ($1, $2, $3, $4, $5)
          ON CONFLICT (job, item) DO UPDATE SET cursor = excluded.cursor, done = excluded.done, pairs = excluded.pairs`,
        [job, item.item, item.cursor, item.done, item.pairs],
      ),
    );
  }

  async clearBackfill(job: string): Promise<void> {
    await this.serial(() => this.pool.query('DELETE FROM coll_backfill WHERE job = $1', [job]));
  }

  async close(): Promise<void> {
    await this.draining;
    await this.pool.end();
  }
}
