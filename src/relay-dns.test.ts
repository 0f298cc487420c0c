// Every name the relay resolves goes to the DNS servers RELAY_DNS_SERVERS
// names: handles' TXT records and the addresses it dials (here, a handle
// domain's for the HTTPS well-known fallback). The servers here are the
// simulated network's (sim/dns.ts) on loopback, so the test also shows no
// query of this relay left the machine for the system's resolver.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimDns } from '../sim/dns.ts';
import { SimNetwork } from '../sim/network.ts';
import { startTestRelay, TEST_ADMIN_PASSWORD } from '../test/support/relay-harness.ts';
import { tempDir } from '../test/support/temp.ts';
import type { Relay } from './relay.ts';

describe('relay DNS (RELAY_DNS_SERVERS)', () => {
  let net: SimNetwork;
  let dns: SimDns;
  let relay: Relay;
  let did: string;
  const bearer = { authorization: `Bearer ${TEST_ADMIN_PASSWORD}` };
  const resolveHandle = (handle: string) =>
    fetch(`http://127.0.0.1:${relay.port}/admin/dashboard/api/resolve-handle?handle=${handle}`, {
      headers: bearer,
    });

  before(async () => {
    net = await SimNetwork.start({ hosts: 1, accountsPerHost: 0, seed: 7 });
    did = net.createAccount(0, { handle: 'carol.dns.test' });
    dns = await SimDns.start({ resolveHandle: (h) => net.plc.resolveHandle(h) });
    // the relay's own handle resolution (no simulated handle map injected)
    relay = await startTestRelay(
      net,
      tempDir('atrelay-dns-'),
      { RELAY_DNS_SERVERS: dns.server },
      { handleResolver: undefined },
    );
  });
  after(async () => {
    await relay?.stop();
    await net?.stop();
    await dns?.close();
  });

  it('resolves a handle through the configured servers', async () => {
    const res = await resolveHandle('carol.dns.test');
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { handle: 'carol.dns.test', did });
    assert.ok(dns.queries.includes('TXT _atproto.carol.dns.test'), dns.queries.join(', '));
  });

  it('looks up the well-known fallback address through them too', async () => {
    assert.equal((await resolveHandle('nobody.dns.test')).status, 404);
    assert.ok(dns.queries.includes('TXT _atproto.nobody.dns.test'), dns.queries.join(', '));
    assert.ok(dns.queries.includes('A nobody.dns.test'), dns.queries.join(', '));
  });
});
