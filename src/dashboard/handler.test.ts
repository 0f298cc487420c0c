// The dashboard's handler on a loopback server, in front of a stand-in for
// the admin API (which answers whether the request reached it authenticated):
// the landing page, the login form (wrong password refused and counted, the
// lock-out, the cookie's flags), the session standing in for the password on
// admin API routes, an expired session answered 401 without a Basic
// challenge, logout, the cross-site rules on login, the JSON endpoints
// behind the session, and static files from a fixed list only.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Counter, Registry } from 'prom-client';
import type { Host, HostPageOptions } from '../store/metadata-store.ts';
import { createDashboardHandler } from './handler.ts';
import { HostsTable } from './hosts-table.ts';
import { landingPage } from './landing.ts';
import { OverviewSampler } from './overview.ts';
import { SessionStore } from './sessions.ts';

const PASSWORD = 'dashboard test password';
// biome-ignore lint/suspicious/noExplicitAny: JSON answers read in assertions
type Json = any;
const json = async (res: Response | Promise<Response>): Promise<Json> => (await res).json();

describe('dashboard handler', () => {
  let server: Server;
  let base: string;
  let now = 1_000_000;
  const sessions = new SessionStore({ ttlMs: 60_000, now: () => now });
  const registry = new Registry();
  const frames = new Counter({
    name: 'relay_ingest_frames_by_type_total',
    help: 'h',
    labelNames: ['type'],
    registers: [registry],
  });
  const hosts: Host[] = [
    {
      id: 1,
      hostname: 'a.test',
      tls: false,
      status: 'active',
      cursor: 5,
      accountCount: 2,
      accountLimit: 0,
      trusted: false,
      failures: 0,
      createdAt: new Date(0),
      updatedAt: new Date(0),
    } as Host,
  ];

  before(async () => {
    const handler = createDashboardHandler({
      adminPassword: PASSWORD,
      sampler: new OverviewSampler({ registry, minIntervalMs: 0 }),
      hostsTable: new HostsTable({
        store: { listHosts: async (o: HostPageOptions) => (o.after ? [] : hosts) },
      }),
      resolveHandle: async (h) => (h === 'alice.test' ? 'did:plc:alice' : undefined),
      version: '9.9.9',
      uptimeSeconds: () => 3725,
      loginFailuresPerMinute: 3,
      sessions,
    });
    server = createServer((req, res) => {
      handler(req, res).then((handled) => {
        if (handled) return;
        // Stand-in for the admin API: says whether the password reached it.
        const body = JSON.stringify({
          path: req.url,
          authorized: req.headers.authorization === `Bearer ${PASSWORD}`,
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const login = (password: string, headers: Record<string, string> = {}) =>
    fetch(`${base}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ password }),
    });
  const cookieOf = (res: Response): string => (res.headers.get('set-cookie') ?? '').split(';', 1)[0];

  it('serves the landing page at /', async () => {
    const res = await fetch(`${base}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    const html = await res.text();
    assert.match(html, /AT Protocol/);
    assert.ok(html.includes(`${base.replace('http', 'ws')}/xrpc/com.atproto.sync.subscribeRepos`));
    assert.match(html, /Version 9\.9\.9 · up 1h 2m/);
    // fetch cannot send a hostile Host header; the page builder is checked directly.
    const page = (host: string, https: boolean) =>
      landingPage({ version: '1', uptimeSeconds: 0, host, https });
    assert.match(
      page('relay.example.com', true),
      /wss:\/\/relay\.example\.com\/xrpc\/com\.atproto\.sync\.subscribeRepos/,
    );
    assert.doesNotMatch(page('<script>x</script>', false), /<script>x/);
    assert.equal(
      (await fetch(`${base}/`, { method: 'POST' })).status,
      200,
      'POST / is not ours (stand-in answers)',
    );
  });

  it('shows the login page without a session and the app with one', async () => {
    const page = await fetch(`${base}/admin/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.match(await page.text(), /id="login-form"/);
    const redirect = await fetch(`${base}/admin`, { redirect: 'manual' });
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/admin/');

    const ok = await login(PASSWORD);
    assert.equal(ok.status, 200);
    const setCookie = ok.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /HttpOnly/);
    assert.match(setCookie, /SameSite=Strict/);
    assert.match(setCookie, /Max-Age=60/);
    assert.doesNotMatch(setCookie, /Secure/, 'plain loopback HTTP: no Secure flag');
    const app = await fetch(`${base}/admin/`, { headers: { cookie: cookieOf(ok) } });
    assert.match(await app.text(), /id="tabs"/);
    const behindTls = await login(PASSWORD, { 'x-forwarded-proto': 'https' });
    assert.match(behindTls.headers.get('set-cookie') ?? '', /; Secure/);
  });

  it('the session stands in for the password on admin API routes, until logout', async () => {
    const cookie = cookieOf(await login(PASSWORD));
    const viaApi = await json(fetch(`${base}/admin/hosts`, { headers: { cookie } }));
    assert.deepEqual(viaApi, { path: '/admin/hosts', authorized: true });
    const noCookie = await json(fetch(`${base}/admin/hosts`));
    assert.equal(noCookie.authorized, false);
    const out = await fetch(`${base}/admin/logout`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
    const after = await fetch(`${base}/admin/hosts`, { headers: { cookie } });
    assert.equal(after.status, 401);
    assert.equal(after.headers.get('www-authenticate'), null, 'no Basic prompt in the browser');
    assert.equal(((await after.json()) as Json).error, 'SessionExpired');
  });

  it('sessions expire', async () => {
    const cookie = cookieOf(await login(PASSWORD));
    assert.equal((await fetch(`${base}/admin/dashboard/api/hosts`, { headers: { cookie } })).status, 200);
    now += 60_000;
    assert.equal((await fetch(`${base}/admin/dashboard/api/hosts`, { headers: { cookie } })).status, 401);
  });

  it('refuses cross-site and form logins before looking at the password', async () => {
    const cross = await login(PASSWORD, { origin: 'https://evil.example' });
    assert.equal(cross.status, 403);
    const site = await login(PASSWORD, { 'sec-fetch-site': 'cross-site' });
    assert.equal(site.status, 403);
    const form = await fetch(`${base}/admin/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `password=${encodeURIComponent(PASSWORD)}`,
    });
    assert.equal(form.status, 415);
  });

  it('the JSON endpoints need a session or the admin credentials', async () => {
    assert.equal((await fetch(`${base}/admin/dashboard/api/overview`)).status, 401);
    const bearer = { authorization: `Bearer ${PASSWORD}` };
    frames.inc({ type: '#commit' }, 5);
    const first = await json(fetch(`${base}/admin/dashboard/api/overview`, { headers: bearer }));
    frames.inc({ type: '#commit' }, 5);
    const second = await json(fetch(`${base}/admin/dashboard/api/overview?since=0`, { headers: bearer }));
    assert.ok(Array.isArray(first.points));
    assert.ok(second.points.length >= 1);
    assert.ok(second.points.at(-1).eventsIn['#commit'] >= 0);
    const hostsPage = await json(
      fetch(`${base}/admin/dashboard/api/hosts?sort=accountCount&dir=desc`, { headers: bearer }),
    );
    assert.equal(hostsPage.total, 1);
    assert.equal(hostsPage.rows[0].hostname, 'a.test');
    assert.equal(
      (await fetch(`${base}/admin/dashboard/api/hosts?sort=nope`, { headers: bearer })).status,
      400,
    );
    const resolved = await json(
      fetch(`${base}/admin/dashboard/api/resolve-handle?handle=@Alice.test`, { headers: bearer }),
    );
    assert.deepEqual(resolved, { handle: 'alice.test', did: 'did:plc:alice' });
    assert.equal(
      (await fetch(`${base}/admin/dashboard/api/resolve-handle?handle=bob.test`, { headers: bearer })).status,
      404,
    );
    assert.equal(
      (await fetch(`${base}/admin/dashboard/api/resolve-handle?handle=not%20a%20handle`, { headers: bearer }))
        .status,
      400,
    );
  });

  it('serves a fixed list of static files, uPlot included', async () => {
    const js = await fetch(`${base}/admin/dashboard/static/uPlot.min.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.match(await js.text(), /uPlot/);
    const etag = js.headers.get('etag') ?? '';
    assert.ok(etag);
    const again = await fetch(`${base}/admin/dashboard/static/uPlot.min.js`, {
      headers: { 'if-none-match': etag },
    });
    assert.equal(again.status, 304, 'unchanged: not sent again');
    assert.equal((await fetch(`${base}/admin/dashboard/static/app.css`)).status, 200);
    const other = await json(fetch(`${base}/admin/dashboard/static/..%2F..%2Fpackage.json`));
    assert.equal(other.authorized, false, 'not served here: left to the API (its 404)');
  });

  it('locks out after repeated wrong passwords, and counts wrong bearer tokens too', async () => {
    const wrong = await login('nope');
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as Json).error, 'InvalidCredentials');
    assert.equal(
      (await fetch(`${base}/admin/dashboard/api/hosts`, { headers: { authorization: 'Bearer nope' } }))
        .status,
      401,
    );
    assert.equal((await login('nope again')).status, 401);
    const locked = await login(PASSWORD);
    assert.equal(locked.status, 429, 'locked out even with the right password');
    assert.equal(locked.headers.get('retry-after'), '60');
  });
});
