// SQLite collection index (better-sqlite3), the embedded default: its own
// file (<dataDir>/collections.sqlite) so that its write volume never holds
// the metadata store's write lock. Pairs live in one WITHOUT ROWID table keyed
// (collection id, DID) — a clustered B-tree, so a listReposByCollection page
// is one range scan — plus a secondary index (DID, collection id) for the
// per-account direction. Collection names are interned (a 1–2 byte integer
// instead of a ~20 byte name per pair), which keeps ~100M pairs around
// 2 × 100M × ~40 bytes. better-sqlite3 is synchronous: each method runs its
// statements in one transaction and returns a resolved promise. WAL with
// synchronous=NORMAL, like the metadata store.
//
// Pair writes (addPairs, removePairs, addPendingChecks) are group-committed:
// the calls of one event-loop turn are applied in call order in ONE
// transaction (a WAL commit costs far more than the rows in it; one per
// relayed commit was among the largest items of the relay's main-thread
// profile). Every other method first applies what is queued, so reads and
// direct writes see, and come after, every earlier call — the same order as
// if each call had run at once.
import Database from 'better-sqlite3';
import {
  assertPairs,
  type BackfillItem,
  type CollectionCount,
  type CollectionIndexStore,
  type CollectionPair,
  type Page,
} from './index-store.ts';

export const COLLECTIONS_SQLITE_FILE = 'collections.sqlite';

/** A queued pair write (see the file comment) and its caller's promise. */
interface QueuedWrite {
  kind: 'add' | 'remove' | 'pending';
  pairs: readonly CollectionPair[];
  resolve: (count: number) => void;
  reject: (err: unknown) => void;
}

