// The simulated DNS server answers the way c-ares (the relay's resolver)
// expects: handle TXT records, loopback addresses, NXDOMAIN for the rest,
// and a name that exists without records of the asked type is NODATA.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import type { Resolver } from 'node:dns/promises';
import { after, before, describe, it } from 'node:test';
import { addressLookup, createDnsResolver } from '../src/protocol/identity/dns-lookup.ts';
import { SimDns } from './dns.ts';

describe('SimDns', () => {
  let dns: SimDns;
  let resolver: Resolver;
  const longDid = `did:web:${'x'.repeat(300)}.test`;

  before(async () => {
    const handles = new Map([
      ['alice.alpha.test', 'did:plc:alice'],
      ['long.alpha.test', longDid],
    ]);
    dns = await SimDns.start({
      resolveHandle: (h) => handles.get(h),
      hosts: new Map([
        ['pds.alpha.test', ['127.0.0.1', '::1']],
        ['v4only.alpha.test', ['127.0.0.2']],
      ]),
    });
    resolver = createDnsResolver([dns.server]);
  });
  after(() => dns.close());

  it('answers a handle TXT record, split into 255-byte strings when long', async () => {
    assert.deepEqual(await resolver.resolveTxt('_atproto.alice.alpha.test'), [['did=did:plc:alice']]);
    const [chunks] = await resolver.resolveTxt('_atproto.long.alpha.test');
    assert.ok(chunks.length > 1);
    assert.equal(chunks.join(''), `did=${longDid}`);
    assert.ok(dns.queries.includes('TXT _atproto.alice.alpha.test'));
  });

  it('is NXDOMAIN for unknown names and NODATA for a known name without that type', async () => {
    await assert.rejects(resolver.resolveTxt('_atproto.bob.alpha.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve4('nowhere.example.com'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve6('v4only.alpha.test'), { code: 'ENODATA' });
  });

  it("serves the relay's address lookup: IPv4 first, then IPv6; ENOTFOUND for the rest", async () => {
    const lookup = addressLookup(resolver);
    assert.deepEqual(await lookup('PDS.alpha.test.'), [
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    assert.deepEqual(await lookup('v4only.alpha.test'), [{ address: '127.0.0.2', family: 4 }]);
    await assert.rejects(lookup('alice.alpha.test'), { code: 'ENOTFOUND' });
  });

  it('refuses what is not one standard question (FORMERR, NOTIMP) and ignores scraps', async () => {
    const socket = createSocket('udp4');
    const [host, port] = dns.server.split(':');
    const ask = (msg: Buffer) =>
      new Promise<Buffer>((resolve) => {
        socket.once('message', resolve);
        socket.send(msg, Number(port), host);
      });
    try {
      // two questions: FORMERR, with the id echoed
      const two = Buffer.from([0xab, 0xcd, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0]);
      const r1 = await ask(two);
      assert.equal(r1.readUInt16BE(0), 0xabcd);
      assert.equal(r1.readUInt16BE(2) & 0x800f, 0x8001);
      // opcode 2 (STATUS): NOTIMP
      const status = Buffer.from([0, 1, 0x10, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
      assert.equal((await ask(status)).readUInt16BE(2) & 0xf, 4);
      // a label running past the end: FORMERR
      const cut = Buffer.from([0, 2, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 40, 0x61]);
      assert.equal((await ask(cut)).readUInt16BE(2) & 0xf, 1);
      // a response is not answered: the next reply is to the query after it
      socket.send(Buffer.from([0, 3, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0]), Number(port), host);
      const after = await ask(Buffer.from([0, 4, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0]));
      assert.equal(after.readUInt16BE(0), 4);
      // still answering real queries afterwards
      assert.deepEqual(await resolver.resolveTxt('_atproto.alice.alpha.test'), [['did=did:plc:alice']]);
    } finally {
      socket.close();
    }
  });
});
