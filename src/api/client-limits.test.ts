// Per-client limits of the API key on the client's network (IPv4 address or
// IPv6 /64, IPv4-mapped IPv6 as IPv4) and on the client behind a trusted
// proxy (X-Forwarded-For), never on a header an untrusted peer sent. The
// harness's server sees every request from 127.0.0.1; the proxy list decides
// whether that peer's X-Forwarded-For is believed.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { ADMIN_PASSWORD, type Harness, startHarness } from '../../test/support/api-harness.ts';
import { ClientAddressResolver, parseAddressBlocks } from '../http/client-address.ts';

const CRAWL = '/xrpc/com.atproto.sync.requestCrawl';

function behindProxies(list: string): (req: IncomingMessage) => string {
  const resolver = new ClientAddressResolver(parseAddressBlocks(list));
  return (req) => resolver.address(req);
}

async function status(res: Response): Promise<number> {
  await res.arrayBuffer();
  return res.status;
}

async function withHarness(
  overrides: Parameters<typeof startHarness>[0],
  body: (h: Harness) => Promise<void>,
): Promise<void> {
  const h = await startHarness(overrides);
  try {
    await body(h);
  } finally {
    await h.close();
  }
}

describe('per-client limits by network, behind trusted proxies', () => {
  it('requestCrawl: one IPv6 /64 shares a bucket; another /64 and IPv4 clients have their own', async () => {
    await withHarness(
      { requestCrawlPerIpPerMinute: 2, clientAddress: behindProxies('127.0.0.1') },
      async (h) => {
        const from = (client: string) => ({ 'x-forwarded-for': client });
        let n = 0;
        const crawl = (client: string) => h.post(CRAWL, { hostname: `h${n++}.example` }, from(client));
        assert.equal(await status(await crawl('2001:db8:1:2::1')), 200);
        assert.equal(await status(await crawl('2001:db8:1:2:ffff::2')), 200);
        // Same /64, a different address: the bucket is the network's.
        assert.equal(await status(await crawl('2001:db8:1:2:dead:beef:0:3')), 429);
        assert.equal(await status(await crawl('2001:db8:1:3::1')), 200, 'the next /64 is another client');
        assert.equal(await status(await crawl('203.0.113.1')), 200);
        assert.equal(await status(await crawl('::ffff:203.0.113.1')), 200, 'IPv4-mapped counts as IPv4');
        assert.equal(await status(await crawl('203.0.113.1')), 429);
      },
    );
  });

  it('requestCrawl: an untrusted peer cannot pick a fresh bucket with a spoofed X-Forwarded-For', async () => {
    await withHarness(
      { requestCrawlPerIpPerMinute: 2, clientAddress: behindProxies('127.0.0.2') },
      async (h) => {
        const codes: number[] = [];
        for (let i = 0; i < 4; i++) {
          const spoofed = { 'x-forwarded-for': `198.51.100.${i}` };
          codes.push(await status(await h.post(CRAWL, { hostname: `s${i}.example` }, spoofed)));
        }
        assert.deepEqual(codes, [200, 200, 429, 429]);
      },
    );
  });

  it('admin lock-out: keyed on the client behind the proxy, by /64; other clients of the proxy unaffected', async () => {
    await withHarness(
      { adminFailuresPerMinute: 2, clientAddress: behindProxies('127.0.0.0/8') },
      async (h) => {
        const as = (client: string, password: string) =>
          h.get('/admin/hosts', {
            authorization: `Bearer ${password}`,
            'x-forwarded-for': `192.0.2.200, ${client}, 127.0.0.9`,
          });
        assert.equal(await status(await as('2001:db8:7:7::1', 'wrong')), 401);
        assert.equal(await status(await as('2001:db8:7:7::2', 'wrong')), 401);
        // The attacker's whole /64 is locked out, even with the right password…
        assert.equal(await status(await as('2001:db8:7:7::3', ADMIN_PASSWORD)), 429);
        // …but the operator behind the same proxy is not.
        assert.equal(await status(await as('2001:db8:7:8::1', ADMIN_PASSWORD)), 200);
        assert.equal(await status(await as('198.51.100.7', ADMIN_PASSWORD)), 200);
        // Without the header the client is the proxy itself, a client of its own.
        const direct = await h.get('/admin/hosts', { authorization: `Bearer ${ADMIN_PASSWORD}` });
        assert.equal(await status(direct), 200);
      },
    );
  });

  it('admin lock-out: spoofed X-Forwarded-For from an untrusted peer does not escape it', async () => {
    await withHarness(
      { adminFailuresPerMinute: 2, clientAddress: behindProxies('10.0.0.0/8') },
      async (h) => {
        const as = (spoofed: string, password: string) =>
          h.get('/admin/hosts', { authorization: `Bearer ${password}`, 'x-forwarded-for': spoofed });
        assert.equal(await status(await as('203.0.113.1', 'wrong')), 401);
        assert.equal(await status(await as('203.0.113.2', 'wrong')), 401);
        assert.equal(await status(await as('203.0.113.3', ADMIN_PASSWORD)), 429);
      },
    );
  });
});
