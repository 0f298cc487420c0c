import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ADMIN_PASSWORD,
  FirehoseClient,
  type Harness,
  seedAccounts,
  startHarness,
} from '../../test/support/api-harness.ts';

type Json = Record<string, unknown>;

async function ok(res: Response): Promise<Json> {
  const body = (await res.json()) as Json;
  assert.equal(res.status, 200, JSON.stringify(body));
  return body;
}

async function expectError(res: Response, status: number, error: string): Promise<Json> {
  const body = (await res.json()) as Json;
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error, error, JSON.stringify(body));
  assert.equal(typeof body.message, 'string');
  return body;
}

describe('admin API authentication', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ adminFailuresPerMinute: 3 });
  });
  after(() => h.close());

  it('missing credentials: 401 AuthRequired with a Basic challenge', async () => {
    const res = await h.get('/admin/hosts');
    assert.match(res.headers.get('www-authenticate') ?? '', /^Basic /);
    await expectError(res, 401, 'AuthRequired');
    await expectError(await h.post('/admin/hosts/add', { hostname: 'a.example' }), 401, 'AuthRequired');
    assert.deepEqual(h.hosts.calls, [], 'nothing ran');
  });

  it('right credentials: bearer token and basic auth', async () => {
    await ok(await h.get('/admin/hosts', { authorization: `Bearer ${ADMIN_PASSWORD}` }));
    const basic = Buffer.from(`admin:${ADMIN_PASSWORD}`).toString('base64');
    await ok(await h.get('/admin/hosts', { authorization: `Basic ${basic}` }));
  });

  it('wrong credentials: 401, then a 429 lock-out for that address', async () => {
    const wrongBasic = Buffer.from(`admin:${ADMIN_PASSWORD}x`).toString('base64');
    const wrongUser = Buffer.from(`root:${ADMIN_PASSWORD}`).toString('base64');
    await expectError(
      await h.get('/admin/hosts', { authorization: 'Bearer nope' }),
      401,
      'InvalidCredentials',
    );
    await expectError(
      await h.get('/admin/hosts', { authorization: `Basic ${wrongBasic}` }),
      401,
      'InvalidCredentials',
    );
    await expectError(
      await h.get('/admin/hosts', { authorization: `Basic ${wrongUser}` }),
      401,
      'InvalidCredentials',
    );
    // Three failures used the budget: even the right password is refused for now.
    await expectError(
      await h.get('/admin/hosts', { authorization: `Bearer ${ADMIN_PASSWORD}` }),
      429,
      'RateLimitExceeded',
    );
  });
});

describe('admin API disabled', () => {
  it('answers 404 when no password is configured', async () => {
    const h = await startHarness({ adminPassword: undefined });
    try {
      await expectError(await h.admin('GET', '/admin/hosts'), 404, 'NotFound');
    } finally {
      await h.close();
    }
  });
});

describe('routes registered by other modules', () => {
  it('admin routes run behind authentication; xrpc routes like the API own, with CORS; a route may write its own answer', async () => {
    const seen: string[] = [];
    const h = await startHarness({
      routes: {
        admin: [
          (router) => {
            router.get('/admin/collections', async ({ path }) => {
              seen.push(path);
              return { collections: [] };
            });
            // A non-JSON, streamed answer written by the route itself (as server-sent events would be).
            router.get('/admin/collections/events', async ({ res }) => {
              res.writeHead(200, { 'content-type': 'text/event-stream' });
              res.write('data: one\n\n');
              res.end('data: two\n\n');
              return undefined;
            });
          },
        ],
        xrpc: [
          (router) => router.get('/xrpc/com.atproto.sync.listReposByCollection', async () => ({ repos: [] })),
        ],
      },
    });
    try {
      await expectError(await h.get('/admin/collections'), 401, 'AuthRequired');
      assert.deepEqual(seen, [], 'not reached without credentials');
      assert.deepEqual(await ok(await h.admin('GET', '/admin/collections')), { collections: [] });
      await expectError(await h.admin('GET', '/admin/other'), 404, 'NotFound');
      const events = await h.admin('GET', '/admin/collections/events');
      assert.equal(events.headers.get('content-type'), 'text/event-stream');
      assert.equal(await events.text(), 'data: one\n\ndata: two\n\n');
      const res = await h.get('/xrpc/com.atproto.sync.listReposByCollection?collection=app.bsky.feed.post');
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      assert.deepEqual(await ok(res), { repos: [] });
      await expectError(
        await h.post('/xrpc/com.atproto.sync.listReposByCollection', {}),
        405,
        'InvalidRequest',
      );
      await expectError(await h.get('/xrpc/com.example.none'), 501, 'MethodNotImplemented');
      assert.match(await h.registry.metrics(), /route="\/admin\/collections"/);
    } finally {
      await h.close();
    }
  });
});

