import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { CID, type Harness, rev, seedAccounts, startHarness } from '../../test/support/api-harness.ts';
import type { MetadataStore } from '../store/metadata-store.ts';
import { createApiHandler } from './index.ts';

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

async function expectError(res: Response, status: number, error: string): Promise<Record<string, unknown>> {
  const body = await json(res);
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error, error, JSON.stringify(body));
  assert.equal(typeof body.message, 'string');
  assert.ok(!String(body.message).includes('    at '), 'no stack trace in message');
  return body;
}

describe('public XRPC endpoints', () => {
  let h: Harness;
  let hostId: number;
  let activeDids: string[];

  before(async () => {
    h = await startHarness({ requestCrawlPerIpPerMinute: 1000 });
    const host = (await h.store.createHost({ hostname: 'pds.example.com' })).value;
    hostId = host.id;
    activeDids = await seedAccounts(h.store, hostId, 25, { prefix: 'active' });
    await seedAccounts(h.store, hostId, 3, { prefix: 'nohead', withHead: false });
    await seedAccounts(h.store, hostId, 1, { prefix: 'deact', upstreamStatus: 'deactivated' });
    await seedAccounts(h.store, hostId, 1, { prefix: 'susp', upstreamStatus: 'suspended' });
    await seedAccounts(h.store, hostId, 1, { prefix: 'deleted', upstreamStatus: 'deleted' });
    await seedAccounts(h.store, hostId, 1, { prefix: 'throttled', status: 'throttled' });
    await seedAccounts(h.store, hostId, 1, { prefix: 'gone' });
    await h.store.setTakedown('did:plc:gone000000');
  });
  after(() => h.close());

  describe('listRepos', () => {
    it('pages through every active account with a head, to the end', async () => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      for (;;) {
        const res = await h.get(
          `/xrpc/com.atproto.sync.listRepos?limit=10${cursor ? `&cursor=${cursor}` : ''}`,
        );
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('access-control-allow-origin'), '*');
        const body = (await json(res)) as { cursor?: string; repos: Record<string, unknown>[] };
        pages++;
        for (const r of body.repos) {
          assert.deepEqual(Object.keys(r).sort(), ['active', 'did', 'head', 'rev']);
          assert.equal(r.head, CID);
          assert.equal(r.active, true);
          seen.push(r.did as string);
        }
        if (!body.cursor) break;
        cursor = body.cursor;
        assert.ok(pages < 20, 'pagination terminates');
      }
      assert.deepEqual(seen, activeDids);
      assert.ok(pages >= 3);
    });

    it('default limit and the first repo rev', async () => {
      const body = (await json(await h.get('/xrpc/com.atproto.sync.listRepos'))) as {
        cursor?: string;
        repos: { did: string; rev: string }[];
      };
      assert.equal(body.repos.length, 25);
      assert.equal(body.cursor, undefined);
      assert.equal(body.repos[0].rev, rev(1));
    });

    for (const [q, why] of [
      ['limit=0', 'limit below 1'],
      ['limit=1001', 'limit above 1000'],
      ['limit=abc', 'limit not an integer'],
      ['limit=1.5', 'limit fractional'],
      ['cursor=xyz', 'bad cursor'],
      ['cursor=-1', 'negative cursor'],
      ['limit=5&limit=6', 'limit twice'],
    ]) {
      it(`400 InvalidRequest for ${why}`, async () => {
        await expectError(await h.get(`/xrpc/com.atproto.sync.listRepos?${q}`), 400, 'InvalidRequest');
      });
    }
  });

  describe('getRepoStatus', () => {
    it('active account: active true with rev', async () => {
      const res = await h.get(`/xrpc/com.atproto.sync.getRepoStatus?did=${activeDids[2]}`);
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { did: activeDids[2], active: true, rev: rev(3) });
    });

    it('inactive accounts report their status and no rev', async () => {
      for (const [did, status] of [
        ['did:plc:deact000000', 'deactivated'],
        ['did:plc:susp000000', 'suspended'],
        ['did:plc:throttled000000', 'throttled'],
        ['did:plc:gone000000', 'takendown'],
      ]) {
        const res = await h.get(`/xrpc/com.atproto.sync.getRepoStatus?did=${did}`);
        assert.deepEqual(await json(res), { did, active: false, status });
      }
    });

    it('errors: missing, malformed, unknown', async () => {
      await expectError(await h.get('/xrpc/com.atproto.sync.getRepoStatus'), 400, 'InvalidRequest');
      await expectError(await h.get('/xrpc/com.atproto.sync.getRepoStatus?did='), 400, 'InvalidRequest');
      await expectError(
        await h.get('/xrpc/com.atproto.sync.getRepoStatus?did=not-a-did'),
        400,
        'InvalidRequest',
      );
      await expectError(
        await h.get('/xrpc/com.atproto.sync.getRepoStatus?did=did:plc:nobody'),
        404,
        'RepoNotFound',
      );
    });
  });

  describe('getLatestCommit', () => {
    it('returns cid and rev', async () => {
      const res = await h.get(`/xrpc/com.atproto.sync.getLatestCommit?did=${activeDids[0]}`);
      assert.deepEqual(await json(res), { cid: CID, rev: rev(1) });
    });

    it('lexicon errors for inactive, unknown and not-yet-synced repos', async () => {
      const cases: [string, number, string][] = [
        ['did:plc:gone000000', 403, 'RepoTakendown'],
        ['did:plc:deact000000', 403, 'RepoDeactivated'],
        ['did:plc:susp000000', 403, 'RepoSuspended'],
        ['did:plc:deleted000000', 403, 'RepoDeleted'],
        ['did:plc:throttled000000', 403, 'RepoInactive'],
        ['did:plc:nobody', 404, 'RepoNotFound'],
        ['did:plc:nohead000000', 404, 'RepoNotFound'],
        ['bad', 400, 'InvalidRequest'],
      ];
      for (const [did, status, error] of cases) {
        await expectError(await h.get(`/xrpc/com.atproto.sync.getLatestCommit?did=${did}`), status, error);
      }
      await expectError(await h.get('/xrpc/com.atproto.sync.getLatestCommit'), 400, 'InvalidRequest');
    });
  });

  describe('getRepo', () => {
    it("redirects to the account's PDS, keeping since", async () => {
      const res = await h.get(`/xrpc/com.atproto.sync.getRepo?did=${activeDids[0]}&since=${rev(1)}`);
      assert.equal(res.status, 302);
      const loc = new URL(res.headers.get('location') ?? '');
      assert.equal(loc.origin, 'https://pds.example.com');
      assert.equal(loc.pathname, '/xrpc/com.atproto.sync.getRepo');
      assert.equal(loc.searchParams.get('did'), activeDids[0]);
      assert.equal(loc.searchParams.get('since'), rev(1));
    });

    it('http for hosts without TLS', async () => {
      const host = (await h.store.createHost({ hostname: 'localhost:2583', tls: false })).value;
      const [did] = await seedAccounts(h.store, host.id, 1, { prefix: 'local' });
      const res = await h.get(`/xrpc/com.atproto.sync.getRepo?did=${did}`);
      assert.equal(res.status, 302);
      assert.equal(
        res.headers.get('location'),
        `http://localhost:2583/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(did)}`,
      );
    });

    it('errors', async () => {
      await expectError(await h.get('/xrpc/com.atproto.sync.getRepo'), 400, 'InvalidRequest');
      await expectError(await h.get('/xrpc/com.atproto.sync.getRepo?did=x'), 400, 'InvalidRequest');
      await expectError(await h.get('/xrpc/com.atproto.sync.getRepo?did=did:plc:zzz'), 404, 'RepoNotFound');
      await expectError(
        await h.get('/xrpc/com.atproto.sync.getRepo?did=did:plc:gone000000'),
        403,
        'RepoTakendown',
      );
      await expectError(
        await h.get('/xrpc/com.atproto.sync.getRepo?did=did:plc:deact000000'),
        403,
        'RepoDeactivated',
      );
    });
  });

  describe('listHosts and getHostStatus', () => {
    it('pages through every host to the end with lexicon statuses', async () => {
      const names: string[] = [];
      for (let i = 0; i < 7; i++)
        names.push((await h.store.createHost({ hostname: `h${i}.example.org` })).value.hostname);
      const blocked = await h.store.getHostByHostname('h3.example.org');
      assert.ok(blocked);
      await h.store.setHostStatus(blocked.id, 'blocked');
      const all: Record<string, unknown>[] = [];
      let cursor: string | undefined;
      for (let pages = 0; pages < 20; pages++) {
        const res = await h.get(
          `/xrpc/com.atproto.sync.listHosts?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
        );
        assert.equal(res.status, 200);
        const body = (await json(res)) as { cursor?: string; hosts: Record<string, unknown>[] };
        all.push(...body.hosts);
        cursor = body.cursor;
        if (!cursor) break;
      }
      const hostnames = all.map((x) => x.hostname);
      assert.equal(new Set(hostnames).size, hostnames.length, 'no duplicates');
      for (const n of ['pds.example.com', 'localhost:2583', ...names]) assert.ok(hostnames.includes(n), n);
      const pds = all.find((x) => x.hostname === 'pds.example.com');
      assert.deepEqual(Object.keys(pds ?? {}).sort(), ['accountCount', 'hostname', 'seq', 'status']);
      assert.equal(pds?.status, 'active');
      assert.equal(all.find((x) => x.hostname === 'h3.example.org')?.status, 'banned');
    });

    it('getHostStatus', async () => {
      h.store.updateHostCursor(hostId, 1234);
      const res = await h.get('/xrpc/com.atproto.sync.getHostStatus?hostname=PDS.example.com');
      assert.equal(res.status, 200);
      const body = await json(res);
      assert.equal(body.hostname, 'pds.example.com');
      assert.equal(body.seq, 1234);
      assert.equal(body.status, 'active');
      assert.equal(body.accountCount, await h.store.countAccountsByHost(hostId));
    });

    it('errors', async () => {
      await expectError(await h.get('/xrpc/com.atproto.sync.getHostStatus'), 400, 'InvalidRequest');
      await expectError(
        await h.get('/xrpc/com.atproto.sync.getHostStatus?hostname=bad_host!'),
        400,
        'InvalidRequest',
      );
      await expectError(
        await h.get('/xrpc/com.atproto.sync.getHostStatus?hostname=unknown.example'),
        404,
        'HostNotFound',
      );
      for (const q of ['limit=0', 'limit=1001', 'cursor=abc']) {
        await expectError(await h.get(`/xrpc/com.atproto.sync.listHosts?${q}`), 400, 'InvalidRequest');
      }
    });
  });

  describe('requestCrawl', () => {
    it('accepts a hostname and hands it to host control', async () => {
      const res = await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'New.Example.net' });
      assert.equal(res.status, 200);
      assert.ok(h.hosts.calls.includes('requestCrawl New.Example.net admin=false'), 'passed as given');
      assert.ok(await h.store.getHostByHostname('new.example.net'));
    });

    it('bad input', async () => {
      const path = '/xrpc/com.atproto.sync.requestCrawl';
      await expectError(await h.post(path, {}), 400, 'InvalidRequest');
      await expectError(await h.post(path, { hostname: 42 }), 400, 'InvalidRequest');
      await expectError(await h.post(path, { hostname: 'not a host' }), 400, 'InvalidRequest');
      await expectError(await h.post(path, '{"hostname":'), 400, 'InvalidRequest');
      await expectError(await h.post(path, '[1]'), 400, 'InvalidRequest');
      await expectError(await h.post(path, { hostname: 'x'.repeat(70_000) }), 413, 'PayloadTooLarge');
      await expectError(
        await h.post(path, 'hostname=a.com', { 'content-type': 'application/x-www-form-urlencoded' }),
        415,
        'InvalidRequest',
      );
      await expectError(await h.get(path), 405, 'InvalidRequest');
    });

    it('413 for an oversized chunked body (no content-length), and POST errors carry no CORS', async () => {
      const { status, body, cors } = await new Promise<{ status: number; body: string; cors?: string }>(
        (resolve, reject) => {
          const req = request(
            h.url('/xrpc/com.atproto.sync.requestCrawl'),
            {
              method: 'POST',
              headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
            },
            (res) => {
              let text = '';
              res.on('data', (d: Buffer) => {
                text += d.toString();
              });
              res.on('end', () =>
                resolve({
                  status: res.statusCode ?? 0,
                  body: text,
                  cors: res.headers['access-control-allow-origin'] as string | undefined,
                }),
              );
            },
          );
          req.on('error', reject);
          const chunk = Buffer.alloc(16 * 1024, 0x20);
          for (let i = 0; i < 6; i++) req.write(chunk);
          req.end();
        },
      );
      assert.equal(status, 413);
      assert.equal(JSON.parse(body).error, 'PayloadTooLarge');
      assert.equal(cors, undefined);
    });

    it('passes host control refusals through', async () => {
      h.hosts.crawlResult = { ok: false, status: 400, error: 'HostNotFound', message: 'unreachable' };
      try {
        await expectError(
          await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'dead.example' }),
          400,
          'HostNotFound',
        );
      } finally {
        h.hosts.crawlResult = undefined;
      }
    });

    it('403 when requestCrawl is switched off', async () => {
      await h.store.setSetting('requestCrawlEnabled', false);
      try {
        await expectError(
          await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'a.example' }),
          403,
          'Forbidden',
        );
      } finally {
        await h.store.setSetting('requestCrawlEnabled', true);
      }
    });
  });

  describe('cross-cutting', () => {
    it('CORS preflight on GET endpoints', async () => {
      const res = await fetch(h.url('/xrpc/com.atproto.sync.listRepos'), { method: 'OPTIONS' });
      assert.equal(res.status, 204);
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.match(res.headers.get('access-control-allow-methods') ?? '', /GET/);
    });

    it('CORS headers on errors too', async () => {
      const res = await h.get('/xrpc/com.atproto.sync.getRepoStatus');
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      await res.arrayBuffer();
    });

    it('unknown XRPC methods answer 501, other paths are not ours', async () => {
      await expectError(await h.get('/xrpc/com.example.nothing'), 501, 'MethodNotImplemented');
      const other = await h.get('/somewhere');
      assert.equal(other.status, 404);
      assert.equal((await json(other)).error, 'NotFound');
      const sub = await h.get('/xrpc/com.atproto.sync.subscribeRepos');
      assert.equal(sub.status, 404, 'subscribeRepos is left to the firehose');
      await sub.arrayBuffer();
    });

    it('a very long URL is refused', async () => {
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(h.url(`/xrpc/com.atproto.sync.listRepos?cursor=${'1'.repeat(9000)}`), (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.ok(status === 414 || status === 431, `status ${status}`);
    });

    it('/_stats aggregates stores, log and consumers', async () => {
      const res = await h.get('/_stats');
      assert.equal(res.status, 200);
      const body = (await json(res)) as {
        hosts: { total: number; byStatus: Record<string, number> };
        accounts: { total: number };
        eventLog: { head: number; sizeBytes: number };
        consumers: { connected: number };
      };
      assert.ok(body.hosts.total >= 2);
      assert.ok(body.accounts.total >= 34);
      assert.equal(body.eventLog.head, h.log.head());
      assert.equal(body.consumers.connected, 0);
    });

    it('request metrics by route and status', async () => {
      const text = await h.registry.metrics();
      assert.match(
        text,
        /relay_api_requests_total\{route="\/xrpc\/com.atproto.sync.listRepos",method="GET",status="200"\} \d+/,
      );
      assert.match(text, /relay_api_requests_total\{route="other",method="GET",status="501"\}/);
      assert.match(text, /relay_api_request_duration_seconds_bucket/);
    });
  });
});

describe('requestCrawl per-IP rate limit', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ requestCrawlPerIpPerMinute: 2 });
  });
  after(() => h.close());

  it('429 with Retry-After once the bucket is empty', async () => {
    const path = '/xrpc/com.atproto.sync.requestCrawl';
    assert.equal((await h.post(path, { hostname: 'a.example' })).status, 200);
    assert.equal((await h.post(path, { hostname: 'b.example' })).status, 200);
    const res = await h.post(path, { hostname: 'c.example' });
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    await expectError(res, 429, 'RateLimitExceeded');
  });
});

describe('internal errors', () => {
  it('answer 500 InternalServerError without details', async () => {
    const broken = new Proxy({} as MetadataStore, {
      get: () => () => Promise.reject(new Error('database exploded at /secret/path')),
    });
    const h = await startHarness();
    try {
      const handler = createApiHandler({ store: broken, eventLog: h.log, accounts: h.accounts });
      const { createServer } = await import('node:http');
      const server = createServer((req, res) => void handler(req, res));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const { port } = server.address() as { port: number };
        const res = await fetch(`http://127.0.0.1:${port}/xrpc/com.atproto.sync.listRepos`);
        const body = await expectError(res, 500, 'InternalServerError');
        assert.equal(body.message, 'internal error');
      } finally {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    } finally {
      await h.close();
    }
  });
});
