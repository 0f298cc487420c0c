// Admin endpoints and the backfill CLI against them (SQLite; the backfill
// itself is tested on both backends in backfill.test.ts).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { createRouteHandler } from '../http/dispatch.ts';
import { Router } from '../http/router.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { collectionsAdminRoutes } from './admin.ts';
import { CollectionBackfiller } from './backfill.ts';
import { runBackfillCli } from './backfill-cli.ts';
import { formatProgress } from './progress.ts';
import { SqliteCollectionIndex } from './sqlite-index.ts';
import { listReposByCollectionRoutes } from './xrpc.ts';

async function serve(handle: (req: never, res: never) => Promise<boolean>): Promise<[Server, string]> {
  const server = createServer((req, res) => {
    void handle(req as never, res as never).then((ok) => {
      if (!ok) res.writeHead(404).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return [server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`];
}

const JSON_POST = { method: 'POST', headers: { 'content-type': 'application/json' } } as const;

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

describe('collections admin API and CLI', () => {
  it('lists collections, runs a backfill with 409 on a second start, CLI shows progress', async () => {
    const source = new SqliteCollectionIndex({ path: ':memory:' });
    const store = new SqliteCollectionIndex({ path: ':memory:' });
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    const sourceHandler = createRouteHandler(new Router().use(listReposByCollectionRoutes(source)));
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
    const [adminServer, adminUrl] = await serve(
      createRouteHandler(new Router().use(collectionsAdminRoutes({ store, backfiller }))),
    );
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
      const start = await fetch(`${adminUrl}/admin/collections/backfill`, { ...JSON_POST, body });
      assert.equal(start.status, 202);
      const again = await fetch(`${adminUrl}/admin/collections/backfill`, { ...JSON_POST, body });
      assert.equal(again.status, 409);
      assert.equal(((await again.json()) as { error: string }).error, 'BackfillRunning');
      const bad = await fetch(`${adminUrl}/admin/collections/backfill`, {
        ...JSON_POST,
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
        ...JSON_POST,
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

  it('refuses cross-site requests, non-JSON writes and a local collectionsFrom file', async () => {
    const store = new SqliteCollectionIndex({ path: ':memory:' });
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    // The local file must never be read: the backfiller's reader records any attempt.
    const fileReads: string[] = [];
    const backfiller = new CollectionBackfiller({
      store,
      fetcher,
      retryBackoffMs: 1,
      readTextFile: async (path) => {
        fileReads.push(path);
        return 'app.bsky.feed.post\n';
      },
    });
    const [adminServer, adminUrl] = await serve(
      createRouteHandler(new Router().use(collectionsAdminRoutes({ store, backfiller }))),
    );
    const endpoint = `${adminUrl}/admin/collections/backfill`;
    const source = JSON.stringify({ kind: 'relay', url: 'http://127.0.0.1:9', collections: ['a.b.c'] });
    const expect = async (res: Response, status: number, error: string): Promise<void> => {
      const body = (await res.json()) as { error: string; message: string };
      assert.equal(res.status, status, JSON.stringify(body));
      assert.equal(body.error, error);
      assert.equal(typeof body.message, 'string');
    };
    try {
      // What a cross-site HTML form can send: no preflight, browser-cached credentials.
      for (const type of [
        'application/x-www-form-urlencoded',
        'text/plain',
        'multipart/form-data; boundary=x',
      ]) {
        await expect(
          await fetch(endpoint, { method: 'POST', headers: { 'content-type': type }, body: source }),
          415,
          'InvalidRequest',
        );
      }
      await expect(await fetch(`${endpoint}/stop`, { method: 'POST' }), 415, 'InvalidRequest');
      // Cross-site, even as JSON.
      const crossSite: Record<string, string>[] = [
        { 'sec-fetch-site': 'cross-site' },
        { 'sec-fetch-site': 'same-site' },
        { origin: 'https://evil.example' },
        { origin: 'null' },
        { origin: `http://127.0.0.1:1${new URL(adminUrl).port}` },
      ];
      for (const headers of crossSite) {
        await expect(
          await fetch(endpoint, {
            ...JSON_POST,
            headers: { ...JSON_POST.headers, ...headers },
            body: source,
          }),
          403,
          'CrossSiteRequest',
        );
        await expect(await fetch(`${adminUrl}/admin/collections`, { headers }), 403, 'CrossSiteRequest');
      }
      assert.equal(backfiller.status().state, 'idle', 'no backfill was started');
      // collectionsFrom naming a file on the relay's disk (however spelled) is refused.
      for (const collectionsFrom of [
        '/etc/passwd',
        'nsids.txt',
        'file:///etc/passwd',
        'HTTP://x/y',
        ' https://x/y',
      ]) {
        const body = JSON.stringify({ kind: 'relay', url: 'http://127.0.0.1:9', collectionsFrom });
        await expect(await fetch(endpoint, { ...JSON_POST, body }), 400, 'InvalidRequest');
      }
      assert.equal(backfiller.status().state, 'idle', 'no backfill was started');
      assert.deepEqual(fileReads, []);
      // Same-origin browser requests and plain JSON clients work; bodies are bounded.
      const sameOrigin = { origin: adminUrl, 'sec-fetch-site': 'same-origin' };
      assert.equal((await fetch(`${adminUrl}/admin/collections`, { headers: sameOrigin })).status, 200);
      const big = JSON.stringify({
        kind: 'relay',
        url: 'http://127.0.0.1:9',
        collections: ['x'.repeat(2 << 20)],
      });
      await expect(await fetch(endpoint, { ...JSON_POST, body: big }), 413, 'PayloadTooLarge');
      await expect(await fetch(endpoint, { ...JSON_POST, body: '{"kind":' }), 400, 'InvalidRequest');
    } finally {
      await backfiller.stop();
      fetcher.close();
      await close(adminServer);
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
