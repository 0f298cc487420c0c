// Collection index benchmark: bulk-loads N (DID, collection) pairs (default
// 10M) shaped like the network — ~4 collections per account, 300 collections
// with Zipf-like popularity, random plc DIDs, inserted account by account as
// a hosts backfill or the firehose would — then measures, on the loaded
// index: firehose-style single-pair inserts and deletes (one call per
// commit), batched inserts (100 pairs per call), and listReposByCollection
// pages (limit 500 and 2000) at random cursors in popular collections
// (measured first, right after the load; PostgreSQL gets the VACUUM ANALYZE
// autovacuum would have run, so index-only scans skip the heap).
// Rates are wall-clock (the store's I/O is the point); the machine is shared,
// so the load average is printed with the results. Everything lives in a temp
// directory / throwaway PostgreSQL schema removed at the end.
//
// Run: node --import tsx bench/collections.bench.ts [--pairs 10000000] [--backend sqlite|postgres|both]
//        [--seconds 5] [--concurrency 16]
//      (PostgreSQL: BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { seededRandom } from '../sim/prng.ts';
import type { CollectionIndexStore, CollectionPair } from '../src/collections/index-store.ts';
import { PostgresCollectionIndex } from '../src/collections/postgres-index.ts';
import { COLLECTIONS_SQLITE_FILE, SqliteCollectionIndex } from '../src/collections/sqlite-index.ts';

const { values: args } = parseArgs({
  options: {
    pairs: { type: 'string', default: '10000000' },
    backend: { type: 'string', default: 'both' },
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
  },
});
const PAIRS = Number(args.pairs);
const SECONDS = Number(args.seconds);
const CONCURRENCY = Number(args.concurrency);
const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const LOAD_BATCH = 10_000;
const COLLECTIONS = 300;
// Accounts kept aside as cursors and delete targets: ~100k pairs whatever N is.
const SAMPLE_RATE = Math.min(1, 25_000 / (PAIRS / 4));

if (!['sqlite', 'postgres', 'both'].includes(args.backend))
  throw new Error('--backend: sqlite|postgres|both');
if (!Number.isSafeInteger(PAIRS) || PAIRS < 10_000) throw new Error('--pairs: an integer >= 10000');

const rng = seededRandom;

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
function plcDid(r: () => number): string {
  let s = 'did:plc:';
  for (let i = 0; i < 24; i++) s += B32[Math.floor(r() * 32)];
  return s;
}

