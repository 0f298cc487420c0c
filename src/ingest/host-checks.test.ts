// SSRF and ban refusals. DNS is injected, so names resolve to whatever the
// test says (private addresses included) and nothing leaves loopback: each
// refusal must happen before any connection is attempted.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { RecordingSink, testConfig } from '../../test/support/ingest-support.ts';
import { tempMetadataStore } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createSafeFetcher, type LookupFn, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { checkDescribeServer, guardedLookup } from './host-checks.ts';
import { HostManager } from './host-manager.ts';
import { CrawlRefusedError } from './host-policy.ts';

function fakeDns(table: Record<string, string>): LookupFn & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (hostname: string) => {
    calls.push(hostname);
    const address = table[hostname];
    if (!address) throw Object.assign(new Error(`ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return [{ address, family: address.includes(':') ? 6 : 4 }];
  };
  return Object.assign(fn, { calls });
}

function spyFetcher(inner: SafeFetcher): SafeFetcher & { urls: string[] } {
  const urls: string[] = [];
  return {
    urls,
    request: (u, o) => {
      urls.push(u);
      return inner.request(u, o);
    },
    getJson: (u, o) => {
      urls.push(u);
      return inner.getJson(u, o);
    },
    getText: (u, o) => {
      urls.push(u);
      return inner.getText(u, o);
    },
    close: () => inner.close(),
  };
}

describe('requestCrawl refusals (production rules, injected DNS)', () => {
  it('refuses names that resolve to private, loopback or metadata addresses before connecting', async () => {
    const dns = fakeDns({
      'internal.example.com': '10.0.0.7',
      'loop.example.com': '127.0.0.1',
      'meta.example.com': '169.254.169.254',
      'v6.example.com': '::1',
    });
    const fetcher = spyFetcher(createSafeFetcher({ lookup: dns }));
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    const m = new HostManager({
      store: db.store,
      sink: new RecordingSink(),
      fetcher,
      lookup: dns,
      config: testConfig({ allowInsecureHosts: false }),
    });
    await m.start();
    try {
      for (const name of ['internal.example.com', 'loop.example.com', 'meta.example.com', 'v6.example.com']) {
        await assert.rejects(
          m.crawl(name),
          (e: CrawlRefusedError) =>
            e instanceof CrawlRefusedError && e.status === 400 && /address not allowed/.test(e.message),
          name,
        );
      }
      for (const raw of ['127.0.0.1:2583', 'localhost', '10.0.0.1', 'http://pds.example.com']) {
        await assert.rejects(m.crawl(raw), CrawlRefusedError, raw);
      }
      assert.deepEqual(await db.store.listHosts({ limit: 10 }), []);
      assert.equal(m.list().length, 0);
    } finally {
      await m.stop();
      await db.destroy();
    }
  });

  it('refuses banned domains (suffix match) and blocked hosts without any network call', async () => {
    const dns = fakeDns({});
    const fetcher = spyFetcher(createSafeFetcher({ lookup: dns }));
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    await db.store.addDomainBan('example.com');
    await db.store.createHost({ hostname: 'blocked.example.org', status: 'blocked' });
    const m = new HostManager({
      store: db.store,
      sink: new RecordingSink(),
      fetcher,
      lookup: dns,
      config: testConfig({ allowInsecureHosts: false }),
    });
    await m.start();
    try {
      for (const name of ['pds.example.com', 'a.b.example.com', 'example.com', 'blocked.example.org']) {
        await assert.rejects(m.crawl(name), (e: CrawlRefusedError) => e.error === 'HostBanned', name);
      }
      // an admin cannot add a banned domain either
      await assert.rejects(
        m.crawl('pds.example.com', { admin: true }),
        (e: CrawlRefusedError) => e.error === 'HostBanned',
      );
      assert.deepEqual(fetcher.urls, []);
      assert.deepEqual(dns.calls, []);
    } finally {
      await m.stop();
      await db.destroy();
    }
  });

  it('refuses a "host" that is itself a relay (Server: atproto-relay)', async () => {
    const server = createServer((_req, res) => {
      res.writeHead(200, { server: 'atproto-relay (atrelay)', 'content-type': 'application/json' });
      res.end(JSON.stringify({ did: 'did:web:relay.example.com' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
      await assert.rejects(
        checkDescribeServer(fetcher, { hostname: `127.0.0.1:${port}`, tls: false }),
        (e: CrawlRefusedError) => e.error === 'HostBanned' && /relay/.test(e.message),
      );
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a saved host whose name now resolves to loopback is never dialled, and ends up offline', async () => {
    const dns = fakeDns({ 'rebound.example.com': '127.0.0.1' });
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    const { value: host } = await db.store.createHost({ hostname: 'rebound.example.com' });
    const m = new HostManager({
      store: db.store,
      sink: new RecordingSink(),
      lookup: dns, // default fetcher, built with the same lookup and production rules
      config: testConfig({
        allowInsecureHosts: false,
        hostMaxFailures: 2,
        backoffBaseMs: 5,
        backoffMaxMs: 10,
      }),
    });
    await m.start();
    try {
      await waitFor(async () => (await db.store.getHost(host.id))?.status === 'offline', 'offline');
      const sub = m.subscriber(host.id)!;
      assert.match(sub.lastError ?? '', /refused rebound\.example\.com: address 127\.0\.0\.1 is loopback/);
      assert.ok(dns.calls.length >= 2);
    } finally {
      await m.stop();
      await db.destroy();
    }
  });

  it('the subscription socket applies the same address policy in its own DNS lookup', async () => {
    const dns = fakeDns({ 'evil.example.com': '192.168.1.10' });
    const ws = new WebSocket('ws://evil.example.com:4567/xrpc/com.atproto.sync.subscribeRepos', {
      lookup: guardedLookup(dns, false),
    } as WebSocket.ClientOptions);
    const closed = new Promise((r) => ws.on('close', r));
    const err = await new Promise<Error & { code?: string }>((resolve) => ws.on('error', resolve));
    assert.equal(err.code, 'ESSRF');
    assert.match(err.message, /192\.168\.1\.10 is private/);
    await closed;
  });
});