/** Queued pairs that make the queue apply at once rather than at the end of the turn. */
const MAX_QUEUED_PAIRS = 10_000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS coll_names (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  pairs INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS coll_pairs (
  coll INTEGER NOT NULL,
  did TEXT NOT NULL,
  PRIMARY KEY (coll, did)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coll_pairs_by_did ON coll_pairs (did, coll);
CREATE TABLE IF NOT EXISTS coll_hidden (did TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coll_pending (
  did TEXT NOT NULL,
  collection TEXT NOT NULL,
  added_at INTEGER NOT NULL,
  PRIMARY KEY (did, collection)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coll_backfill (
  job TEXT NOT NULL,
  item TEXT NOT NULL,
  cursor TEXT,
  done INTEGER NOT NULL,
  pairs INTEGER NOT NULL,
  PRIMARY KEY (job, item)
) WITHOUT ROWID;
`;

export interface SqliteIndexOptions {
  /** file path or ':memory:' */
  path: string;
  synchronous?: 'NORMAL' | 'FULL' | 'OFF';
  /** page cache size in KiB (default 64 MiB) */
  cacheKiB?: number;
}

export class SqliteCollectionIndex implements CollectionIndexStore {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly ids = new Map<string, number>();
  private readonly s;
  private readonly writeInTx: (writes: readonly QueuedWrite[]) => number[];
  private queued: QueuedWrite[] = [];
  private queuedPairs = 0;
  private flushTimer: NodeJS.Immediate | null = null;

  constructor(opts: SqliteIndexOptions) {
    const db = new Database(opts.path);
    this.db = db;
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${opts.synchronous ?? 'NORMAL'}`);
    db.pragma(`cache_size = -${opts.cacheKiB ?? 65536}`);
    db.exec(SCHEMA);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      nameId: p('SELECT id FROM coll_names WHERE name = ?').pluck(),
      insertName: p('INSERT INTO coll_names (name) VALUES (?) ON CONFLICT (name) DO NOTHING'),
      addCount: p('UPDATE coll_names SET pairs = pairs + ? WHERE id = ?'),
      insertPair: p('INSERT INTO coll_pairs (coll, did) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      deletePair: p('DELETE FROM coll_pairs WHERE coll = ? AND did = ?'),
      collsOf: p(
        'SELECT n.name FROM coll_pairs p JOIN coll_names n ON n.id = p.coll WHERE p.did = ? ORDER BY n.name',
      ).pluck(),
      collIdsOf: p('SELECT coll FROM coll_pairs WHERE did = ?').pluck(),
      deleteDid: p('DELETE FROM coll_pairs WHERE did = ?'),
      listRepos: p(`SELECT did FROM coll_pairs p WHERE coll = ? AND did > ?
        AND NOT EXISTS (SELECT 1 FROM coll_hidden h WHERE h.did = p.did) ORDER BY did LIMIT ?`).pluck(),
      listCollections: p(
        'SELECT name AS collection, pairs AS count FROM coll_names WHERE name > ? AND pairs > 0 ORDER BY name LIMIT ?',
      ),
      listDids: p('SELECT DISTINCT did FROM coll_pairs WHERE did > ? ORDER BY did LIMIT ?').pluck(),
      countPairs: p('SELECT coalesce(sum(pairs), 0) FROM coll_names').pluck(),
      hide: p('INSERT INTO coll_hidden (did) VALUES (?) ON CONFLICT DO NOTHING'),
      unhide: p('DELETE FROM coll_hidden WHERE did = ?'),
      isHidden: p('SELECT 1 FROM coll_hidden WHERE did = ?').pluck(),
      addPending: p(
        'INSERT INTO coll_pending (did, collection, added_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      pending: p('SELECT did, collection FROM coll_pending ORDER BY added_at, did, collection LIMIT ?'),
      removePending: p('DELETE FROM coll_pending WHERE did = ? AND collection = ?'),
      removePendingDid: p('DELETE FROM coll_pending WHERE did = ?'),
      countPending: p('SELECT count(*) FROM coll_pending').pluck(),
      backfillItems: p('SELECT item, cursor, done, pairs FROM coll_backfill WHERE job = ? ORDER BY item'),
      saveBackfill: p(`INSERT INTO coll_backfill (job, item, cursor, done, pairs) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (job, item) DO UPDATE SET cursor = excluded.cursor, done = excluded.done, pairs = excluded.pairs`),
      clearBackfill: p('DELETE FROM coll_backfill WHERE job = ?'),
    };
    this.writeInTx = db.transaction((writes: readonly QueuedWrite[]) => writes.map(this.applyWrite));
  }

  private readonly applyWrite = (w: QueuedWrite): number => {
    if (w.kind === 'add') return this.addTx(w.pairs);
    if (w.kind === 'remove') return this.removeTx(w.pairs);
    const now = Date.now();
    for (const p of w.pairs) this.s.addPending.run(p.did, p.collection, now);
    return 0;
  };

  private enqueue(kind: QueuedWrite['kind'], pairs: readonly CollectionPair[]): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queued.push({ kind, pairs, resolve, reject });
      this.queuedPairs += pairs.length;
      if (this.queuedPairs >= MAX_QUEUED_PAIRS) this.flushQueued();
      else this.flushTimer ??= setImmediate(() => this.flushQueued());
    });
  }

  /** Applies every queued pair write, in call order, in one transaction. */
  private flushQueued(): void {
    if (this.flushTimer) {
      clearImmediate(this.flushTimer);
      this.flushTimer = null;
    }
    if (this.queued.length === 0) return;
    const writes = this.queued;
    this.queued = [];
    this.queuedPairs = 0;
    let counts: number[];
    try {
      counts = this.writeInTx(writes);
    } catch {
      // the transaction rolled back: each call alone, so one failure fails only its own caller
      for (const w of writes) {
        try {
          w.resolve(this.writeInTx([w])[0]);
        } catch (err) {
          w.reject(err);
        }
      }
      return;
    }
    for (let i = 0; i < writes.length; i++) writes[i].resolve(counts[i]);
  }

  private idFor(name: string): number {
    let id = this.ids.get(name);
    if (id !== undefined) return id;
    id = this.s.nameId.get(name) as number | undefined;
    if (id === undefined) {
      this.s.insertName.run(name);
      id = this.s.nameId.get(name) as number;
    }
    this.ids.set(name, id);
    return id;
  }

  /** The id of a known collection, without creating one. */
  private existingId(name: string): number | undefined {
    const cached = this.ids.get(name);
    if (cached !== undefined) return cached;
    const id = this.s.nameId.get(name) as number | undefined;
    if (id !== undefined) this.ids.set(name, id);
    return id;
  }

  private applyCounts(deltas: Map<number, number>): void {
    for (const [id, n] of deltas) if (n !== 0) this.s.addCount.run(n, id);
  }

  private readonly addTx = (pairs: readonly CollectionPair[]): number => {
    const deltas = new Map<number, number>();
    let added = 0;
    for (const { did, collection } of pairs) {
      const id = this.idFor(collection);
      if (this.s.insertPair.run(id, did).changes > 0) {
        added++;
        deltas.set(id, (deltas.get(id) ?? 0) + 1);
      }
    }
    this.applyCounts(deltas);
    return added;
  };

  private readonly removeTx = (pairs: readonly CollectionPair[]): number => {
    const deltas = new Map<number, number>();
    let removed = 0;
    for (const { did, collection } of pairs) {
      const id = this.existingId(collection);
      if (id === undefined) continue;
      if (this.s.deletePair.run(id, did).changes > 0) {
        removed++;
        deltas.set(id, (deltas.get(id) ?? 0) - 1);
      }
    }
    this.applyCounts(deltas);
    return removed;
  };

  async addPairs(pairs: readonly CollectionPair[]): Promise<number> {
    assertPairs(pairs);
    if (pairs.length === 0) return 0;
    return this.enqueue('add', pairs);
  }

  async removePairs(pairs: readonly CollectionPair[]): Promise<number> {
    assertPairs(pairs);
    if (pairs.length === 0) return 0;
    return this.enqueue('remove', pairs);
  }

  async setCollections(
    did: string,
    collections: readonly string[],
  ): Promise<{ added: number; removed: number }> {
    this.flushQueued();
    const want = new Set(collections);
    assertPairs([...want].map((collection) => ({ did, collection })));
    return this.db.transaction(() => {
      const have = new Set(this.s.collsOf.all(did) as string[]);
      const toRemove = [...have].filter((c) => !want.has(c)).map((collection) => ({ did, collection }));
      const toAdd = [...want].filter((c) => !have.has(c)).map((collection) => ({ did, collection }));
      return { removed: this.removeTx(toRemove), added: this.addTx(toAdd) };
    })();
  }

  async removeAccount(did: string): Promise<number> {
    this.flushQueued();
    return this.db.transaction(() => {
      const ids = this.s.collIdsOf.all(did) as number[];
      this.s.deleteDid.run(did);
      for (const id of ids) this.s.addCount.run(-1, id);
      this.s.unhide.run(did);
      this.s.removePendingDid.run(did);
      return ids.length;
    })();
  }

  async setHidden(did: string, hidden: boolean): Promise<void> {
    this.flushQueued();
    if (hidden) this.s.hide.run(did);
    else this.s.unhide.run(did);
  }

  async isHidden(did: string): Promise<boolean> {
    this.flushQueued();
    return this.s.isHidden.get(did) !== undefined;
  }

  async collectionsOf(did: string): Promise<string[]> {
    this.flushQueued();
    return this.s.collsOf.all(did) as string[];
  }

  async listRepos(collection: string, limit: number, cursor?: string): Promise<Page<string>> {
    this.flushQueued();
    const id = this.existingId(collection);
    if (id === undefined) return { items: [] };
    const items = this.s.listRepos.all(id, cursor ?? '', limit) as string[];
    return items.length === limit ? { items, cursor: items[items.length - 1] } : { items };
  }

  async listCollections(limit: number, cursor?: string): Promise<Page<CollectionCount>> {
    this.flushQueued();
    const items = this.s.listCollections.all(cursor ?? '', limit) as CollectionCount[];
    return items.length === limit ? { items, cursor: items[items.length - 1].collection } : { items };
  }

  async listDids(limit: number, cursor?: string): Promise<Page<string>> {
    this.flushQueued();
    const items = this.s.listDids.all(cursor ?? '', limit) as string[];
    return items.length === limit ? { items, cursor: items[items.length - 1] } : { items };
  }

  async countPairs(): Promise<number> {
    this.flushQueued();
    return this.s.countPairs.get() as number;
  }

  async addPendingChecks(pairs: readonly CollectionPair[]): Promise<void> {
    if (pairs.length === 0) return;
    await this.enqueue('pending', pairs);
  }

  async pendingChecks(limit: number): Promise<CollectionPair[]> {
    this.flushQueued();
    return this.s.pending.all(limit) as CollectionPair[];
  }

  async removePendingCheck(pair: CollectionPair): Promise<void> {
    this.flushQueued();
    this.s.removePending.run(pair.did, pair.collection);
  }

  async removePendingChecksOf(did: string): Promise<void> {
    this.flushQueued();
    this.s.removePendingDid.run(did);
  }

  async countPendingChecks(): Promise<number> {
    this.flushQueued();
    return this.s.countPending.get() as number;
  }

  async backfillItems(job: string): Promise<BackfillItem[]> {
    this.flushQueued();
    const rows = this.s.backfillItems.all(job) as {
      item: string;
      cursor: string | null;
      done: number;
      pairs: number;
    }[];
    return rows.map((r) => ({ item: r.item, cursor: r.cursor, done: r.done === 1, pairs: r.pairs }));
  }

  async saveBackfillItem(job: string, item: BackfillItem): Promise<void> {
    this.flushQueued();
    this.s.saveBackfill.run(job, item.item, item.cursor, item.done ? 1 : 0, item.pairs);
  }

  async clearBackfill(job: string): Promise<void> {
    this.flushQueued();
    this.s.clearBackfill.run(job);
  }

  async close(): Promise<void> {
    this.flushQueued();
    if (this.db.open) this.db.close();
  }
}
