// Backfill from a simulated source relay (our own listReposByCollection
// handler over a separate index) and from simulated PDS hosts (sim/), on both
// backends: interrupted part-way, resumed from the saved progress after
// reopening the store, and checked against the source's truth.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { backends } from '../../test/support/collection-index-stores.ts';
import { createRouteHandler } from '../http/dispatch.ts';
import { Router } from '../http/router.ts';
import { createSafeFetcher, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { CollectionBackfiller, parseNsidList } from './backfill.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { SqliteCollectionIndex } from './sqlite-index.ts';
import { listReposByCollectionRoutes } from './xrpc.ts';

const COLLS = [
  'app.bsky.feed.post',
  'app.bsky.feed.like',
  'app.bsky.graph.follow',
  'com.example.only.in.file',
];

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
}

async function allRepos(store: CollectionIndexStore, collection: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const p = await store.listRepos(collection, 1000, cursor);
    out.push(...p.items);
    cursor = p.cursor;
  } while (cursor);
  return out;
}

/** Counts requests and lets a test react to the n-th one. */
function countingFetcher(inner: SafeFetcher, onRequest: (n: number, url: string) => void): SafeFetcher {
  let n = 0;
  const tap = (url: string) => onRequest(++n, url);
  return {
    request: (url, o) => {
      tap(url);
      return inner.request(url, o);
    },
    getJson: (url, o) => {
      tap(url);
      return inner.getJson(url, o);
    },
    getText: (url, o) => {
      tap(url);
      return inner.getText(url, o);
    },
    close: () => inner.close(),
  };
}

describe('parseNsidList', () => {
  it('takes NSID-shaped tokens from any text', () => {
    const text =
      '# Lexicons\n- [app.bsky.feed.post](https://x/app.bsky.feed.post)\nsh.tangled.repo\nnot-an-nsid a.b\n';
    assert.deepEqual(parseNsidList(text), ['app.bsky.feed.post', 'sh.tangled.repo']);
  });
});

describe('collection backfill: failures', () => {
  it('a source that keeps failing leaves the job failed and resumable', async () => {
    const store = new SqliteCollectionIndex({ path: ':memory:' });
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    let up = false;
    const source = new SqliteCollectionIndex({ path: ':memory:' });
    await source.addPairs([{ did: 'did:plc:z', collection: 'a.b.c' }]);
    const handler = createRouteHandler(new Router().use(listReposByCollectionRoutes(source)));
    const server = createServer((req, res) => {
      if (!up) {
        res.writeHead(502).end();
        return;
      }
      void handler(req, res);
    });
    try {
      const url = await listen(server);
      const bf = new CollectionBackfiller({ store, fetcher, retries: 1, retryBackoffMs: 1 });
      bf.start({ kind: 'relay', url, collections: ['a.b.c'] });
      await bf.wait();
      assert.equal(bf.status().state, 'failed');
      assert.match(bf.status().lastError ?? '', /HTTP 502/);
      up = true;
      bf.start({ kind: 'relay', url, collections: ['a.b.c'] });
      await bf.wait();
      assert.equal(bf.status().state, 'done');
      assert.deepEqual(await store.collectionsOf('did:plc:z'), ['a.b.c']);
    } finally {
      fetcher.close();
      await close(server);
      await store.close();
      await source.close();
    }
  });
});