describe('without host control', () => {
  it('requestCrawl and host changes answer 501, reads still work', async () => {
    const h = await startHarness({ hosts: undefined });
    try {
      await h.store.createHost({ hostname: 'pds.example.com' });
      await expectError(
        await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'a.example' }),
        501,
        'MethodNotImplemented',
      );
      await expectError(
        await h.admin('POST', '/admin/hosts/add', { hostname: 'a.example' }),
        501,
        'NotImplemented',
      );
      await expectError(
        await h.admin('POST', '/admin/hosts/block', { hostname: 'pds.example.com' }),
        501,
        'NotImplemented',
      );
      await expectError(
        await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'pds.example.com', cursor: 1 }),
        501,
        'NotImplemented',
      );
      const body = (await ok(await h.admin('GET', '/admin/hosts'))) as { hosts: Json[] };
      assert.equal(body.hosts.length, 1);
    } finally {
      await h.close();
    }
  });
});

describe('admin API', () => {
  let h: Harness;
  let hostId: number;
  before(async () => {
    h = await startHarness();
    hostId = (await h.store.createHost({ hostname: 'pds.example.com' })).value.id;
    for (let i = 0; i < 4; i++) await h.store.createHost({ hostname: `h${i}.example.org` });
  });
  after(() => h.close());

  describe('hosts', () => {
    it('lists hosts with status, cursor, counts, limits and failures, paging to the end', async () => {
      await h.store.recordHostFailure(hostId);
      h.store.updateHostCursor(hostId, 77);
      const all: Json[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const body = (await ok(
          await h.admin('GET', `/admin/hosts?limit=2${cursor ? `&cursor=${cursor}` : ''}`),
        )) as {
          hosts: Json[];
          cursor?: string;
        };
        all.push(...body.hosts);
        cursor = body.cursor;
        if (!cursor) break;
      }
      assert.equal(all.length, 5);
      const pds = all[0];
      assert.equal(pds.hostname, 'pds.example.com');
      assert.equal(pds.status, 'active');
      assert.equal(pds.cursor, 77);
      assert.equal(pds.failures, 1);
      assert.equal(pds.accountCount, 0);
      assert.equal(typeof pds.accountLimit, 'number');
      assert.equal(pds.trusted, false);
      assert.equal(pds.connected, false);
    });

    it('filters by status and rejects bad parameters', async () => {
      await expectError(await h.admin('GET', '/admin/hosts?status=weird'), 400, 'InvalidRequest');
      await expectError(await h.admin('GET', '/admin/hosts?cursor=zz'), 400, 'InvalidRequest');
      await expectError(await h.admin('GET', '/admin/hosts?limit=0'), 400, 'InvalidRequest');
      const body = (await ok(await h.admin('GET', '/admin/hosts?status=offline'))) as { hosts: Json[] };
      assert.deepEqual(body.hosts, []);
    });

    it('add (admin crawl) goes to host control', async () => {
      const body = await ok(await h.admin('POST', '/admin/hosts/add', { hostname: 'http://localhost:2583' }));
      assert.equal((body.host as Json).hostname, 'localhost:2583');
      assert.ok(h.hosts.calls.includes('addHost http://localhost:2583'), 'scheme kept for ingest');
      await expectError(await h.admin('POST', '/admin/hosts/add', {}), 400, 'InvalidRequest');
      await expectError(
        await h.admin('POST', '/admin/hosts/add', { hostname: '../etc' }),
        400,
        'InvalidRequest',
      );
    });

    it('block, unblock, reconnect', async () => {
      let body = await ok(await h.admin('POST', '/admin/hosts/block', { hostname: 'h1.example.org' }));
      assert.equal((body.host as Json).status, 'blocked');
      const pub = (await (
        await h.get('/xrpc/com.atproto.sync.getHostStatus?hostname=h1.example.org')
      ).json()) as Json;
      assert.equal(pub.status, 'banned', 'a local block reads as banned in the lexicon');
      body = await ok(await h.admin('POST', '/admin/hosts/unblock', { hostname: 'h1.example.org' }));
      assert.equal((body.host as Json).status, 'active');
      await ok(await h.admin('POST', '/admin/hosts/reconnect', { hostname: 'h1.example.org' }));
      assert.ok(h.hosts.calls.includes('reconnectHost h1.example.org'));
      await expectError(
        await h.admin('POST', '/admin/hosts/block', { hostname: 'unknown.example' }),
        404,
        'HostNotFound',
      );
    });

    it('account limit, trusted, rate limits', async () => {
      let body = await ok(
        await h.admin('POST', '/admin/hosts/account-limit', {
          hostname: 'h2.example.org',
          accountLimit: 5000,
        }),
      );
      assert.equal((body.host as Json).accountLimit, 5000);
      body = await ok(
        await h.admin('POST', '/admin/hosts/trusted', { hostname: 'h2.example.org', trusted: true }),
      );
      assert.equal((body.host as Json).trusted, true);
      body = await ok(
        await h.admin('POST', '/admin/hosts/rate-limits', {
          hostname: 'h2.example.org',
          perSecond: 500,
          perDay: 9,
        }),
      );
      assert.deepEqual((body.host as Json).rateLimits, { perSecond: 500, perHour: 2500, perDay: 9 });
      assert.equal((body.host as Json).connected, true);
      await expectError(
        await h.admin('POST', '/admin/hosts/account-limit', { hostname: 'h2.example.org', accountLimit: -1 }),
        400,
        'InvalidRequest',
      );
      await expectError(
        await h.admin('POST', '/admin/hosts/trusted', { hostname: 'h2.example.org', trusted: 'yes' }),
        400,
        'InvalidRequest',
      );
      await expectError(
        await h.admin('POST', '/admin/hosts/rate-limits', { hostname: 'h2.example.org' }),
        400,
        'InvalidRequest',
      );
      const one = await ok(await h.admin('GET', '/admin/hosts/get?hostname=h2.example.org'));
      assert.equal(one.trusted, true);
      await expectError(await h.admin('GET', '/admin/hosts/get'), 400, 'InvalidRequest');
      await expectError(await h.admin('GET', '/admin/hosts/get?hostname=no.example'), 404, 'HostNotFound');
    });

    it('reset-cursor: sets the cursor (null: live), revives an idle host, refuses bad input and blocked hosts', async () => {
      const idle = (await h.store.getHostByHostname('h3.example.org'))!;
      await h.store.setHostStatus(idle.id, 'idle');
      h.store.updateHostCursor(idle.id, 500);
      assert.deepEqual(
        await ok(
          await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'H3.example.org', cursor: 5 }),
        ),
        { success: true, hostname: 'h3.example.org', cursor: 5, status: 'active' },
      );
      assert.ok(h.hosts.calls.includes('resetCursor h3.example.org 5'));
      assert.equal((await ok(await h.admin('GET', '/admin/hosts/get?hostname=h3.example.org'))).cursor, 5);
      assert.deepEqual(
        await ok(
          await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'h3.example.org', cursor: null }),
        ),
        { success: true, hostname: 'h3.example.org', cursor: null, status: 'active' },
      );
      assert.deepEqual(
        await ok(await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'h3.example.org' })),
        { success: true, hostname: 'h3.example.org', cursor: null, status: 'active' },
      );
      assert.ok(h.hosts.calls.includes('resetCursor h3.example.org null'));
      assert.equal((await h.store.getHost(idle.id))?.cursor, 0);

      const calls = h.hosts.calls.length;
      for (const cursor of [-1, 1.5, '7', true, Number.MAX_SAFE_INTEGER + 2]) {
        await expectError(
          await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'h3.example.org', cursor }),
          400,
          'InvalidRequest',
        );
      }
      await expectError(
        await h.admin('POST', '/admin/hosts/reset-cursor', { cursor: 1 }),
        400,
        'InvalidRequest',
      );
      await expectError(
        await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'unknown.example', cursor: 1 }),
        404,
        'HostNotFound',
      );
      assert.equal(h.hosts.calls.length, calls, 'refused before host control');

      const blocked = (await h.store.getHostByHostname('h0.example.org'))!;
      await h.store.setHostStatus(blocked.id, 'blocked');
      const body = await expectError(
        await h.admin('POST', '/admin/hosts/reset-cursor', { hostname: 'h0.example.org', cursor: 1 }),
        409,
        'HostBlocked',
      );
      assert.match(body.message as string, /blocked/);
      assert.equal((await h.store.getHost(blocked.id))?.status, 'blocked');
      await h.store.setHostStatus(blocked.id, 'active');
    });

    it('lists throttled accounts of a host, paging to the end', async () => {
      const dids = await seedAccounts(h.store, hostId, 5, { prefix: 'thr', status: 'throttled' });
      await seedAccounts(h.store, hostId, 2, { prefix: 'fine' });
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const body = (await ok(
          await h.admin(
            'GET',
            `/admin/hosts/throttled?hostname=pds.example.com&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
          ),
        )) as { accounts: { did: string }[]; cursor?: string };
        seen.push(...body.accounts.map((a) => a.did));
        cursor = body.cursor;
        if (!cursor) break;
      }
      assert.deepEqual(seen, dids);
      await expectError(await h.admin('GET', '/admin/hosts/throttled'), 400, 'InvalidRequest');
      await expectError(
        await h.admin('GET', '/admin/hosts/throttled?hostname=no.example'),
        404,
        'HostNotFound',
      );
    });
  });

  describe('domain bans', () => {
    it('add, list, remove', async () => {
      await ok(await h.admin('POST', '/admin/domains/ban', { domain: 'Evil.Example' }));
      await ok(await h.admin('POST', '/admin/domains/ban', { domain: 'bad.test' }));
      let body = (await ok(await h.admin('GET', '/admin/domains/bans'))) as { domains: { domain: string }[] };
      assert.deepEqual(body.domains.map((d) => d.domain).sort(), ['bad.test', 'evil.example']);
      // A banned domain is refused by requestCrawl (the fake host control consults the store).
      const crawl = await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'pds.evil.example' });
      await expectError(crawl, 403, 'HostBanned');
      await ok(await h.admin('POST', '/admin/domains/unban', { domain: 'bad.test' }));
      body = (await ok(await h.admin('GET', '/admin/domains/bans'))) as { domains: { domain: string }[] };
      assert.deepEqual(
        body.domains.map((d) => d.domain),
        ['evil.example'],
      );
      await expectError(
        await h.admin('POST', '/admin/domains/unban', { domain: 'bad.test' }),
        404,
        'NotFound',
      );
      await expectError(
        await h.admin('POST', '/admin/domains/ban', { domain: 'a.com:80' }),
        400,
        'InvalidRequest',
      );
      await expectError(await h.admin('POST', '/admin/domains/ban', {}), 400, 'InvalidRequest');
    });
  });

  describe('repos', () => {
    it("looks up one account's full state", async () => {
      const [did] = await seedAccounts(h.store, hostId, 1, { prefix: 'look' });
      const body = await ok(await h.admin('GET', `/admin/repos/get?did=${did}`));
      assert.equal(body.did, did);
      assert.equal(body.hostname, 'pds.example.com');
      assert.equal(body.active, true);
      assert.equal(body.localStatus, 'active');
      assert.equal(body.upstreamStatus, 'active');
      assert.equal(body.takenDown, false);
      assert.equal(typeof (body.head as Json).rev, 'string');
      await expectError(await h.admin('GET', '/admin/repos/get?did=did:plc:unknown'), 404, 'RepoNotFound');
      await expectError(await h.admin('GET', '/admin/repos/get?did=nope'), 400, 'InvalidRequest');
    });

    it('takedown of an unknown DID is recorded; list takedowns pages to the end', async () => {
      for (let i = 0; i < 3; i++) {
        const body = await ok(
          await h.admin('POST', '/admin/repos/takedown', { did: `did:plc:future${i}`, reason: 'spam' }),
        );
        assert.equal(body.known, false);
      }
      const state = await ok(await h.admin('GET', '/admin/repos/get?did=did:plc:future0'));
      assert.deepEqual(state, { did: 'did:plc:future0', known: false, takenDown: true });
      // It applies when the account shows up.
      await h.store.createAccount({ did: 'did:plc:future0', hostId });
      const repo = (await (
        await h.get('/xrpc/com.atproto.sync.getRepoStatus?did=did:plc:future0')
      ).json()) as Json;
      assert.deepEqual(repo, { did: 'did:plc:future0', active: false, status: 'takendown' });
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const body = (await ok(
          await h.admin('GET', `/admin/repos/takedowns?limit=2${cursor ? `&cursor=${cursor}` : ''}`),
        )) as { takedowns: { did: string; reason: string }[]; cursor?: string };
        seen.push(...body.takedowns.map((t) => t.did));
        cursor = body.cursor;
        if (!cursor) break;
      }
      assert.deepEqual(seen, ['did:plc:future0', 'did:plc:future1', 'did:plc:future2']);
      await expectError(await h.admin('GET', '/admin/repos/takedowns?cursor=bad'), 400, 'InvalidRequest');
      await expectError(await h.admin('POST', '/admin/repos/takedown', { did: 'x' }), 400, 'InvalidRequest');
      await expectError(
        await h.admin('POST', '/admin/repos/reverse-takedown', { did: 'did:plc:never' }),
        404,
        'NotFound',
      );
    });
  });

  describe('consumers', () => {
    it('lists connected consumers and disconnects one', async () => {
      const client = new FirehoseClient(`ws://127.0.0.1:${h.port}/xrpc/com.atproto.sync.subscribeRepos`);
      try {
        await client.opened;
        const body = (await ok(await h.admin('GET', '/admin/consumers'))) as { consumers: Json[] };
        assert.equal(body.consumers.length, 1);
        const c = body.consumers[0];
        for (const k of ['id', 'remoteAddress', 'lag', 'bytesSent', 'state']) assert.ok(k in c, k);
        assert.equal(c.remoteAddress, '127.0.0.1');
        const closed = new Promise<number>((r) => client.ws.once('close', (code) => r(code)));
        await ok(await h.admin('POST', '/admin/consumers/disconnect', { id: c.id }));
        assert.equal(await closed, 1000);
        await expectError(
          await h.admin('POST', '/admin/consumers/disconnect', { id: c.id }),
          404,
          'NotFound',
        );
        await expectError(
          await h.admin('POST', '/admin/consumers/disconnect', { id: 'x' }),
          400,
          'InvalidRequest',
        );
      } finally {
        client.close();
      }
    });
  });

  describe('settings', () => {
    it('reads defaults, persists changes, and requestCrawl obeys them', async () => {
      assert.deepEqual(await ok(await h.admin('GET', '/admin/settings')), {
        requestCrawlEnabled: true,
        newHostsPerDay: 50,
      });
      const body = await ok(
        await h.admin('POST', '/admin/settings', { requestCrawlEnabled: false, newHostsPerDay: 7 }),
      );
      assert.deepEqual(body.settings, { requestCrawlEnabled: false, newHostsPerDay: 7 });
      assert.equal(await h.store.getSetting('newHostsPerDay'), 7);
      await expectError(
        await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'x.example' }),
        403,
        'Forbidden',
      );
      await ok(await h.admin('POST', '/admin/settings', { requestCrawlEnabled: true }));
      assert.equal(
        (await h.post('/xrpc/com.atproto.sync.requestCrawl', { hostname: 'x.example' })).status,
        200,
      );
      await expectError(await h.admin('POST', '/admin/settings', {}), 400, 'InvalidRequest');
      await expectError(
        await h.admin('POST', '/admin/settings', { newHostsPerDay: -3 }),
        400,
        'InvalidRequest',
      );
    });
  });

  it('unknown admin path: 404; wrong method: 405', async () => {
    await expectError(await h.admin('GET', '/admin/nothing'), 404, 'NotFound');
    await expectError(await h.admin('GET', '/admin/hosts/add'), 405, 'InvalidRequest');
  });
});

