// Metadata store benchmark: bulk-loads N accounts (default 1M) spread over
// 3,000 hosts, then measures what the relay does per event and per flush:
// DID lookups through the cache (hits) and straight from the database
// (cache disabled), rev-gated head updates, and the cost of one coalesced
// cursor flush for all 3,000 hosts. Async cases run with 1, 16 (and for head
// updates 256) operations in flight: the relay handles many hosts at once.
// Everything lives in a temp directory / throwaway PostgreSQL schema that is
// removed at the end.
//
// Run: node --import tsx bench/store.bench.ts [--accounts 1000000] [--backend sqlite|postgres|both]
//        [--seconds 3] [--hosts 3000]   (PostgreSQL: BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { seededRandom } from '../sim/prng.ts';
import type { MetadataStore, NewAccount } from '../src/store/metadata-store.ts';
import {
  type OpenMetadataStoreOptions,
  openMetadataStore,
  SQLITE_FILE_NAME,
} from '../src/store/open-store.ts';

const { values: args } = parseArgs({
  options: {
    accounts: { type: 'string', default: '1000000' },
    backend: { type: 'string', default: 'both' },
    seconds: { type: 'string', default: '3' },
    hosts: { type: 'string', default: '3000' },
  },
});
const ACCOUNTS = Number(args.accounts);
const HOSTS = Number(args.hosts);
const SECONDS = Number(args.seconds);
const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const IMPORT_BATCH = 10_000;
const CACHED_SET = 50_000;

if (!['sqlite', 'postgres', 'both'].includes(args.backend))
  throw new Error('--backend: sqlite|postgres|both');
if (!Number.isSafeInteger(ACCOUNTS) || ACCOUNTS < 1000) throw new Error('--accounts: an integer >= 1000');

const rng = seededRandom;

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';
/** A did:plc-shaped DID (24 base32 chars) derived from an index. */
function didFor(i: number): string {
  let x = BigInt(i) * 0x9e3779b97f4a7c15n + 0x1234567n;
  let s = '';
  for (let k = 0; k < 24; k++) {
    s += B32[Number(x & 31n)];
    x = (x >> 5n) ^ (BigInt(i + k) * 0x5851f42dn);
  }
  return `did:plc:${s}`;
}

let revCounter = 0;
const nextRev = () => `3m${String(++revCounter).padStart(11, '0')}`;
const CID = 'bafyreib2rxk3rybk3aobmv5cjuql3bm2twh4jo5uxgf5n2jbvyc2zbwhae';

interface Rate {
  opsPerSec: number;
  usPerOp: number;
}

async function measure(seconds: number, inFlight: number, op: () => Promise<unknown>): Promise<Rate> {
  const run = async (budgetMs: number) => {
    let ops = 0;
    const deadline = performance.now() + budgetMs;
    const worker = async () => {
      while (performance.now() < deadline) {
        await op();
        ops++;
      }
    };
    const start = performance.now();
    await Promise.all(Array.from({ length: inFlight }, worker));
    return { ops, ms: performance.now() - start };
  };
  await run(seconds * 250); // warm-up
  const { ops, ms } = await run(seconds * 1000);
  return { opsPerSec: (ops / ms) * 1000, usPerOp: (ms * 1000) / ops };
}

interface Location {
  options: OpenMetadataStoreOptions;
  sizeBytes(): Promise<number>;
  destroy(): Promise<void>;
}