describe('collection backfill: describeRepo hosts', () => {
  it('uses describeRepo, retries a 503, skips a failing account', async () => {
    const store = new SqliteCollectionIndex({ path: ':memory:' });
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    let listCalls = 0;
    const calls: string[] = [];
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      calls.push(url.pathname);
      const json = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (url.pathname === '/xrpc/com.atproto.sync.listRepos') {
        if (listCalls++ === 0) return json(503, { error: 'Unavailable' });
        return json(200, {
          repos: [
            { did: 'did:plc:one', head: 'x', rev: 'y', active: true },
            { did: 'did:plc:two', head: 'x', rev: 'y', active: true },
            { did: 'did:plc:off', head: 'x', rev: 'y', active: false, status: 'takendown' },
          ],
        });
      }
      if (url.pathname === '/xrpc/com.atproto.repo.describeRepo') {
        const repo = url.searchParams.get('repo');
        if (repo === 'did:plc:one')
          return json(200, { did: repo, collections: ['app.bsky.feed.post', 'bad'] });
        return json(400, { error: 'RepoNotFound', message: 'gone' });
      }
      json(501, { error: 'MethodNotImplemented' });
    });
    try {
      const url = await listen(server);
      const bf = new CollectionBackfiller({ store, fetcher, retryBackoffMs: 1 });
      bf.start({ kind: 'hosts', hosts: [url], perHostRatePerSec: 1000 });
      await bf.wait();
      const st = bf.status();
      assert.equal(st.state, 'done', JSON.stringify(st));
      assert.equal(st.errors, 1, 'did:plc:two failed and was skipped');
      assert.equal(st.accountsScanned, 1);
      assert.deepEqual(await store.collectionsOf('did:plc:one'), ['app.bsky.feed.post']);
      assert.equal(listCalls, 2, 'the 503 was retried');
      assert.ok(!calls.includes('/xrpc/com.atproto.sync.getRepo'), 'no getRepo fallback on RepoNotFound');
    } finally {
      fetcher.close();
      await close(server);
      await store.close();
    }
  });
});