describe('admin API against cross-site requests (CSRF)', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ adminFailuresPerMinute: 2 });
  });
  after(() => h.close());
  const bearer = { authorization: `Bearer ${ADMIN_PASSWORD}` };

  it('refuses writes that are not application/json, with the right credentials', async () => {
    // What a cross-site HTML form sends (no preflight), or a bodyless POST.
    for (const type of [
      'application/x-www-form-urlencoded',
      'text/plain',
      'multipart/form-data; boundary=x',
    ]) {
      const res = await fetch(h.url('/admin/domains/ban'), {
        method: 'POST',
        headers: { ...bearer, 'content-type': type },
        body: '{"domain":"evil.example"}',
      });
      await expectError(res, 415, 'InvalidRequest');
    }
    const bodyless = await fetch(h.url('/admin/settings'), { method: 'POST', headers: bearer });
    await expectError(bodyless, 415, 'InvalidRequest');
    assert.deepEqual(await h.store.listDomainBans(), [], 'nothing was banned');
  });

  it('refuses cross-site requests (Sec-Fetch-Site, foreign or opaque Origin), reads included', async () => {
    const crossSite: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { origin: `http://127.0.0.1:${h.port + 1}` },
      { origin: `http://localhost:${h.port}` },
    ];
    for (const headers of crossSite) {
      await expectError(
        await h.post('/admin/domains/ban', { domain: 'evil.example' }, { ...bearer, ...headers }),
        403,
        'CrossSiteRequest',
      );
      await expectError(await h.get('/admin/hosts', { ...bearer, ...headers }), 403, 'CrossSiteRequest');
    }
    assert.deepEqual(await h.store.listDomainBans(), [], 'nothing was banned');
    // A same-origin browser request and a plain client (no Origin) are fine.
    const sameOrigin = { origin: `http://127.0.0.1:${h.port}`, 'sec-fetch-site': 'same-origin' };
    await ok(await h.post('/admin/domains/ban', { domain: 'ok.example' }, { ...bearer, ...sameOrigin }));
    await ok(await h.get('/admin/domains/bans', { ...bearer, 'sec-fetch-site': 'none' }));
  });

  it('cross-site requests with wrong credentials do not spend the lock-out budget', async () => {
    for (let i = 0; i < 5; i++) {
      await expectError(
        await h.get('/admin/hosts', { authorization: 'Bearer nope', 'sec-fetch-site': 'cross-site' }),
        403,
        'CrossSiteRequest',
      );
    }
    await ok(await h.get('/admin/hosts', bearer));
  });
});
