// "Who is the client": address normalisation, the per-prefix limit key, the
// trusted-proxy list and the X-Forwarded-For rule, with spoofed headers.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import {
  ClientAddressResolver,
  clientLimitKey,
  normaliseIp,
  parseAddressBlocks,
  socketAddress,
  UNKNOWN_CLIENT,
} from './client-address.ts';

function request(remoteAddress: string | undefined, xff?: string | string[]): IncomingMessage {
  return {
    socket: { remoteAddress },
    headers: xff === undefined ? {} : { 'x-forwarded-for': xff },
  } as unknown as IncomingMessage;
}

describe('client address normalisation', () => {
  it('maps IPv4-mapped IPv6 to IPv4 and writes IPv6 in RFC 5952 form', () => {
    assert.equal(normaliseIp('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(normaliseIp('::FFFF:7f00:1'), '127.0.0.1');
    assert.equal(normaliseIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(normaliseIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
    assert.equal(normaliseIp('fe80::1%eth0'), 'fe80::1');
    assert.equal(normaliseIp('::'), '::');
    assert.equal(normaliseIp('::1'), '::1');
    assert.equal(normaliseIp('1:2:3:4:5:6:7:8'), '1:2:3:4:5:6:7:8');
    assert.equal(normaliseIp('203.0.113.9'), '203.0.113.9');
    assert.equal(normaliseIp('not an ip'), undefined);
    assert.equal(normaliseIp('1.2.3.4:80'), undefined);
  });

  it('keys IPv4 by address and IPv6 by its /64, IPv4-mapped as IPv4', () => {
    assert.equal(clientLimitKey('203.0.113.9'), '203.0.113.9');
    assert.equal(clientLimitKey('::ffff:203.0.113.9'), '203.0.113.9');
    assert.equal(clientLimitKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(clientLimitKey('2001:db8:1:2:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.notEqual(clientLimitKey('2001:db8:1:3::1'), clientLimitKey('2001:db8:1:2::1'));
    assert.equal(clientLimitKey('::1'), '::/64');
    assert.equal(clientLimitKey(UNKNOWN_CLIENT), UNKNOWN_CLIENT);
  });

  it('reads the socket address, normalised', () => {
    assert.equal(socketAddress(request('::ffff:10.1.2.3')), '10.1.2.3');
    assert.equal(socketAddress(request(undefined)), UNKNOWN_CLIENT);
  });
});

describe('trusted proxy list', () => {
  it('parses IPs and CIDR blocks and names a bad entry', () => {
    const blocks = parseAddressBlocks(' 10.0.0.0/8, 192.0.2.7 ,fd00::/8,::ffff:172.16.0.0/108');
    assert.deepEqual(
      blocks.map((b) => [b.bytes.length, b.prefix]),
      [
        [4, 8],
        [4, 32],
        [16, 8],
        [4, 12],
      ],
    );
    assert.deepEqual(parseAddressBlocks(''), []);
    for (const bad of ['10.0.0.0/33', 'fd00::/129', 'example.com', '10.0.0.1/', '10.0.0/8', 'fe80::1%eth0']) {
      assert.throws(() => parseAddressBlocks(bad), new RegExp(bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')));
    }
  });

  it('matches addresses inside the blocks only', () => {
    const r = new ClientAddressResolver(
      parseAddressBlocks('10.0.0.0/8,192.0.2.7,2001:db8:ab00::/40,172.16.0.0/12'),
    );
    assert.ok(r.isTrustedProxy('10.200.3.4'));
    assert.ok(r.isTrustedProxy('::ffff:10.0.0.1'));
    assert.ok(r.isTrustedProxy('192.0.2.7'));
    assert.ok(!r.isTrustedProxy('192.0.2.8'));
    assert.ok(r.isTrustedProxy('2001:db8:abff::1'));
    assert.ok(!r.isTrustedProxy('2001:db8:ac00::1'));
    assert.ok(r.isTrustedProxy('172.31.255.255'));
    assert.ok(!r.isTrustedProxy('172.32.0.0'));
    assert.ok(!r.isTrustedProxy('11.0.0.1'));
  });
});

describe('X-Forwarded-For', () => {
  const proxies = new ClientAddressResolver(parseAddressBlocks('10.0.0.0/8'));

  it('is ignored without trusted proxies, and from an untrusted peer', () => {
    assert.equal(new ClientAddressResolver().address(request('198.51.100.1', '203.0.113.5')), '198.51.100.1');
    assert.equal(proxies.address(request('198.51.100.1', '203.0.113.5')), '198.51.100.1');
    assert.equal(proxies.address(request('::ffff:198.51.100.1', '10.0.0.1')), '198.51.100.1');
  });

  it('from a trusted proxy: the right-most entry that is not a trusted proxy', () => {
    assert.equal(proxies.address(request('10.0.0.1', '203.0.113.5')), '203.0.113.5');
    // The client forged "victim" entries; the proxy appended the real address last.
    assert.equal(proxies.address(request('10.0.0.1', '192.0.2.66, 203.0.113.5')), '203.0.113.5');
    // A chain of trusted proxies is walked through.
    assert.equal(proxies.address(request('10.0.0.1', '203.0.113.5, 10.9.9.9, 10.8.8.8')), '203.0.113.5');
    // A forged trusted-proxy entry left of the real client changes nothing.
    assert.equal(proxies.address(request('10.0.0.1', '192.0.2.66, 10.0.0.7, 203.0.113.5')), '203.0.113.5');
    // Repeated headers are read in order, as one list.
    assert.equal(proxies.address(request('10.0.0.1', ['192.0.2.66', '203.0.113.5'])), '203.0.113.5');
    // Ports and brackets as some proxies write them; IPv6 normalised.
    assert.equal(proxies.address(request('10.0.0.1', '203.0.113.5:4711')), '203.0.113.5');
    assert.equal(proxies.address(request('10.0.0.1', '[2001:DB8::7]:443')), '2001:db8::7');
    assert.equal(proxies.address(request('10.0.0.1', '::ffff:203.0.113.5')), '203.0.113.5');
  });

  it('a malformed or missing entry leaves the last trusted proxy as the client', () => {
    assert.equal(proxies.address(request('10.0.0.1', '203.0.113.5, garbage')), '10.0.0.1');
    assert.equal(proxies.address(request('10.0.0.1', '203.0.113.5, garbage, 10.0.0.2')), '10.0.0.2');
    assert.equal(proxies.address(request('10.0.0.1', '')), '10.0.0.1');
    assert.equal(proxies.address(request('10.0.0.1')), '10.0.0.1');
    // Only trusted proxies all the way: the left-most one.
    assert.equal(proxies.address(request('10.0.0.1', '10.0.0.3, 10.0.0.2')), '10.0.0.3');
  });

  it('looks at a bounded number of entries', () => {
    const hops = Array.from({ length: 10_000 }, (_, i) => `10.0.${(i >> 8) & 255}.${i & 255}`);
    const forged = `203.0.113.5, ${hops.join(', ')}`;
    const address = proxies.address(request('10.0.0.1', forged));
    assert.ok(proxies.isTrustedProxy(address), 'stopped inside the chain, not at the forged left end');
  });

  it('keys the limit on the client, by /64 for IPv6', () => {
    assert.equal(proxies.limitKey(request('10.0.0.1', '2001:db8:5:6::1')), '2001:db8:5:6::/64');
    assert.equal(proxies.limitKey(request('::ffff:10.0.0.1', '2001:db8:5:6:7::2')), '2001:db8:5:6::/64');
  });
});
