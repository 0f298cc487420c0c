// listReposByCollection over HTTP, on both backends: lexicon parameter
// errors, default and maximum limits, cursor walk, other paths passed on.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { backends } from '../../test/support/collection-index-stores.ts';
import { createRouteHandler } from '../http/dispatch.ts';
import { Router } from '../http/router.ts';
import { listReposByCollectionRoutes, parseListParams } from './xrpc.ts';

const POST = 'app.bsky.feed.post';

describe('parseListParams', () => {
  const p = (q: string) => parseListParams(new URLSearchParams(q));
  it('accepts valid input with defaults', () => {
    assert.deepEqual(p(`collection=${POST}`), { collection: POST, limit: 500 });
    assert.deepEqual(p(`collection=${POST}&limit=2000&cursor=did:plc:abc`), {
      collection: POST,
      limit: 2000,
      cursor: 'did:plc:abc',
    });
  });
  it('rejects bad input', () => {
    for (const q of [
      '',
      'collection=notnsid',
      `collection=${POST}&collection=${POST}`,
      `collection=${POST}&limit=0`,
      `collection=${POST}&limit=2001`,
      `collection=${POST}&limit=1.5`,
      `collection=${POST}&limit=-1`,
      `collection=${POST}&limit=abc`,
      `collection=${POST}&cursor=notadid`,
    ])
      assert.ok('error' in p(q), q);
  });
});

for (const [name, fresh] of backends) {
  describe(`listReposByCollection over HTTP: ${name}`, () => {
    it('serves pages, errors and passes other paths on', async () => {
      const t = await fresh();
      const handler = createRouteHandler(new Router().use(listReposByCollectionRoutes(t.store)));
      const server: Server = createServer((req, res) => {
        void handler(req, res).then((handled) => {
          if (!handled) res.writeHead(418).end();
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const get = async (q: string, method = 'GET') => {
        const r = await fetch(`${base}/xrpc/com.atproto.sync.listReposByCollection?${q}`, { method });
        return { status: r.status, body: (await r.json()) as Record<string, unknown> };
      };
      try {
        const dids = Array.from({ length: 1203 }, (_, i) => `did:plc:${String(i).padStart(5, '0')}`);
        await t.store.addPairs(dids.map((did) => ({ did, collection: POST })));
        const first = await get(`collection=${POST}`);
        assert.equal(first.status, 200);
        assert.equal((first.body.repos as unknown[]).length, 500);
        assert.deepEqual((first.body.repos as unknown[])[0], { did: dids[0] });
        const seen: string[] = [];
        let cursor = '';
        for (;;) {
          const r = await get(`collection=${POST}&limit=400${cursor ? `&cursor=${cursor}` : ''}`);
          seen.push(...(r.body.repos as { did: string }[]).map((x) => x.did));
          if (!r.body.cursor) break;
          cursor = r.body.cursor as string;
        }
        assert.deepEqual(seen, dids);
        assert.deepEqual(await get('collection=com.example.nothing'), { status: 200, body: { repos: [] } });
        const bad = await get(`collection=${POST}&limit=5000`);
        assert.equal(bad.status, 400);
        assert.equal(bad.body.error, 'InvalidRequest');
        assert.equal((await get('collection=..bad')).body.error, 'InvalidRequest');
        assert.equal((await get(`collection=${POST}`, 'POST')).status, 405);
        assert.equal((await fetch(`${base}/xrpc/com.atproto.sync.listRepos`)).status, 418);
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await t.destroy();
      }
    });
  });
}
