// Hostile HTTP and WebSocket clients against a real started relay (issue 12,
// "HTTP and WebSocket surface"): raw `net` sockets on loopback send what a
// browser or a well-behaved client never would, and the relay must answer or
// cut them off without ending the process or starving other clients.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { FirehoseClient } from '../test/support/api-harness.ts';
import { type MainProcess, startMain } from '../test/support/main-process.ts';
import { TEST_ADMIN_PASSWORD, testRelayConfig } from '../test/support/relay-harness.ts';
import { tempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import { EventKind } from './eventlog/types.ts';
import { silentLogger } from './log.ts';
import { encodeFrame } from './protocol/frames.ts';
import { Relay } from './relay.ts';

// Nothing in these tests resolves a DID: the PLC URL only has to be well-formed.
const UNUSED_PLC = 'http://127.0.0.1:9';

async function startRelay(dataDir: string, extra: Record<string, string> = {}): Promise<Relay> {
  const relay = new Relay(testRelayConfig(dataDir, UNUSED_PLC, extra), silentLogger);
  await relay.start();
  return relay;
}

interface RawClient {
  socket: Socket;
  /** Everything received so far. */
  received(): string;
  closed(): boolean;
}

/** `allowHalfOpen`: keep our side open after the relay ends its side (a client that never closes). */
function rawClient(
  port: number,
  opts: { localAddress?: string; allowHalfOpen?: boolean } = {},
): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let isClosed = false;
    const socket = connect({
      host: '127.0.0.1',
      port,
      localAddress: opts.localAddress,
      allowHalfOpen: opts.allowHalfOpen,
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => {});
    socket.on('close', () => {
      isClosed = true;
    });
    socket.once('connect', () =>
      resolve({ socket, received: () => Buffer.concat(chunks).toString('latin1'), closed: () => isClosed }),
    );
    socket.once('error', reject);
  });
}

function upgradeRequest(target: string): string {
  return (
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
    'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'
  );
}

/** One GET on its own connection (optionally from another loopback address), with extra headers. */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  localAddress?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Resolves true once the relay answers a health probe on a fresh connection. */
async function answers(port: number): Promise<boolean> {
  return get(port, '/_healthz').then(
    (r) => r.status === 200,
    () => false,
  );
}

/** Appends `n` #commit events straight to the relay's event log (what consumers are sent). */
async function appendEvents(relay: Relay, n: number): Promise<number[]> {
  const log = relay.eventLog;
  if (!log) throw new Error('relay not started');
  return log.append(
    Array.from({ length: n }, () => ({
      kind: EventKind.commit,
      uid: 1,
      frame: (seq: number) => encodeFrame('#commit', { seq, repo: 'did:plc:hardening', rev: String(seq) }),
    })),
  );
}

const FIREHOSE = '/xrpc/com.atproto.sync.subscribeRepos';

async function metric(relay: Relay, name: string, labels: string): Promise<number> {
  const text = await relay.registry.metrics();
  const m = new RegExp(`^${name}${labels ? `\\{${labels}\\}` : ''} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('the relay process against hostile upgrade requests', () => {
  // One relay process per test, so that a crash in one does not hide another.
  let dataDir: string;
  let main: MainProcess;
  let port: number;

  beforeEach(async () => {
    dataDir = tempDir('atrelay-http-');
    main = startMain({
      RELAY_PORT: '0',
      RELAY_METRICS_PORT: '0',
      RELAY_BIND: '127.0.0.1',
      RELAY_DATA_DIR: dataDir,
      RELAY_PLC_URL: UNUSED_PLC,
      RELAY_EVENTLOG_FSYNC: 'false',
      RELAY_VALIDATION_WORKERS: '0',
    });
    port = (await main.waitForLog('relay started')).port as number;
  });

  afterEach(async () => {
    if (main.alive()) {
      main.child.kill('SIGTERM');
      await main.exitCode();
    }
  });

  const assertAlive = async (): Promise<void> => {
    const status = await fetch(`http://127.0.0.1:${port}/_healthz`).then(
      (res) => res.status,
      (err: Error) => `${err.message} (${(err.cause as Error | undefined)?.message})`,
    );
    assert.equal(status, 200, `relay does not answer; stderr: ${main.stderr()}`);
  };

  it('an upgrade request to "//", "///" or "//:99999" gets an error answer, not a crash', async () => {
    const targets: [string, RegExp][] = [
      ['//', /^HTTP\/1\.1 404 /],
      ['///', /^HTTP\/1\.1 404 /],
      ['//:99999', /^HTTP\/1\.1 404 /],
      ['//[', /^HTTP\/1\.1 404 /],
      ['http://[', /^HTTP\/1\.1 400 /],
      ['/xrpc/../xrpc/com.atproto.sync.subscribeRepos', /^HTTP\/1\.1 400 /],
      [`/xrpc/com.atproto.sync.subscribeRepos?${'a&'.repeat(100)}`, /^HTTP\/1\.1 400 /],
      // A stray % in the query is not an error: the handshake completes.
      ['/xrpc/com.atproto.sync.subscribeRepos?%', /^HTTP\/1\.1 101 /],
    ];
    for (const [target, expected] of targets) {
      const c = await rawClient(port);
      c.socket.write(upgradeRequest(target));
      await waitFor(
        () => c.closed() || c.received().includes('\r\n\r\n') || !main.alive(),
        `an answer to ${target}`,
      );
      await assertAlive();
      assert.match(c.received(), expected, `answer to ${target}`);
      c.socket.destroy();
    }
  });

  it('upgrade requests reset by the client right after sending do not crash the relay', async () => {
    for (let i = 0; i < 100; i++) {
      const c = await rawClient(port);
      c.socket.write(
        upgradeRequest(i % 2 ? `/not-the-firehose-${i}` : '/xrpc/com.atproto.sync.subscribeRepos'),
      );
      c.socket.resetAndDestroy();
      if (!main.alive()) break;
    }
    await assertAlive();
  });
});

