import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { after, before, describe, it } from 'node:test';
import {
  startTestServer,
  startTestTlsServer,
  TEST_TLS_CERT,
  type TestServer,
} from '../../../test/support/identity-servers.ts';
import { addressRefusalReason, parseIpv6 } from './ip-policy.ts';
import {
  createSafeFetcher,
  createWorkerSafeFetcher,
  FetchNetworkError,
  FetchTimeoutError,
  HttpStatusError,
  InvalidBodyError,
  type LookupFn,
  ResponseTooLargeError,
  SsrfRefusedError,
  TooManyRedirectsError,
} from './safe-fetch.ts';

// Counts every client socket node:net creates, so refusal tests can prove no
// connection was attempted.
let socketsCreated = 0;
const onSocket = (): void => {
  socketsCreated++;
};

function fixedLookup(map: Record<string, string[]>): LookupFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (hostname: string) => {
    calls.push(hostname);
    const addrs = map[hostname];
    if (!addrs) throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addrs.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(fn, { calls });
}

before(() => diagnosticsChannel.subscribe('net.client.socket', onSocket));
after(() => diagnosticsChannel.unsubscribe('net.client.socket', onSocket));

describe('ip-policy', () => {
  const refused = [
    '10.0.0.1',
    '10.255.255.255',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '127.0.0.1',
    '127.255.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '100.127.255.255',
    '0.0.0.0',
    '224.0.0.1',
    '239.255.255.250',
    '240.0.0.1',
    '255.255.255.255',
    '192.0.2.10',
    '198.18.0.1',
    '::',
    '::1',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
    '::ffff:a00:1',
    '0:0:0:0:0:ffff:169.254.169.254',
    '::10.0.0.1',
    '::8.8.8.8',
    '64:ff9b::10.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b:1::1',
    '2002:0a00:0001::1',
    'fc00::1',
    'fd12:3456::1',
    'fe80::1',
    'febf::1',
    'fec0::1',
    'ff02::1',
    '100::1',
    '2001:db8::1',
    '2001::1',
    'fe80::1%eth0',
    'localhost',
    'example.com',
  ];
  const allowed = [
    '8.8.8.8',
    '1.1.1.1',
    '172.32.0.1',
    '100.128.0.1',
    '192.169.0.1',
    '2606:4700::1111',
    '2a00:1450:4001::1',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
    '2002:0808:0808::1',
  ];
  for (const a of refused) {
    it(`refuses ${a}`, () => assert.notEqual(addressRefusalReason(a), undefined));
  }
  for (const a of allowed) {
    it(`allows ${a}`, () => assert.equal(addressRefusalReason(a), undefined));
  }
  it('parses IPv6 spellings to the same bytes', () => {
    assert.deepEqual(parseIpv6('::ffff:10.0.0.1'), parseIpv6('0:0:0:0:0:ffff:a00:1'));
    assert.deepEqual(parseIpv6('[::1]'), parseIpv6('0:0:0:0:0:0:0:1'));
    assert.equal(parseIpv6('1::2::3'), undefined);
    assert.equal(parseIpv6('1:2:3:4:5:6:7:8:9'), undefined);
  });
});