async function sqliteLocation(): Promise<Location> {
  const dataDir = mkdtempSync(join(tmpdir(), 'atrelay-bench-'));
  const size = (f: string) => {
    try {
      return statSync(join(dataDir, f)).size;
    } catch {
      return 0;
    }
  };
  return {
    options: { dataDir },
    sizeBytes: async () => size(SQLITE_FILE_NAME) + size(`${SQLITE_FILE_NAME}-wal`),
    destroy: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

async function postgresLocation(): Promise<Location> {
  const schema = `atrelay_bench_${randomBytes(5).toString('hex')}`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>) => {
    const c = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  await admin((c) => c.query(`CREATE SCHEMA ${schema}`));
  return {
    options: { dataDir: tmpdir(), databaseUrl: PG_URL, pgSchema: schema },
    sizeBytes: () =>
      admin(async (c) => {
        const res = await c.query<{ n: string }>(
          `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint AS n
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = $1 AND c.relkind = 'r'`,
          [schema],
        );
        return Number(res.rows[0].n);
      }),
    destroy: () => admin((c) => c.query(`DROP SCHEMA ${schema} CASCADE`)).then(() => {}),
  };
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const results: Record<string, Record<string, string>> = {};
function record(backend: string, name: string, value: string): void {
  results[name] ??= {};
  results[name][backend] = value;
  console.log(`  ${name.padEnd(44)} ${value}`);
}

async function runBackend(backend: 'sqlite' | 'postgres'): Promise<void> {
  console.log(`\n[${backend}] ${fmt(ACCOUNTS)} accounts, ${fmt(HOSTS)} hosts`);
  const loc = backend === 'sqlite' ? await sqliteLocation() : await postgresLocation();
  const opened: MetadataStore[] = [];
  const open = async (cacheSize: number) => {
    const s = await openMetadataStore({ ...loc.options, cacheSize, cursorFlushMs: 0, pgPoolSize: 16 });
    opened.push(s);
    return s;
  };
  try {
    const store = await open(100_000);
    const hostIds: number[] = [];
    for (let h = 0; h < HOSTS; h++) {
      hostIds.push(
        (await store.createHost({ hostname: `pds${h}.bench.example`, accountLimit: 1_000_000 })).value.id,
      );
    }

    let t = performance.now();
    for (let start = 0; start < ACCOUNTS; start += IMPORT_BATCH) {
      const batch: NewAccount[] = [];
      for (let i = start; i < Math.min(ACCOUNTS, start + IMPORT_BATCH); i++) {
        batch.push({ did: didFor(i), hostId: hostIds[i % HOSTS] });
      }
      await store.importAccounts(batch);
    }
    const loadMs = performance.now() - t;
    record(
      backend,
      'bulk load (accounts/s, batches of 10k)',
      `${fmt((ACCOUNTS / loadMs) * 1000)} (${(loadMs / 1000).toFixed(1)} s)`,
    );

    const pick = rng(42);
    const uncached = await open(0);
    for (const inFlight of [1, 16]) {
      const r = await measure(SECONDS, inFlight, () =>
        uncached.getAccountByDid(didFor(Math.floor(pick() * ACCOUNTS))),
      );
      record(
        backend,
        `lookup by DID, uncached, ${inFlight} in flight (/s)`,
        `${fmt(r.opsPerSec)} (${r.usPerOp.toFixed(1)} µs)`,
      );
    }

    const hot = Array.from({ length: CACHED_SET }, (_, k) => didFor(Math.floor((k * ACCOUNTS) / CACHED_SET)));
    for (const did of hot) await store.getAccountByDid(did);
    const before = store.cacheStats();
    const r1 = await measure(SECONDS, 1, () => store.getAccountByDid(hot[Math.floor(pick() * CACHED_SET)]));
    const after = store.cacheStats();
    const hitRate = (after.hits - before.hits) / (after.hits + after.misses - before.hits - before.misses);
    record(
      backend,
      'lookup by DID, cached (/s)',
      `${fmt(r1.opsPerSec)} (${r1.usPerOp.toFixed(2)} µs, hit rate ${(hitRate * 100).toFixed(1)}%)`,
    );

    // uids are assigned from 1 in import order on a fresh database.
    for (const inFlight of [1, 16, 256]) {
      const r = await measure(SECONDS, inFlight, async () => {
        const applied = await store.updateAccountHead(1 + Math.floor(pick() * ACCOUNTS), {
          rev: nextRev(),
          commitCid: CID,
          dataCid: CID,
        });
        if (!applied) throw new Error('head update not applied');
      });
      record(
        backend,
        `head update, ${inFlight} in flight (/s)`,
        `${fmt(r.opsPerSec)} (${r.usPerOp.toFixed(1)} µs)`,
      );
    }

    // updateAccountHeads: one call (one SQLite transaction / PostgreSQL round trip) per batch.
    for (const batch of [128, 1024]) {
      const r = await measure(SECONDS, 1, async () => {
        const updates = Array.from({ length: batch }, () => ({
          uid: 1 + Math.floor(pick() * ACCOUNTS),
          head: { rev: nextRev(), commitCid: CID, dataCid: CID },
        }));
        const applied = await store.updateAccountHeads(updates);
        if (!applied.every(Boolean)) throw new Error('batched head update not applied');
      });
      record(
        backend,
        `head updates, batches of ${fmt(batch)} (heads/s)`,
        `${fmt(r.opsPerSec * batch)} (${(r.usPerOp / batch).toFixed(1)} µs/head)`,
      );
    }

    let seq = 0;
    t = performance.now();
    const UPDATES = 1_000_000;
    for (let i = 0; i < UPDATES; i++) store.updateHostCursor(hostIds[i % HOSTS], ++seq);
    const updateNs = ((performance.now() - t) * 1e6) / UPDATES;
    record(backend, 'cursor update in memory (ns)', updateNs.toFixed(0));
    await store.flushCursors();
    const flushMs: number[] = [];
    for (let round = 0; round < 20; round++) {
      for (const id of hostIds) store.updateHostCursor(id, ++seq);
      t = performance.now();
      await store.flushCursors();
      flushMs.push(performance.now() - t);
    }
    flushMs.sort((a, b) => a - b);
    record(
      backend,
      `cursor flush, ${fmt(HOSTS)} hosts changed (ms)`,
      `median ${flushMs[10].toFixed(1)}, max ${flushMs[19].toFixed(1)}`,
    );

    t = performance.now();
    await store.countAccountsByHost(hostIds[0]);
    record(backend, 'count accounts of one host (ms)', (performance.now() - t).toFixed(2));
    t = performance.now();
    let after2: number | undefined;
    let pages = 0;
    for (; pages < 100; pages++) {
      const page = await store.listAccounts({ after: after2, limit: 1000 });
      if (page.length === 0) break;
      after2 = page[page.length - 1].uid;
    }
    record(backend, 'listAccounts page of 1,000 (ms)', ((performance.now() - t) / pages).toFixed(2));
    record(backend, 'size on disk (MB)', ((await loc.sizeBytes()) / 1e6).toFixed(0));
  } finally {
    for (const s of opened) await s.close();
    await loc.destroy();
  }
}

const backends =
  args.backend === 'both' ? (['sqlite', 'postgres'] as const) : [args.backend as 'sqlite' | 'postgres'];
const started = new Date();
for (const b of backends) await runBackend(b);
console.log(`\nstarted ${started.toISOString()}, node ${process.version}`);
console.log(JSON.stringify(results, null, 2));