describe('relay HTTP limits (slowloris, floods, proxies, binds)', () => {
  const relays: Relay[] = [];
  const sockets: Socket[] = [];
  const consumers: FirehoseClient[] = [];

  const start = async (extra: Record<string, string>): Promise<Relay> => {
    const relay = await startRelay(tempDir('atrelay-http-'), extra);
    relays.push(relay);
    return relay;
  };
  const raw = async (
    port: number,
    opts: { localAddress?: string; allowHalfOpen?: boolean } = {},
  ): Promise<RawClient> => {
    const c = await rawClient(port, opts);
    sockets.push(c.socket);
    return c;
  };
  const consumer = async (
    url: string,
    opts?: ConstructorParameters<typeof FirehoseClient>[1],
  ): Promise<FirehoseClient> => {
    const c = new FirehoseClient(url, opts);
    consumers.push(c);
    await c.opened;
    return c;
  };

  afterEach(async () => {
    for (const c of consumers.splice(0)) c.close();
    for (const s of sockets.splice(0)) s.destroy();
    for (const r of relays.splice(0)) await r.stop();
  });

  it('a client trickling its request head is answered 408 and cut off; others are served meanwhile', async () => {
    const relay = await start({ RELAY_HTTP_HEADERS_TIMEOUT_MS: '400', RELAY_HTTP_REQUEST_TIMEOUT_MS: '800' });
    const slow = await raw(relay.port);
    const began = Date.now();
    slow.socket.write('GET /_healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    // One header byte every 20 ms: the connection is never idle, the head never ends.
    const trickle = setInterval(() => {
      if (!slow.socket.destroyed) slow.socket.write('X');
    }, 20);
    try {
      assert.ok(await answers(relay.port), 'another client is served while the slow one trickles');
      await waitFor(() => slow.closed(), 'the trickling client cut off');
    } finally {
      clearInterval(trickle);
    }
    assert.ok(Date.now() - began >= 400, 'not before the headers timeout');
    assert.match(slow.received(), /^HTTP\/1\.1 408 /);
    assert.ok(
      (await metric(relay, 'relay_http_client_errors_total', 'server="public",reason="timeout"')) >= 1,
    );
    assert.ok(await answers(relay.port));
  });

  it('a client trickling its request body is cut off at the request timeout', async () => {
    const relay = await start({ RELAY_HTTP_HEADERS_TIMEOUT_MS: '300', RELAY_HTTP_REQUEST_TIMEOUT_MS: '600' });
    const slow = await raw(relay.port);
    const began = Date.now();
    slow.socket.write(
      'POST /xrpc/com.atproto.sync.requestCrawl HTTP/1.1\r\nHost: 127.0.0.1\r\n' +
        'Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{',
    );
    const trickle = setInterval(() => {
      if (!slow.socket.destroyed) slow.socket.write(' ');
    }, 20);
    try {
      await waitFor(() => slow.closed(), 'the trickling client cut off');
    } finally {
      clearInterval(trickle);
    }
    assert.ok(Date.now() - began >= 600, 'not before the request timeout');
    assert.ok(await answers(relay.port));
  });

  it('connections past the cap are refused while existing consumers keep receiving', async () => {
    // Long head timeouts: the idle sockets below must hold their slots for the whole test.
    const relay = await start({
      RELAY_MAX_CONNECTIONS: '4',
      RELAY_HTTP_HEADERS_TIMEOUT_MS: '600000',
      RELAY_HTTP_REQUEST_TIMEOUT_MS: '600000',
    });
    const c = await consumer(`ws://127.0.0.1:${relay.port}${FIREHOSE}`);
    const idle = [await raw(relay.port), await raw(relay.port), await raw(relay.port)];
    // The fifth connection is closed as soon as it is accepted, without an answer.
    const refused = await raw(relay.port);
    refused.socket.write('GET /_healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await waitFor(() => refused.closed(), 'the connection past the cap closed');
    assert.equal(refused.received(), '');
    assert.ok((await metric(relay, 'relay_http_connections_refused_total', 'server="public"')) >= 1);
    // The consumer that was already connected is unaffected.
    const seqs = await appendEvents(relay, 5);
    await c.waitFor((frames) => frames.filter((f) => f.t === '#commit').length === 5);
    assert.deepEqual(
      c.frames.map((f) => f.seq),
      seqs,
    );
    // A slot freed is a slot usable again.
    idle[0].socket.destroy();
    await waitFor(() => answers(relay.port), 'a new connection served once one closed');
  });

  it('the metrics port has its own connection cap', async () => {
    const relay = await start({
      RELAY_METRICS_MAX_CONNECTIONS: '2',
      RELAY_HTTP_HEADERS_TIMEOUT_MS: '600000',
      RELAY_HTTP_REQUEST_TIMEOUT_MS: '600000',
    });
    await raw(relay.metricsPort);
    await raw(relay.metricsPort);
    const refused = await raw(relay.metricsPort);
    await waitFor(() => refused.closed(), 'the metrics connection past the cap closed');
    assert.ok((await metric(relay, 'relay_http_connections_refused_total', 'server="metrics"')) >= 1);
    assert.ok(await answers(relay.port), 'the public port is not affected');
  });

  it('upgrades that never finish are bounded in number and time; consumers are not cut', async () => {
    const relay = await start({ RELAY_MAX_PENDING_UPGRADES: '2', RELAY_UPGRADE_TIMEOUT_MS: '400' });
    const c = await consumer(`ws://127.0.0.1:${relay.port}${FIREHOSE}`);
    // Two refused upgrades whose clients never read the answer nor close.
    const began = Date.now();
    const stuck = [
      await raw(relay.port, { allowHalfOpen: true }),
      await raw(relay.port, { allowHalfOpen: true }),
    ];
    for (const s of stuck) s.socket.write(upgradeRequest('/not-a-websocket'));
    await waitFor(() => stuck.every((s) => s.received().includes('404')), 'both refused with 404');
    const third = await raw(relay.port);
    third.socket.write(upgradeRequest(FIREHOSE));
    await waitFor(() => third.closed(), 'the third pending upgrade refused');
    assert.match(third.received(), /^(HTTP\/1\.1 503 |)/);
    assert.ok((await metric(relay, 'relay_http_upgrade_failures_total', 'reason="pending_limit"')) >= 1);
    // The stuck ones are destroyed at the upgrade timeout (the relay had already
    // sent its FIN; what a client writes now is answered with a reset, which
    // the client notices on a later write).
    await waitFor(
      async () => (await metric(relay, 'relay_http_upgrade_failures_total', 'reason="timeout"')) >= 2,
      'stuck upgrades timed out',
    );
    assert.ok(Date.now() - began >= 400, 'not before the upgrade timeout');
    assert.equal(await metric(relay, 'relay_http_pending_upgrades', ''), 0);
    await waitFor(() => {
      for (const s of stuck) if (!s.socket.destroyed) s.socket.write('still there?');
      return stuck.every((s) => s.closed());
    }, 'stuck upgrades destroyed');
    // The consumer (handshake done before) outlived the timeout and still receives.
    const seqs = await appendEvents(relay, 3);
    await c.waitFor((frames) => frames.length === 3);
    assert.deepEqual(
      c.frames.map((f) => f.seq),
      seqs,
    );
    // And new consumers can connect again.
    const d = await consumer(`ws://127.0.0.1:${relay.port}${FIREHOSE}?cursor=0`);
    await d.waitFor((frames) => frames.length === 3);
  });

  it('X-Forwarded-For only from a trusted proxy: consumer limits per /64 and the consumer listing', async () => {
    const relay = await start({ RELAY_TRUSTED_PROXIES: '127.0.0.2', RELAY_MAX_CONSUMERS_PER_IP: '2' });
    const url = `ws://127.0.0.1:${relay.port}${FIREHOSE}`;
    const via = (localAddress: string, client: string) => ({
      localAddress,
      headers: { 'x-forwarded-for': `198.51.100.99, ${client}` },
    });
    // Through the proxy: two from one /64 fill its slots, a third is refused, the next /64 is fine.
    await consumer(url, via('127.0.0.2', '2001:db8:9:9::1'));
    await consumer(url, via('127.0.0.2', '2001:db8:9:9:ffff::2'));
    const refused = new FirehoseClient(url, via('127.0.0.2', '2001:db8:9:9::3'));
    consumers.push(refused);
    await assert.rejects(refused.opened, /429/);
    await consumer(url, via('127.0.0.2', '2001:db8:9:a::1'));
    // Direct from an untrusted peer: the header is ignored, the peer's own address counts.
    await consumer(url, via('127.0.0.1', '203.0.113.1'));
    await consumer(url, via('127.0.0.1', '203.0.113.2'));
    const spoofed = new FirehoseClient(url, via('127.0.0.1', '203.0.113.3'));
    consumers.push(spoofed);
    await assert.rejects(spoofed.opened, /429/);
    const listing = await get(relay.port, '/admin/consumers', {
      authorization: `Bearer ${TEST_ADMIN_PASSWORD}`,
    });
    const addresses = (JSON.parse(listing.body) as { consumers: { remoteAddress: string }[] }).consumers
      .map((x) => x.remoteAddress)
      .sort();
    assert.deepEqual(addresses, [
      '127.0.0.1',
      '127.0.0.1',
      '2001:db8:9:9::1',
      '2001:db8:9:9:ffff::2',
      '2001:db8:9:a::1',
    ]);
  });

  it('behind a trusted proxy one client cannot lock everyone out of admin', async () => {
    const relay = await start({ RELAY_TRUSTED_PROXIES: '127.0.0.2' });
    const as = (client: string, password: string) =>
      get(
        relay.port,
        '/admin/hosts',
        { authorization: `Bearer ${password}`, 'x-forwarded-for': client },
        '127.0.0.2',
      );
    for (let i = 0; i < 10; i++) assert.equal((await as('203.0.113.66', 'guess')).status, 401);
    assert.equal((await as('203.0.113.66', TEST_ADMIN_PASSWORD)).status, 429, 'the attacker is locked out');
    assert.equal((await as('198.51.100.1', TEST_ADMIN_PASSWORD)).status, 200, 'the operator is not');
  });

  it('bounded inputs on the public port: every refusal is a JSON error, and the relay keeps serving', async () => {
    const relay = await start({});
    const json = async (req: string): Promise<{ status: number; error: string }> => {
      const c = await raw(relay.port);
      c.socket.write(req);
      await waitFor(() => c.closed() || /\r\n\r\n\{.*\}$/s.test(c.received()), 'a complete answer');
      const text = c.received();
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(text)?.[1]);
      const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { error: string; message: string };
      assert.equal(typeof body.message, 'string', text);
      return { status, error: body.error };
    };
    const getReq = (target: string, headers = ''): string =>
      `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n`;
    const params = Array.from({ length: 65 }, (_, i) => `p${i}=1`).join('&');
    const cases: [string, string, number, string][] = [
      [
        'too many query parameters',
        getReq(`/xrpc/com.atproto.sync.listRepos?${params}`),
        400,
        'InvalidRequest',
      ],
      [
        'URL over 8 KiB',
        getReq(`/xrpc/com.atproto.sync.listRepos?cursor=${'1'.repeat(9000)}`),
        414,
        'InvalidRequest',
      ],
      ['dot segments', getReq('/xrpc/%2e%2e/admin/hosts'), 400, 'InvalidRequest'],
      [
        'request head over 16 KiB',
        getReq('/_healthz', `X-Big: ${'a'.repeat(17_000)}\r\n`),
        431,
        'InvalidRequest',
      ],
      ['malformed request line', 'GET /\x01 HTTP/1.1\r\n\r\n', 400, 'InvalidRequest'],
      ['bad header', 'GET / HTTP/1.1\r\nBad Header\r\n\r\n', 400, 'InvalidRequest'],
      [
        'body over 64 KiB (chunked)',
        `POST /xrpc/com.atproto.sync.requestCrawl HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${(70_000).toString(16)}\r\n${' '.repeat(70_000)}\r\n`,
        413,
        'PayloadTooLarge',
      ],
    ];
    for (const [what, req, status, error] of cases) {
      assert.deepEqual(await json(req), { status, error }, what);
    }
    assert.ok(await answers(relay.port));
  });

  it('the metrics server binds to loopback unless RELAY_METRICS_BIND says otherwise', async () => {
    const relay = await start({ RELAY_BIND: '127.0.0.3' });
    assert.equal((relay.publicAddress as AddressInfo).address, '127.0.0.3');
    assert.equal((relay.metricsAddress as AddressInfo).address, '127.0.0.1');
    const other = await start({ RELAY_BIND: '127.0.0.1', RELAY_METRICS_BIND: '127.0.0.4' });
    assert.equal((other.metricsAddress as AddressInfo).address, '127.0.0.4');
  });
});
