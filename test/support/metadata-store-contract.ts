// The shared metadata store test suite: one describe() body run against every
// backend (metadata-store.test.ts calls it for SQLite and PostgreSQL), so the
// two implementations are held to exactly the same behaviour. A harness hands
// each test a fresh, empty database location and removes it afterwards.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MetadataStore, RepoHead } from '../../src/store/metadata-store.ts';
import type { MigrationResult } from '../../src/store/migrations.ts';
import { type OpenMetadataStoreOptions, openMetadataStore } from '../../src/store/open-store.ts';
import type { RelayMetadataStoreOptions } from '../../src/store/store.ts';
import { waitFor } from './wait.ts';

export interface StoreLocation {
  /** Options that open this location through openMetadataStore (also passed to child processes). */
  options: OpenMetadataStoreOptions;
  /** Runs the migrations again outside a store (must be a no-op after the first open). */
  migrate(): Promise<MigrationResult>;
  /** Runs the migrations from `n` independent connections at once. */
  migrateConcurrently?(n: number): Promise<MigrationResult[]>;
  /** Number of rows in schema_migrations. */
  countMigrationRows(): Promise<number>;
  destroy(): Promise<void>;
}

export interface StoreHarness {
  fresh(): Promise<StoreLocation>;
}

const head = (n: number, tag = ''): RepoHead => ({
  rev: `3l${String(n).padStart(11, '0')}`,
  commitCid: `bafycommit${tag}${n}`,
  dataCid: `bafydata${tag}${n}`,
});