describe('safe-fetch refusals (no connection attempted)', () => {
  const privateAnswers = [
    '10.0.0.1',
    '169.254.169.254',
    '127.0.0.1',
    '::1',
    '::ffff:10.0.0.1',
    '100.64.0.1',
    'fd00::1',
    'fe80::1',
    '64:ff9b::192.168.0.1',
    '0.0.0.0',
  ];
  for (const address of privateAnswers) {
    it(`refuses a hostname resolving to ${address}`, async () => {
      const lookup = fixedLookup({ 'pds.example': [address] });
      const fetcher = createSafeFetcher({ lookup });
      const before = socketsCreated;
      await assert.rejects(fetcher.getJson('https://pds.example/xrpc/x'), (err: unknown) => {
        assert.ok(err instanceof SsrfRefusedError);
        assert.equal(err.address, address);
        return true;
      });
      assert.deepEqual(lookup.calls, ['pds.example']);
      assert.equal(socketsCreated, before);
    });
  }

  it('refuses when any one of several addresses is private', async () => {
    const lookup = fixedLookup({ 'mixed.example': ['8.8.8.8', '2606:4700::1', '10.1.2.3'] });
    const before = socketsCreated;
    await assert.rejects(
      createSafeFetcher({ lookup }).getText('https://mixed.example/'),
      (err: unknown) => err instanceof SsrfRefusedError && err.address === '10.1.2.3',
    );
    assert.equal(socketsCreated, before);
  });

  const literalUrls = [
    'https://127.0.0.1/',
    'https://[::1]/',
    'https://[::ffff:10.0.0.1]/',
    'https://[::ffff:7f00:1]/',
    'https://169.254.169.254/latest/meta-data',
    'https://0x7f.1/',
    'https://2130706433/',
    'https://[fd00::1]/',
    'https://100.64.0.1/',
  ];
  for (const url of literalUrls) {
    it(`refuses IP-literal ${url} without DNS`, async () => {
      const lookup = fixedLookup({});
      const before = socketsCreated;
      await assert.rejects(createSafeFetcher({ lookup }).request(url), SsrfRefusedError);
      assert.deepEqual(lookup.calls, []);
      assert.equal(socketsCreated, before);
    });
  }

  it('refuses http unless allowInsecure, odd ports, credentials and other schemes', async () => {
    const lookup = fixedLookup({ 'pds.example': ['8.8.8.8'] });
    const f = createSafeFetcher({ lookup });
    const before = socketsCreated;
    await assert.rejects(f.request('http://pds.example/'), /scheme http: not allowed/);
    await assert.rejects(f.request('https://pds.example:8443/'), /port 8443 not allowed/);
    await assert.rejects(f.request('https://user:pw@pds.example/'), /credentials/);
    await assert.rejects(f.request('file:///etc/passwd'), SsrfRefusedError);
    await assert.rejects(f.request('not a url'), SsrfRefusedError);
    assert.deepEqual(lookup.calls, []);
    assert.equal(socketsCreated, before);
  });

  it('times out a lookup that never answers', async () => {
    const f = createSafeFetcher({ lookup: () => new Promise(() => {}), connectTimeoutMs: 30 });
    await assert.rejects(
      f.request('https://slow.example/'),
      (err: unknown) => err instanceof FetchTimeoutError && err.phase === 'connect',
    );
  });

  it('wraps DNS failures', async () => {
    await assert.rejects(
      createSafeFetcher({ lookup: fixedLookup({}) }).request('https://nx.example/'),
      FetchNetworkError,
    );
  });
});

describe('safe-fetch rules lent to another thread (workerRules)', () => {
  it("a fetcher made from them asks the owner's resolveHost for every hop and refuses before connecting", async () => {
    const lookup = fixedLookup({ 'pds.example': ['169.254.169.254'], 'ok.example': ['93.184.216.34'] });
    const owner = createSafeFetcher({ lookup });
    const rules = owner.workerRules?.();
    assert.ok(rules);
    assert.deepEqual(rules.settings.allowedPorts, [80, 443]);
    // structured-clonable: what travels to the worker is plain data
    assert.deepEqual(structuredClone(rules.settings), rules.settings);
    const asked: string[] = [];
    const lent = createWorkerSafeFetcher(rules.settings, (host) => {
      asked.push(host);
      return rules.resolveHost(host);
    });
    const before = socketsCreated;
    await assert.rejects(lent.request('https://pds.example/xrpc/x'), (err: unknown) => {
      assert.ok(err instanceof SsrfRefusedError);
      assert.equal(err.address, '169.254.169.254');
      return true;
    });
    await assert.rejects(lent.request('https://ok.example:8443/x'), /port 8443 not allowed/);
    await assert.rejects(lent.request('http://ok.example/x'), /scheme http: not allowed/);
    await assert.rejects(lent.request('https://missing.example/x'), (err: unknown) => {
      assert.ok(err instanceof FetchNetworkError);
      assert.match(String((err as Error).cause), /ENOTFOUND/);
      return true;
    });
    assert.deepEqual(asked, ['pds.example', 'missing.example']);
    assert.deepEqual(lookup.calls, ['pds.example', 'missing.example'], 'the lookups ran on the owner');
    assert.equal(socketsCreated, before);
  });
});