for (const [name, fresh] of backends) {
  describe(`collection backfill: ${name}`, () => {
    it('from a source relay: 409 while running, stop, resume after reopen, exact result', async () => {
      const source = new SqliteCollectionIndex({ path: ':memory:' });
      const t = await fresh();
      const dir = mkdtempSync(join(tmpdir(), 'atrelay-bf-'));
      const handler = createRouteHandler(new Router().use(listReposByCollectionRoutes(source)));
      let requests = 0;
      const server = createServer((req, res) => {
        requests++;
        void handler(req, res).then((handled) => {
          if (!handled) res.writeHead(404).end();
        });
      });
      const inner = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
      try {
        const url = await listen(server);
        for (const [i, c] of COLLS.entries())
          await source.addPairs(
            Array.from({ length: 9 + i * 4 }, (_, j) => ({ did: `did:plc:${c.length}x${j}`, collection: c })),
          );
        // A collection the index already observed (not in the known list).
        await t.store.addPairs([{ did: 'did:plc:local', collection: 'app.bsky.graph.follow' }]);
        const file = join(dir, 'llms.txt');
        writeFileSync(file, '- [com.example.only.in.file](x)\n');
        const src = {
          kind: 'relay' as const,
          url,
          collections: ['app.bsky.feed.post', 'app.bsky.feed.like', 'bad nsid'],
          collectionsFrom: file,
          pageLimit: 4,
          ratePerSec: 1000,
        };

        let bf = new CollectionBackfiller({ store: t.store, fetcher: inner, retryBackoffMs: 1 });
        let stopAt = 7;
        const fetcher = countingFetcher(inner, (n) => {
          if (n === stopAt) setImmediate(() => void bf.stop());
        });
        bf = new CollectionBackfiller({ store: t.store, fetcher, retryBackoffMs: 1 });
        assert.deepEqual(bf.start(src), { ok: true, job: `relay:${url}` });
        assert.equal(bf.start(src).ok, false, 'second start refused while running');
        assert.equal((bf.start(src) as { reason: string }).reason, 'running');
        await bf.wait();
        const s1 = bf.status();
        assert.equal(s1.state, 'stopped');
        assert.equal(s1.itemsTotal, 4);
        assert.ok(s1.itemsDone < 4 && s1.pairsImported > 0, JSON.stringify(s1));
        const firstRunRequests = requests;

        // Reopen the store (as after a restart) and resume.
        const store2 = await t.reopen();
        stopAt = -1;
        bf = new CollectionBackfiller({ store: store2, fetcher, retryBackoffMs: 1 });
        assert.equal(bf.start(src).ok, true);
        await bf.wait();
        const s2 = bf.status();
        assert.equal(s2.state, 'done', JSON.stringify(s2));
        assert.equal(s2.itemsDone, 4);
        assert.equal(s2.etaSeconds, 0);
        // Pages: ceil(n/4) per collection plus an empty last page when n % 4 == 0.
        const totalPages = COLLS.reduce((a, _c, i) => a + Math.floor((9 + i * 4) / 4) + 1, 0);
        assert.ok(
          requests <= totalPages + 1,
          `resumed, not restarted: ${requests} requests for ${totalPages} pages (first run ${firstRunRequests})`,
        );
        for (const c of COLLS) {
          const want = await allRepos(source, c);
          if (c === 'app.bsky.graph.follow') want.push('did:plc:local');
          assert.deepEqual(await allRepos(store2, c), want.sort(), c);
        }
        // A finished job started again is already done; restart starts over.
        bf = new CollectionBackfiller({ store: store2, fetcher, retryBackoffMs: 1 });
        const before = requests;
        bf.start(src);
        await bf.wait();
        assert.equal(requests, before);
        bf.start({ ...src, restart: true });
        await bf.wait();
        assert.equal(bf.status().itemsDone, 4);
        assert.ok(requests > before);
      } finally {
        inner.close();
        await close(server);
        await source.close();
        await t.destroy();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('from PDS hosts (getRepo fallback), skipping inactive accounts, resumable', async () => {
      const plc = new SimPlc('bf-plc');
      const hosts = [await SimPds.start({ plc, seed: 'bf-a' }), await SimPds.start({ plc, seed: 'bf-b' })];
      const t = await fresh();
      const inner = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
      try {
        const truth = new Map<string, string[]>();
        for (const [h, pds] of hosts.entries()) {
          for (let i = 0; i < 5; i++) {
            const a = pds.createAccount();
            const colls = COLLS.slice(0, 1 + ((i + h) % COLLS.length));
            pds.writeRecords(
              a.did,
              colls.map((collection, k) => ({ action: 'create', collection, rkey: `r${k}` })),
            );
            if (i === 4 && h === 0) pds.deactivate(a.did);
            else truth.set(a.did, colls);
          }
        }
        let bf: CollectionBackfiller;
        let stopAt = 9;
        const fetcher = countingFetcher(inner, (n) => {
          if (n === stopAt) setImmediate(() => void bf.stop());
        });
        const src = {
          kind: 'hosts' as const,
          hosts: hosts.map((p) => p.url),
          listReposLimit: 2,
          perHostRatePerSec: 1000,
          hostConcurrency: 2,
        };
        bf = new CollectionBackfiller({ store: t.store, fetcher, retryBackoffMs: 1 });
        assert.equal(bf.start(src).ok, true);
        await bf.wait();
        assert.equal(bf.status().state, 'stopped');
        assert.ok(bf.status().itemsDone < 2);

        const store2 = await t.reopen();
        stopAt = -1;
        bf = new CollectionBackfiller({ store: store2, fetcher, retryBackoffMs: 1 });
        assert.equal(bf.start(src).ok, true);
        await bf.wait();
        const s = bf.status();
        assert.equal(s.state, 'done', JSON.stringify(s));
        assert.equal(s.itemsDone, 2);
        for (const [did, colls] of truth)
          assert.deepEqual(await store2.collectionsOf(did), [...colls].sort(), did);
        let pairs = 0;
        for (const c of truth.values()) pairs += c.length;
        assert.equal(await store2.countPairs(), pairs, 'the deactivated account was skipped');
      } finally {
        inner.close();
        for (const h of hosts) await h.stop();
        await t.destroy();
      }
    });
  });
}