export function describeMetadataStore(name: string, harness: StoreHarness): void {
  const withStore = async (
    fn: (store: MetadataStore, loc: StoreLocation) => Promise<void>,
    opts: RelayMetadataStoreOptions = {},
  ): Promise<void> => {
    const loc = await harness.fresh();
    const store = await openMetadataStore({ cursorFlushMs: 0, ...loc.options, ...opts });
    try {
      await fn(store, loc);
    } finally {
      await store.close();
      await loc.destroy();
    }
  };

  describe(`metadata store: ${name}`, () => {
    it('runs migrations at open, and running them again is a no-op', async () => {
      const loc = await harness.fresh();
      try {
        const store = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        await store.healthCheck();
        await store.close();
        await store.close(); // idempotent
        assert.deepEqual(await loc.migrate(), { applied: [], current: 1 });
        const again = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        await again.close();
        assert.equal(await loc.countMigrationRows(), 1);
      } finally {
        await loc.destroy();
      }
    });

    if (name === 'postgres') {
      it('serialises concurrent migrations with an advisory lock', async () => {
        const loc = await harness.fresh();
        try {
          assert.ok(loc.migrateConcurrently);
          const results = await loc.migrateConcurrently(3);
          const applied = results.map((r) => r.applied.length).sort();
          assert.deepEqual(applied, [0, 0, 1]);
          assert.equal(await loc.countMigrationRows(), 1);
        } finally {
          await loc.destroy();
        }
      });
    }

    it('migrates safely when two processes open a new database at once', async () => {
      const loc = await harness.fresh();
      try {
        const fixture = fileURLToPath(new URL('./metadata-store-open-once.ts', import.meta.url));
        const runChild = () =>
          new Promise<string>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(loc.options)], {
              stdio: ['ignore', 'pipe', 'pipe'],
            });
            let out = '';
            child.stdout.on('data', (d: Buffer) => {
              out += d.toString();
            });
            child.stderr.on('data', (d: Buffer) => {
              out += d.toString();
            });
            child.on('exit', (code) =>
              code === 0 ? resolve(out.trim()) : reject(new Error(`child failed: ${out}`)),
            );
          });
        assert.deepEqual(await Promise.all([runChild(), runChild()]), ['ok', 'ok']);
        assert.equal(await loc.countMigrationRows(), 1);
      } finally {
        await loc.destroy();
      }
    });

    it('creates hosts idempotently by normalised hostname', async () => {
      await withStore(async (store) => {
        const a = await store.createHost({ hostname: 'PDS.Example.COM.', accountLimit: 50 });
        assert.equal(a.created, true);
        assert.equal(a.value.hostname, 'pds.example.com');
        assert.equal(a.value.tls, true);
        assert.equal(a.value.status, 'active');
        assert.equal(a.value.cursor, 0);
        assert.equal(a.value.accountLimit, 50);
        assert.equal(a.value.accountCount, 0);
        assert.equal(a.value.trusted, false);
        assert.ok(a.value.createdAt instanceof Date);
        const b = await store.createHost({ hostname: 'https://pds.example.com/' });
        assert.equal(b.created, false);
        assert.equal(b.value.id, a.value.id);
        const dev = await store.createHost({ hostname: 'localhost:2583', tls: false, trusted: true });
        assert.equal(dev.value.tls, false);
        assert.equal(dev.value.trusted, true);
        assert.deepEqual(await store.getHostByHostname('LOCALHOST:2583'), dev.value);
        assert.deepEqual(await store.getHost(a.value.id), a.value);
        assert.equal(await store.getHost(999_999), undefined);
        assert.equal(await store.getHostByHostname('nope.example.com'), undefined);
        await assert.rejects(store.createHost({ hostname: 'bad host!' }), /invalid hostname/);
      });
    });

    it('updates host status, failures, limits and trust, and counts by status', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'a.example.com' });
        await store.createHost({ hostname: 'b.example.com' });
        const updated = await store.setHostStatus(h.id, 'throttled');
        assert.equal(updated?.status, 'throttled');
        assert.equal(await store.setHostStatus(999_999, 'idle'), undefined);
        await assert.rejects(async () => store.setHostStatus(h.id, 'weird' as 'idle'), /unknown host status/);
        assert.equal(await store.recordHostFailure(h.id), 1);
        assert.equal(await store.recordHostFailure(h.id), 2);
        assert.equal((await store.getHost(h.id))?.failures, 2);
        await store.resetHostFailures(h.id);
        assert.equal((await store.getHost(h.id))?.failures, 0);
        await store.setHostAccountLimit(h.id, 5000);
        await store.setHostTrusted(h.id, true);
        const after = await store.getHost(h.id);
        assert.equal(after?.accountLimit, 5000);
        assert.equal(after?.trusted, true);
        assert.ok((after?.updatedAt.getTime() ?? 0) >= h.updatedAt.getTime());
        const counts = await store.countHostsByStatus();
        assert.deepEqual(counts, { active: 1, idle: 0, offline: 0, throttled: 1, banned: 0, blocked: 0 });
      });
    });

    it('paginates hosts by id to the end, optionally by status', async () => {
      await withStore(async (store) => {
        const ids: number[] = [];
        for (let i = 0; i < 23; i++) {
          const { value } = await store.createHost({ hostname: `h${i}.example.com` });
          ids.push(value.id);
          if (i % 3 === 0) await store.setHostStatus(value.id, 'offline');
        }
        const seen: number[] = [];
        let after: number | undefined;
        for (;;) {
          const page = await store.listHosts({ after, limit: 5 });
          if (page.length === 0) break;
          assert.ok(page.length <= 5);
          seen.push(...page.map((h) => h.id));
          after = page[page.length - 1].id;
        }
        assert.deepEqual(seen, ids);
        const offline = await store.listHosts({ limit: 100, status: 'offline' });
        assert.equal(offline.length, 8);
        assert.ok(offline.every((h) => h.status === 'offline'));
        await assert.rejects(async () => store.listHosts({ limit: 0 }), /page limit/);
      });
    });

    it('creates accounts idempotently, assigns uids and keeps host account counts', async () => {
      await withStore(async (store) => {
        const { value: h1 } = await store.createHost({ hostname: 'one.example.com' });
        const { value: h2 } = await store.createHost({ hostname: 'two.example.com' });
        const a = await store.createAccount({ did: 'did:plc:alice', hostId: h1.id });
        assert.equal(a.created, true);
        assert.ok(a.value.uid > 0);
        assert.equal(a.value.status, 'active');
        assert.equal(a.value.upstreamStatus, 'active');
        assert.equal(a.value.head, null);
        const again = await store.createAccount({ did: 'did:plc:alice', hostId: h2.id });
        assert.equal(again.created, false);
        assert.deepEqual(again.value, a.value);
        const b = await store.createAccount({
          did: 'did:plc:bob',
          hostId: h1.id,
          upstreamStatus: 'deactivated',
        });
        assert.ok(b.value.uid > a.value.uid);
        assert.equal(b.value.upstreamStatus, 'deactivated');
        assert.equal((await store.getHost(h1.id))?.accountCount, 2);
        assert.equal(await store.countAccountsByHost(h1.id), 2);
        assert.deepEqual(await store.getAccountByUid(a.value.uid), a.value);
        assert.equal(await store.getAccountByUid(999_999), undefined);
        assert.equal(await store.getAccountByDid('did:plc:nobody'), undefined);
        await assert.rejects(store.createAccount({ did: 'alice', hostId: h1.id }), /invalid DID/);
        // Moving an account between hosts moves the count with it, atomically.
        const moved = await store.setAccountHost(b.value.uid, h2.id);
        assert.equal(moved?.hostId, h2.id);
        assert.equal((await store.getHost(h1.id))?.accountCount, 1);
        assert.equal((await store.getHost(h2.id))?.accountCount, 1);
        assert.equal(await store.countAccountsByHost(h2.id), 1);
        assert.equal(await store.setAccountHost(999_999, h2.id), undefined);
      });
    });

    it('bulk-imports accounts, skipping existing DIDs', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'bulk.example.com' });
        await store.createAccount({ did: 'did:plc:a5', hostId: h.id });
        const batch = Array.from({ length: 50 }, (_, i) => ({ did: `did:plc:a${i}`, hostId: h.id }));
        assert.equal(await store.importAccounts(batch), 49);
        assert.equal(await store.importAccounts(batch), 0);
        assert.equal(await store.importAccounts([]), 0);
        assert.equal((await store.getHost(h.id))?.accountCount, 50);
        assert.equal(await store.countAccountsByHost(h.id), 50);
      });
    });

    it('sets local and upstream status, paginates accounts to the end, lists throttled', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'p.example.com' });
        const uids: number[] = [];
        for (let i = 0; i < 17; i++) {
          const { value } = await store.createAccount({ did: `did:plc:p${i}`, hostId: h.id });
          uids.push(value.uid);
        }
        assert.equal((await store.setAccountStatus(uids[3], 'throttled'))?.status, 'throttled');
        await store.setAccountStatus(uids[9], 'throttled');
        assert.equal(
          (await store.setAccountUpstreamStatus(uids[4], 'deactivated'))?.upstreamStatus,
          'deactivated',
        );
        assert.equal(await store.setAccountStatus(999_999, 'active'), undefined);
        await assert.rejects(
          async () => store.setAccountStatus(uids[0], 'gone' as 'active'),
          /unknown account/,
        );

        const collect = async (activeOnly: boolean) => {
          const out: number[] = [];
          let after: number | undefined;
          for (;;) {
            const page = await store.listAccounts({ after, limit: 4, activeOnly });
            if (page.length === 0) return out;
            out.push(...page.map((a) => a.uid));
            after = page[page.length - 1].uid;
          }
        };
        assert.deepEqual(await collect(false), uids);
        const inactive = new Set([uids[3], uids[4], uids[9]]);
        assert.deepEqual(
          await collect(true),
          uids.filter((u) => !inactive.has(u)),
        );
        const throttled = await store.listThrottledAccounts(h.id, { limit: 10 });
        assert.deepEqual(
          throttled.map((a) => a.uid),
          [uids[3], uids[9]],
        );
        const second = await store.listThrottledAccounts(h.id, { after: uids[3], limit: 10 });
        assert.deepEqual(
          second.map((a) => a.uid),
          [uids[9]],
        );
      });
    });

    it('updates a repo head only when the new rev is greater', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'r.example.com' });
        const { value: a } = await store.createAccount({ did: 'did:plc:rev', hostId: h.id });
        await store.getAccountByDid('did:plc:rev'); // cached from here on
        assert.equal(await store.updateAccountHead(a.uid, head(5)), true);
        assert.deepEqual((await store.getAccountByDid('did:plc:rev'))?.head, head(5));
        assert.equal(await store.updateAccountHead(a.uid, head(5, 'x')), false, 'equal rev');
        assert.equal(await store.updateAccountHead(a.uid, head(4)), false, 'lower rev');
        assert.equal(await store.updateAccountHead(a.uid, head(10)), true);
        // '3l…10' > '3l…9' as strings because TIDs are fixed width.
        assert.equal(await store.updateAccountHead(a.uid, head(9)), false);
        assert.deepEqual((await store.getAccountByDid('did:plc:rev'))?.head, head(10));
        assert.deepEqual((await store.getAccountByUid(a.uid))?.head, head(10));
        assert.equal(await store.updateAccountHead(999_999, head(1)), false);
        // A resync may move the head backwards, or clear it.
        assert.deepEqual((await store.resetAccountHead(a.uid, head(2)))?.head, head(2));
        assert.deepEqual((await store.getAccountByDid('did:plc:rev'))?.head, head(2));
        assert.equal((await store.resetAccountHead(a.uid, null))?.head, null);
        assert.equal(await store.updateAccountHead(a.uid, head(1)), true);
        await assert.rejects(
          store.updateAccountHead(a.uid, { rev: '', commitCid: 'x', dataCid: 'y' }),
          /rev/,
        );
      });
    });

    it('applies concurrent head updates with the same rev gating as sequential ones', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'cc.example.com' });
        await store.importAccounts(
          Array.from({ length: 40 }, (_, i) => ({ did: `did:plc:cc${i}`, hostId: h.id })),
        );
        const accounts = await store.listAccounts({ limit: 40 });
        const results = await Promise.all(
          accounts.map((a, i) => store.updateAccountHead(a.uid, head(100 + i))),
        );
        assert.ok(results.every((r) => r === true));
        // Many revs for one account at once: applied in call order, exactly as if sequential.
        const target = accounts[0];
        const revs = [150, 120, 180, 110, 170, 160];
        const same = await Promise.all(revs.map((n) => store.updateAccountHead(target.uid, head(n))));
        assert.deepEqual(same, [true, false, true, false, false, false]);
        assert.deepEqual((await store.getAccountByUid(target.uid))?.head, head(180));
        assert.deepEqual((await store.getAccountByDid(target.did))?.head, head(180));
        for (const [i, a] of accounts.entries()) {
          if (i > 0) assert.deepEqual((await store.getAccountByUid(a.uid))?.head, head(100 + i));
        }
      });
    });

    it('applies a batch of head updates rev-gated, in order, keeping the cache exact', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'batch.example.com' });
        const [a, b, c] = await Promise.all(
          ['a', 'b', 'c'].map(
            async (x) => (await store.createAccount({ did: `did:plc:batch${x}`, hostId: h.id })).value,
          ),
        );
        for (const acc of [a, b, c]) await store.getAccountByDid(acc.did); // cached from here on
        assert.deepEqual(await store.updateAccountHeads([]), [], 'empty batch');

        assert.equal(await store.updateAccountHead(a.uid, head(5)), true);
        assert.deepEqual(
          await store.updateAccountHeads([
            { uid: a.uid, head: head(6) },
            { uid: b.uid, head: head(1) },
            { uid: c.uid, head: head(3) },
          ]),
          [true, true, true],
        );
        // Mixed: equal rev, lower rev, unknown uid, greater rev.
        assert.deepEqual(
          await store.updateAccountHeads([
            { uid: a.uid, head: head(6, 'x') },
            { uid: b.uid, head: head(0) },
            { uid: 999_999, head: head(1) },
            { uid: c.uid, head: head(4) },
          ]),
          [false, false, false, true],
        );
        // One uid several times: as if applied one after the other.
        assert.deepEqual(
          await store.updateAccountHeads([
            { uid: a.uid, head: head(10) },
            { uid: a.uid, head: head(8) },
            { uid: b.uid, head: head(2) },
            { uid: a.uid, head: head(12) },
            { uid: a.uid, head: head(12, 'y') },
            { uid: a.uid, head: head(11) },
          ]),
          [true, false, true, true, false, false],
        );
        for (const [acc, want] of [
          [a, head(12)],
          [b, head(2)],
          [c, head(4)],
        ] as const) {
          assert.deepEqual((await store.getAccountByDid(acc.did))?.head, want, `cached ${acc.did}`);
          assert.deepEqual((await store.getAccountByUid(acc.uid))?.head, want, `stored ${acc.did}`);
        }
        // Invalid input rejects before anything is written.
        await assert.rejects(
          store.updateAccountHeads([
            { uid: b.uid, head: head(20) },
            { uid: c.uid, head: { rev: '', commitCid: 'x', dataCid: 'y' } },
          ]),
          /rev/,
        );
        assert.deepEqual((await store.getAccountByUid(b.uid))?.head, head(2));
        // With the DID the cached account is patched in place (no re-read).
        assert.deepEqual(await store.updateAccountHeads([{ uid: b.uid, did: b.did, head: head(21) }]), [
          true,
        ]);
        assert.deepEqual((await store.getAccountByDid(b.did))?.head, head(21), 'patched in the cache');
        assert.deepEqual((await store.getAccountByUid(b.uid))?.head, head(21));
      });
    });

    it('matches sequential head updates for a large batch with many repeats per uid', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'bigbatch.example.com' });
        await store.importAccounts(
          Array.from({ length: 40 }, (_, i) => ({ did: `did:plc:bb${i}`, hostId: h.id })),
        );
        const accounts = await store.listAccounts({ limit: 40 });
        for (const acc of accounts.slice(0, 10)) await store.getAccountByDid(acc.did);
        // 1,200 updates, 30 per account, revs in a scrambled but deterministic order.
        const updates = Array.from({ length: 1200 }, (_, i) => ({
          uid: accounts[i % 40].uid,
          head: head((i * 7919) % 1201),
        }));
        const best = new Map<number, number>();
        const expected = updates.map(({ uid }, i) => {
          const n = (i * 7919) % 1201;
          const cur = best.get(uid);
          if (cur !== undefined && cur >= n) return false;
          best.set(uid, n);
          return true;
        });
        assert.deepEqual(await store.updateAccountHeads(updates), expected);
        for (const acc of accounts) {
          const want = head(best.get(acc.uid) as number);
          assert.deepEqual((await store.getAccountByUid(acc.uid))?.head, want);
          assert.deepEqual((await store.getAccountByDid(acc.did))?.head, want);
        }
      });
    });

    it('serves DID lookups from a bounded cache that writes keep exact', async () => {
      await withStore(
        async (store) => {
          const { value: h } = await store.createHost({ hostname: 'c.example.com' });
          for (let i = 0; i < 6; i++) await store.createAccount({ did: `did:plc:c${i}`, hostId: h.id });
          assert.ok(store.cacheStats().size <= 4);
          const before = store.cacheStats();
          const a = await store.getAccountByDid('did:plc:c5');
          const b = await store.getAccountByDid('did:plc:c5');
          assert.deepEqual(a, b);
          assert.equal(store.cacheStats().hits, before.hits + 2);
          await store.setAccountStatus(a!.uid, 'suspended');
          assert.equal((await store.getAccountByDid('did:plc:c5'))?.status, 'suspended');
          await store.setAccountUpstreamStatus(a!.uid, 'deleted');
          assert.equal((await store.getAccountByDid('did:plc:c5'))?.upstreamStatus, 'deleted');
          // Evicted entries come back from the database.
          const missesBefore = store.cacheStats().misses;
          assert.equal((await store.getAccountByDid('did:plc:c0'))?.did, 'did:plc:c0');
          assert.equal(store.cacheStats().misses, missesBefore + 1);
          assert.equal(store.cacheStats().capacity, 4);
        },
        { cacheSize: 4 },
      );
    });

    it('answers cachedAccountByDid synchronously with what getAccountByDid would, and nothing on a miss', async () => {
      await withStore(
        async (store) => {
          const { value: h } = await store.createHost({ hostname: 'sync.example.com' });
          for (let i = 0; i < 3; i++) await store.createAccount({ did: `did:plc:s${i}`, hostId: h.id });
          assert.equal(store.cachedAccountByDid?.('did:plc:nobody'), undefined);
          const a = await store.getAccountByDid('did:plc:s2');
          assert.deepEqual(store.cachedAccountByDid?.('did:plc:s2'), a);
          // writes keep it exact, as they do the asynchronous lookup
          await store.setAccountStatus(a!.uid, 'suspended');
          assert.equal(store.cachedAccountByDid?.('did:plc:s2')?.status, 'suspended');
          await store.updateAccountHeads([{ uid: a!.uid, did: a!.did, head: head(3) }]);
          assert.deepEqual(store.cachedAccountByDid?.('did:plc:s2')?.head, head(3));
          // a lookup evicted from the bounded cache is a miss (the caller then goes to getAccountByDid)
          await store.getAccountByDid('did:plc:s0');
          await store.getAccountByDid('did:plc:s1');
          assert.equal(store.cachedAccountByDid?.('did:plc:s2'), undefined);
          assert.equal((await store.getAccountByDid('did:plc:s2'))?.status, 'suspended');
        },
        { cacheSize: 2 },
      );
    });

    it('coalesces cursor updates into one write per host and never moves storage backwards', async () => {
      await withStore(async (store, loc) => {
        const hosts = [];
        for (let i = 0; i < 3; i++)
          hosts.push((await store.createHost({ hostname: `k${i}.example.com` })).value);
        for (let seq = 1; seq <= 1000; seq++) store.updateHostCursor(hosts[seq % 3].id, seq);
        store.updateHostCursor(hosts[0].id, 5); // lower: ignored
        assert.equal(store.cursorStats().pending, 3);
        // Reads see the pending value before it is written.
        assert.equal((await store.getHost(hosts[1].id))?.cursor, 1000);
        await store.flushCursors();
        assert.deepEqual(store.cursorStats(), {
          flushes: 1,
          rowsWritten: 3,
          pending: 0,
          waitingForBarrier: false,
        });
        await store.flushCursors(); // nothing pending: no write
        assert.equal(store.cursorStats().flushes, 1);

        // A reset moves the cursor (even backwards); later lower updates cannot undo it.
        await store.resetHostCursor(hosts[0].id, 2000);
        store.updateHostCursor(hosts[0].id, 1500);
        await store.flushCursors();
        assert.equal(store.cursorStats().rowsWritten, 3, 'the lower seq wrote nothing');
        assert.equal((await store.getHost(hosts[0].id))?.cursor, 2000);
        await store.resetHostCursor(hosts[0].id, 7);
        assert.equal((await store.getHost(hosts[0].id))?.cursor, 7);

        // close() flushes what is pending.
        store.updateHostCursor(hosts[2].id, 4242);
        await store.close();
        const reopened = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        try {
          assert.equal((await reopened.getHost(hosts[2].id))?.cursor, 4242);
          assert.equal((await reopened.getHost(hosts[1].id))?.cursor, 1000);
        } finally {
          await reopened.close();
        }
      });
    });

    it('writes the log checkpoint with the cursors, and alone when only it moved', async () => {
      await withStore(async (store, loc) => {
        const { value: h } = await store.createHost({ hostname: 'cp.example.com' });
        assert.equal(await store.getLogCheckpoint(), undefined);
        let checkpoint = 10;
        store.setLogCheckpointSource(() => checkpoint);
        store.updateHostCursor(h.id, 5);
        await store.flushCursors();
        assert.equal(await store.getLogCheckpoint(), 10);
        // the checkpoint is read when the batch is taken, not later
        store.updateHostCursor(h.id, 6);
        const flushed = store.flushCursors();
        checkpoint = 99;
        await flushed;
        assert.equal(await store.getLogCheckpoint(), 10, 'the value as of the batch');
        await store.flushCursors();
        assert.equal(await store.getLogCheckpoint(), 99, 'written with no cursor change');
        const flushes = store.cursorStats().flushes;
        await store.flushCursors();
        assert.equal(store.cursorStats().flushes, flushes, 'nothing changed: no write');
        await store.close();
        const reopened = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        try {
          assert.equal(await reopened.getLogCheckpoint(), 99);
          assert.equal((await reopened.getHost(h.id))?.cursor, 6);
        } finally {
          await reopened.close();
        }
      });
    });

    it('flushes cursors on its timer', async () => {
      await withStore(
        async (store) => {
          const { value: h } = await store.createHost({ hostname: 't.example.com' });
          store.updateHostCursor(h.id, 77);
          await waitFor(() => store.cursorStats().flushes > 0, 'the timer flush');
          assert.equal(store.cursorStats().flushes, 1);
          assert.equal(store.cursorStats().pending, 0);
        },
        { cursorFlushMs: 20 },
      );
    });

    it('matches domain bans by whole-label suffix', async () => {
      await withStore(async (store) => {
        await store.addDomainBan('Example.com');
        await store.addDomainBan('example.com'); // idempotent
        assert.equal(await store.isDomainBanned('example.com'), true);
        assert.equal(await store.isDomainBanned('pds.example.com'), true);
        assert.equal(await store.isDomainBanned('a.b.EXAMPLE.com:443'), true);
        assert.equal(await store.isDomainBanned('badexample.com'), false);
        assert.equal(await store.isDomainBanned('example.com.au'), false);
        assert.equal(await store.isDomainBanned('other.org'), false);
        const bans = await store.listDomainBans();
        assert.deepEqual(
          bans.map((b) => b.domain),
          ['example.com'],
        );
        assert.equal(await store.removeDomainBan('example.com'), true);
        assert.equal(await store.removeDomainBan('example.com'), false);
        assert.equal(await store.isDomainBanned('pds.example.com'), false);
        await assert.rejects(async () => store.addDomainBan('example.com:80'), /port/);
      });
    });

    it('records takedowns, applies them to existing and future accounts, and lifts them', async () => {
      await withStore(async (store) => {
        const { value: h } = await store.createHost({ hostname: 'td.example.com' });
        const { value: a } = await store.createAccount({ did: 'did:plc:bad', hostId: h.id });
        await store.getAccountByDid('did:plc:bad');
        await store.setTakedown('did:plc:bad', 'spam');
        assert.equal(await store.isTakenDown('did:plc:bad'), true);
        assert.equal((await store.getAccountByDid('did:plc:bad'))?.status, 'takendown');
        // A takedown recorded before the account exists applies when it is created.
        await store.setTakedown('did:plc:later');
        const { value: later } = await store.createAccount({ did: 'did:plc:later', hostId: h.id });
        assert.equal(later.status, 'takendown');
        const { value: fromImport } = {
          value: await store.importAccounts([{ did: 'did:plc:zz', hostId: h.id }]),
        };
        assert.equal(fromImport, 1);
        const list = await store.listTakedowns({ limit: 1 });
        assert.equal(list.length, 1);
        assert.equal(list[0].did, 'did:plc:bad');
        assert.equal(list[0].reason, 'spam');
        const rest = await store.listTakedowns({ after: list[0].did, limit: 10 });
        assert.deepEqual(
          rest.map((t) => t.did),
          ['did:plc:later'],
        );
        assert.equal(await store.clearTakedown('did:plc:bad'), true);
        assert.equal(await store.clearTakedown('did:plc:bad'), false);
        assert.equal(await store.isTakenDown('did:plc:bad'), false);
        assert.equal((await store.getAccountByDid('did:plc:bad'))?.status, 'active');
        assert.equal((await store.getAccountByUid(a.uid))?.status, 'active');
      });
    });

    it('stores typed relay settings', async () => {
      await withStore(async (store, loc) => {
        assert.equal(await store.getSetting('newHostsPerDay'), undefined);
        await store.setSetting('newHostsPerDay', 50);
        await store.setSetting('requestCrawlEnabled', false);
        await store.setSetting('newHostsPerDay', 75);
        assert.equal(await store.getSetting('newHostsPerDay'), 75);
        assert.equal(await store.getSetting('requestCrawlEnabled'), false);
        await store.close();
        const reopened = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        try {
          assert.equal(await reopened.getSetting('newHostsPerDay'), 75);
        } finally {
          await reopened.close();
        }
      });
    });

    it('keeps everything written across close and reopen', async () => {
      const loc = await harness.fresh();
      try {
        const store = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        const { value: h } = await store.createHost({ hostname: 'd.example.com' });
        const { value: a } = await store.createAccount({ did: 'did:plc:durable', hostId: h.id });
        await store.updateAccountHead(a.uid, head(3));
        await store.addDomainBan('banned.example');
        store.updateHostCursor(h.id, 99);
        await store.close();
        const reopened = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        try {
          const back = await reopened.getAccountByDid('did:plc:durable');
          assert.deepEqual(back?.head, head(3));
          assert.equal((await reopened.getHost(h.id))?.cursor, 99);
          assert.equal((await reopened.getHost(h.id))?.accountCount, 1);
          assert.equal(await reopened.isDomainBanned('x.banned.example'), true);
        } finally {
          await reopened.close();
        }
      } finally {
        await loc.destroy();
      }
    });

    it('loses nothing reported written when the writer is killed with SIGKILL', async () => {
      const loc = await harness.fresh();
      try {
        const fixture = fileURLToPath(new URL('./metadata-store-crash-writer.ts', import.meta.url));
        const child = spawn(process.execPath, ['--import', 'tsx', fixture, JSON.stringify(loc.options)], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
        });
        const lastReported = await new Promise<number>((resolve, reject) => {
          let buf = '';
          let last = 0;
          child.stdout.on('data', (d: Buffer) => {
            buf += d.toString();
            const lines = buf.split('\n');
            buf = lines.pop() ?? '';
            for (const line of lines) last = Number(line.slice(3));
            if (last >= 25 && !child.killed) child.kill('SIGKILL');
          });
          child.on('exit', (code, signal) => {
            if (signal === 'SIGKILL') resolve(last);
            else reject(new Error(`crash writer exited early (code ${code}): ${stderr}`));
          });
        });
        assert.ok(lastReported >= 25);
        const store = await openMetadataStore({ ...loc.options, cursorFlushMs: 0 });
        try {
          for (let i = 1; i <= lastReported; i++) {
            const account = await store.getAccountByDid(`did:plc:crash${i}`);
            assert.ok(account, `account ${i} was reported written`);
            assert.deepEqual(account.head?.rev, `3l${String(i).padStart(11, '0')}`);
          }
          const host = await store.getHostByHostname('crash.example.com');
          assert.ok((host?.cursor ?? 0) >= lastReported);
          assert.equal(host?.accountCount, await store.countAccountsByHost(host!.id));
        } finally {
          await store.close();
        }
      } finally {
        await loc.destroy();
      }
    });
  });
}