describe('safe-fetch against a loopback server', () => {
  let server: TestServer;
  let hangingResponses = 0;
  before(async () => {
    server = await startTestServer((req, res) => {
      const path = req.url ?? '/';
      if (path === '/json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true, host: req.headers.host }));
      } else if (path === '/notjson') {
        res.end('<html>');
      } else if (path === '/missing') {
        res.writeHead(404);
        res.end('nope');
      } else if (path === '/big-declared') {
        res.writeHead(200, { 'content-length': '5000' });
        res.end('x'.repeat(5000));
      } else if (path === '/big-chunked') {
        res.writeHead(200);
        res.write('x'.repeat(3000));
        res.write('x'.repeat(3000));
        res.end();
      } else if (path === '/hang') {
        hangingResponses++;
      } else if (path.startsWith('/redirect-to?')) {
        res.writeHead(302, { location: decodeURIComponent(path.slice('/redirect-to?'.length)) });
        res.end();
      } else if (path === '/loop') {
        res.writeHead(301, { location: '/loop' });
        res.end();
      } else {
        res.writeHead(200);
        res.end(path);
      }
    });
  });
  after(() => server.close());

  const devFetcher = (extra: Parameters<typeof createSafeFetcher>[0] = {}) =>
    createSafeFetcher({ allowPrivate: true, allowInsecure: true, ...extra });

  it('connects to the pinned address and keeps the hostname in Host', async () => {
    let calls = 0;
    const lookup: LookupFn = async () => {
      calls++;
      // a rebinding resolver: only the first answer is loopback
      return calls === 1 ? [{ address: '127.0.0.1', family: 4 }] : [{ address: '10.9.9.9', family: 4 }];
    };
    const before = socketsCreated;
    const res = await devFetcher({ lookup }).getJson(`http://pds.test:${server.port}/json`);
    assert.equal(socketsCreated, before + 1, 'the socket spy sees real connections');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { ok: true, host: `pds.test:${server.port}` });
    assert.equal(calls, 1);
  });

  it('re-checks every redirect hop', async () => {
    const lookup = fixedLookup({ 'good.test': ['127.0.0.1'], 'evil.test': ['10.0.0.1'] });
    const onlyLoopback = (a: string) => (a === '127.0.0.1' ? undefined : 'not loopback');
    const f = createSafeFetcher({
      allowInsecure: true,
      lookup,
      addressPolicy: onlyLoopback,
      allowedPorts: [server.port],
    });
    const ok = await f.getText(`http://good.test:${server.port}/redirect-to?${encodeURIComponent('/final')}`);
    assert.equal(ok.text, '/final');
    assert.equal(ok.url, `http://good.test:${server.port}/final`);
    const before = server.requests.length;
    await assert.rejects(
      f.request(
        `http://good.test:${server.port}/redirect-to?${encodeURIComponent(`http://evil.test:${server.port}/x`)}`,
      ),
      (err: unknown) => err instanceof SsrfRefusedError && err.address === '10.0.0.1',
    );
    assert.equal(server.requests.length, before + 1);
    await assert.rejects(
      f.request(`http://good.test:${server.port}/redirect-to?${encodeURIComponent('http://127.0.0.1:1/')}`),
      /port 1 not allowed/,
    );
  });

  it('stops after maxRedirects', async () => {
    await assert.rejects(
      devFetcher({ maxRedirects: 2 }).request(`${server.url}/loop`),
      TooManyRedirectsError,
    );
  });

  it('enforces the response size cap, declared or streamed', async () => {
    const f = devFetcher({ maxResponseBytes: 4096 });
    await assert.rejects(f.request(`${server.url}/big-declared`), ResponseTooLargeError);
    await assert.rejects(f.request(`${server.url}/big-chunked`), ResponseTooLargeError);
    const small = await f.request(`${server.url}/big-chunked`, { maxResponseBytes: 10_000 });
    assert.equal(small.body.length, 6000);
  });

  it('times out a response that never comes', async () => {
    // Long enough that the server has read the request before the deadline
    // even on a busy machine (a 50 ms deadline could fire first, in the same
    // event-loop turn as the request's arrival), so the timeout is the
    // response's, as the assertion below checks.
    await assert.rejects(
      devFetcher().request(`${server.url}/hang`, { timeoutMs: 1000 }),
      (err: unknown) => err instanceof FetchTimeoutError && err.phase === 'total',
    );
    assert.ok(hangingResponses >= 1);
  });

  it('reports non-2xx as HttpStatusError and bad JSON as InvalidBodyError', async () => {
    await assert.rejects(
      devFetcher().getJson(`${server.url}/missing`),
      (err: unknown) => err instanceof HttpStatusError && err.status === 404 && err.bodyPreview === 'nope',
    );
    const res = await devFetcher().getText(`${server.url}/missing`, { acceptStatus: () => true });
    assert.equal(res.status, 404);
    await assert.rejects(devFetcher().getJson(`${server.url}/notjson`), InvalidBodyError);
  });

  it('still refuses loopback when allowPrivate is off', async () => {
    await assert.rejects(
      createSafeFetcher({ allowInsecure: true, allowedPorts: [server.port] }).request(`${server.url}/json`),
      SsrfRefusedError,
    );
  });

  it('reuses connections with keepAlive and closes them', async () => {
    const f = devFetcher({ keepAlive: true });
    await f.getJson(`${server.url}/json`);
    await f.getJson(`${server.url}/json`);
    f.close();
  });

  it('does not forward credentials across origins on redirect', async () => {
    const lookup = fixedLookup({ 'a.test': ['127.0.0.1'], 'b.test': ['127.0.0.1'] });
    const f = devFetcher({ lookup });
    const target = `http://b.test:${server.port}/seen`;
    await f.request(`http://a.test:${server.port}/redirect-to?${encodeURIComponent(target)}`, {
      headers: { authorization: 'Bearer secret', 'x-trace': '1' },
    });
    const [first, second] = server.requests.slice(-2);
    assert.equal(first.headers.authorization, 'Bearer secret');
    assert.equal(second.headers.authorization, undefined);
    assert.equal(second.headers['x-trace'], '1');
    assert.equal(second.headers.host, `b.test:${server.port}`);
  });

  it('honours an abort signal', async () => {
    const ac = new AbortController();
    const p = devFetcher().request(`${server.url}/hang`, { signal: ac.signal });
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(p, /aborted/);
  });
});

describe('safe-fetch over TLS', () => {
  let tls: Awaited<ReturnType<typeof startTestTlsServer>>;
  before(async () => {
    tls = await startTestTlsServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ host: req.headers.host }));
    });
  });
  after(() => tls.close());

  it('pins the address but keeps SNI, certificate name and Host as the hostname', async () => {
    const lookup = fixedLookup({ 'pds.test': ['127.0.0.1'], 'other.test': ['127.0.0.1'] });
    const f = createSafeFetcher({ allowPrivate: true, lookup, ca: TEST_TLS_CERT });
    const res = await f.getJson(`https://pds.test:${tls.port}/`);
    assert.deepEqual(res.json, { host: `pds.test:${tls.port}` });
    assert.deepEqual(tls.serverNames, ['pds.test']);
    // the certificate is for pds.test, so another name on the same address fails verification
    await assert.rejects(f.getJson(`https://other.test:${tls.port}/`), FetchNetworkError);
    // and an untrusted certificate fails without the test CA
    await assert.rejects(
      createSafeFetcher({ allowPrivate: true, lookup }).getJson(`https://pds.test:${tls.port}/`),
      FetchNetworkError,
    );
  });
});