const collectionNames = Array.from({ length: COLLECTIONS }, (_, i) =>
  i < 8
    ? [
        'app.bsky.feed.like',
        'app.bsky.feed.post',
        'app.bsky.graph.follow',
        'app.bsky.actor.profile',
        'app.bsky.feed.repost',
        'app.bsky.graph.block',
        'chat.bsky.actor.declaration',
        'app.bsky.graph.list',
      ][i]
    : `com.example.app${i}.record`,
);
// Zipf-like weights: collection i has weight 1/(i+1).
const cumulative: number[] = [];
{
  let acc = 0;
  for (let i = 0; i < COLLECTIONS; i++) {
    acc += 1 / (i + 1);
    cumulative.push(acc);
  }
  for (let i = 0; i < COLLECTIONS; i++) cumulative[i] /= acc;
}
function pickCollection(r: () => number): string {
  const x = r();
  let lo = 0;
  let hi = COLLECTIONS - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cumulative[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return collectionNames[lo];
}

/** Pairs of one account: 1–7 distinct collections (mean ~4). */
function accountPairs(r: () => number): CollectionPair[] {
  const did = plcDid(r);
  const k = 1 + Math.floor(r() * 7);
  const set = new Set<string>();
  for (let tries = 0; set.size < k && tries < 30; tries++) set.add(pickCollection(r));
  return [...set].map((collection) => ({ did, collection }));
}

interface Backend {
  name: string;
  open(): Promise<CollectionIndexStore>;
  /** maintenance a deployment would have done by now (PostgreSQL: what autovacuum does) */
  afterLoad?(): Promise<void>;
  size(): Promise<string>;
  destroy(): Promise<void>;
}

function sqliteBackend(): Backend {
  const dir = mkdtempSync(join(tmpdir(), 'atrelay-collbench-'));
  const path = join(dir, COLLECTIONS_SQLITE_FILE);
  return {
    name: 'sqlite',
    open: async () => new SqliteCollectionIndex({ path }),
    size: async () => {
      let n = statSync(path).size;
      try {
        n += statSync(`${path}-wal`).size;
      } catch {}
      return `${(n / 1e9).toFixed(2)} GB (file + WAL)`;
    },
    destroy: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

function postgresBackend(): Backend {
  const schema = `atrelay_collbench_${randomBytes(5).toString('hex')}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: PG_URL });
    await c.connect();
    try {
      return await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return {
    name: 'postgres',
    open: async () => {
      await admin(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      return PostgresCollectionIndex.open({ connectionString: PG_URL, schema, poolSize: 8 });
    },
    size: async () => {
      const r = await admin(
        `SELECT sum(pg_total_relation_size(c.oid))::bigint AS n FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '${schema}' AND c.relkind = 'r'`,
      );
      return `${(Number(r.rows[0].n) / 1e9).toFixed(2)} GB (tables + indexes)`;
    },
    afterLoad: async () => {
      await admin(`VACUUM ANALYZE ${schema}.coll_pairs, ${schema}.coll_names`);
    },
    destroy: async () => {
      await admin(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}

/**
 * Runs `op` for SECONDS with `inFlight` calls outstanding, or until it
 * returns false (out of work); returns calls/s (wall).
 */
async function timed(inFlight: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  let next = 0;
  let exhausted = false;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (!exhausted && performance.now() < end) {
        if ((await op(next++)) === false) {
          exhausted = true;
          break;
        }
        done++;
      }
    }),
  );
  return done / ((performance.now() - t0) / 1000);
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

async function runBackend(b: Backend): Promise<void> {
  const store = await b.open();
  const r = rng(42);
  const sampleDids: string[] = [];
  const samplePairs: CollectionPair[] = [];
  console.log(
    `\n== ${b.name}: loading ${fmt(PAIRS)} pairs (load average ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')})`,
  );
  const t0 = performance.now();
  let loaded = 0;
  let batch: CollectionPair[] = [];
  let lastReport = t0;
  while (loaded < PAIRS) {
    const ps = accountPairs(r);
    if (r() < SAMPLE_RATE) {
      sampleDids.push(ps[0].did);
      samplePairs.push(...ps);
    }
    batch.push(...ps);
    loaded += ps.length;
    if (batch.length >= LOAD_BATCH || loaded >= PAIRS) {
      await store.addPairs(batch);
      batch = [];
      const now = performance.now();
      if (now - lastReport > 30_000) {
        lastReport = now;
        const rate = loaded / ((now - t0) / 1000);
        process.stdout.write(`  ${fmt(loaded)} pairs, ${fmt(rate)}/s\n`);
      }
    }
  }
  const loadSec = (performance.now() - t0) / 1000;
  const total = await store.countPairs();
  console.log(
    `bulk load (batches of ${fmt(LOAD_BATCH)}): ${fmt(total)} pairs in ${loadSec.toFixed(1)} s = ${fmt(total / loadSec)} pairs/s`,
  );
  console.log(`size: ${await b.size()}`);
  if (b.afterLoad) {
    const v0 = performance.now();
    await b.afterLoad();
    console.log(`VACUUM ANALYZE after load: ${((performance.now() - v0) / 1000).toFixed(1)} s`);
  }
  sampleDids.sort();

  const inFlight = b.name === 'sqlite' ? 1 : CONCURRENCY;
  const results: [string, number][] = [];
  const rr = rng(7);
  // Reads first, on the freshly loaded (and, for PostgreSQL, vacuumed) index.
  for (const limit of [500, 2000]) {
    for (const top of [1, 50]) {
      results.push([
        `listReposByCollection limit ${limit}, top-${top} collections, random cursor (${inFlight} in flight)`,
        await timed(inFlight, () =>
          store.listRepos(
            collectionNames[Math.floor(rr() * top)],
            limit,
            sampleDids[Math.floor(rr() * sampleDids.length)],
          ),
        ),
      ]);
    }
  }
  // Firehose-style: a commit creating the account's first record of a collection.
  results.push([
    `insert 1 new pair per call (${inFlight} in flight)`,
    await timed(inFlight, () => store.addPairs([{ did: plcDid(rr), collection: pickCollection(rr) }])),
  ]);
  results.push([
    `insert 1 existing pair per call (no-op, ${inFlight} in flight)`,
    await timed(inFlight, (i) => store.addPairs([samplePairs[i % samplePairs.length]])),
  ]);
  const perBatch = await timed(inFlight, () =>
    store.addPairs(Array.from({ length: 100 }, () => ({ did: plcDid(rr), collection: pickCollection(rr) }))),
  );
  results.push([`insert 100 new pairs per call, pairs/s (${inFlight} in flight)`, perBatch * 100]);
  let di = 0;
  results.push([
    `delete 1 pair per call (${inFlight} in flight)`,
    await timed(inFlight, async () => {
      const p = samplePairs[di++];
      if (!p) return;
      await store.removePairs([p]);
    }),
  ]);
  if (di >= samplePairs.length)
    console.log(`  (delete sample of ${samplePairs.length} exhausted; rate is optimistic)`);
  const width = Math.max(...results.map(([n]) => n.length));
  for (const [n, v] of results) console.log(`${n.padEnd(width)}  ${fmt(v).padStart(10)} /s`);
  console.log(
    `load average after: ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}`,
  );
  await store.close();
}

const chosen = args.backend === 'both' ? ['sqlite', 'postgres'] : [args.backend];
for (const name of chosen) {
  const b = name === 'sqlite' ? sqliteBackend() : postgresBackend();
  try {
    await runBackend(b);
  } finally {
    await b.destroy();
  }
}
