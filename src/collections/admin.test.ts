// Admin endpoints and the backfill CLI against them (SQLite; the backfill
// itself is tested on both backends in backfill.test.ts).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { createCollectionsAdminHandler } from './admin.ts';
import { CollectionBackfiller } from './backfill.ts';
import { runBackfillCli } from './backfill-cli.ts';
import { formatProgress } from './progress.ts';
import { SqliteCollectionIndex } from './sqlite-index.ts';
import { createListReposByCollectionHandler } from './xrpc.ts';

async function serve(handle: (req: never, res: never) => Promise<boolean>): Promise<[Server, string]> {
  const server = createServer((req, res) => {
    void handle(req as never, res as never).then((ok) => {
      if (!ok) res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

describe('collections admin API and CLI', () => {
  it('lists collections, runs a backfill with 409 on a second start, CLI shows progress', async () => {
    const source = new SqliteCollectionIndex({ path: ':memory:' });
    const store = new SqliteCollectionIndex({ path: ':memory:' });
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    const sourceHandler = createListReposByCollectionHandler(source);
    // The source relay holds every page until the CLI has shown the run in
    // progress, so the run is observably running whatever the machine's speed.
    let openSource!: () => void;
    const sourceOpen = new Promise<void>((r) => {
      openSource = r;
    });
    const [srcServer, srcUrl] = await serve(async (req, res) => {
      await sourceOpen;
      return sourceHandler(req, res);
    });
    const backfiller = new CollectionBackfiller({ store, fetcher, retryBackoffMs: 1 });
    const [adminServer, adminUrl] = await serve(createCollectionsAdminHandler({ store, backfiller }));
    try {
      await source.addPairs(
        Array.from({ length: 30 }, (_, i) => ({ did: `did:plc:s${i}`, collection: 'a.b.c' })),
      );
      await store.addPairs([{ did: 'did:plc:x', collection: 'x.y.z' }]);

      const list = await (await fetch(`${adminUrl}/admin/collections`)).json();
      assert.deepEqual(list, {
        collections: [{ collection: 'x.y.z', count: 1 }],
        totalPairs: 1,
        pendingChecks: 0,
      });
      assert.equal((await fetch(`${adminUrl}/admin/collections?limit=0`)).status, 400);

      const body = JSON.stringify({ kind: 'relay', url: srcUrl, collections: ['a.b.c'], pageLimit: 3 });
      const start = await fetch(`${adminUrl}/admin/collections/backfill`, { method: 'POST', body });
      assert.equal(start.status, 202);
      const again = await fetch(`${adminUrl}/admin/collections/backfill`, { method: 'POST', body });
      assert.equal(again.status, 409);
      assert.equal(((await again.json()) as { error: string }).error, 'BackfillRunning');
      const bad = await fetch(`${adminUrl}/admin/collections/backfill`, {
        method: 'POST',
        body: '{"kind":"x"}',
      });
      assert.equal(bad.status, 409, 'still running: the run check comes first');

      // The CLI watches the running job to its end.
      let out = '';
      const code = await runBackfillCli(['--watch', '--admin', adminUrl], {
        fetcher,
        write: (s) => {
          out += s;
          if (out.includes('ETA')) openSource();
        },
        isTty: true,
        pollMs: 10,
      });
      assert.equal(code, 0, out);
      assert.match(out, /\[#+\] {2}2\/2 collections {2}30 pairs/);
      assert.match(out, /ETA/);
      const status = await (await fetch(`${adminUrl}/admin/collections/backfill`)).json();
      assert.equal((status as { state: string }).state, 'done');
      assert.equal(await store.countPairs(), 31);

      // Invalid source once idle: 400.
      const bad2 = await fetch(`${adminUrl}/admin/collections/backfill`, {
        method: 'POST',
        body: '{"kind":"x"}',
      });
      assert.equal(bad2.status, 400);
      // CLI start + stop round trip.
      const io = { fetcher, write: () => {}, isTty: false, pollMs: 10 };
      assert.equal(await runBackfillCli(['--stop', '--admin', adminUrl], io), 0);
      assert.equal(await runBackfillCli(['--bogus'], io), 2);
    } finally {
      openSource();
      await backfiller.stop();
      fetcher.close();
      await close(adminServer);
      await close(srcServer);
      await source.close();
      await store.close();
    }
  });

  it('formats progress', () => {
    const line = formatProgress(
      {
        state: 'running',
        job: 'hosts',
        source: 'hosts',
        startedAt: null,
        finishedAt: null,
        itemsTotal: 4,
        itemsDone: 1,
        current: [],
        pairsImported: 12345,
        pairsImportedTotal: 12345,
        accountsScanned: 99,
        pairsPerSec: 1500,
        etaSeconds: 3725,
        errors: 2,
        lastError: 'x',
      },
      8,
    );
    assert.equal(line, '[##......]  1/4 hosts  12,345 pairs  1,500/s  99 accounts  ETA 1h02m  2 errors');
  });
});
