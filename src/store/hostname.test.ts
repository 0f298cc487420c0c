import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '../../sim/prng.ts';
import { domainSuffixes, normaliseDomain, normaliseHostname } from './hostname.ts';

describe('normaliseHostname', () => {
  it('lower-cases and strips scheme, path and trailing dot, keeping a port', () => {
    assert.equal(normaliseHostname('  PDS.Example.COM. '), 'pds.example.com');
    assert.equal(normaliseHostname('https://pds.example.com/xrpc/x'), 'pds.example.com');
    assert.equal(normaliseHostname('localhost:2583'), 'localhost:2583');
    assert.equal(normaliseHostname('127.0.0.1:080'), '127.0.0.1:80');
  });

  it('rejects names that are not hostnames', () => {
    for (const bad of ['', 'a b.com', 'under_score.com', '-lead.com', 'x..com', 'a.com:0', 'a.com:70000']) {
      assert.throws(() => normaliseHostname(bad), /invalid/, bad);
    }
  });
});

describe('domain bans', () => {
  it('expands a hostname into whole-label suffixes, ignoring the port', () => {
    assert.deepEqual(domainSuffixes('a.pds.Example.com:443'), [
      'a.pds.example.com',
      'pds.example.com',
      'example.com',
      'com',
    ]);
  });

  it('refuses a banned domain with a port', () => {
    assert.equal(normaliseDomain('Example.com'), 'example.com');
    assert.throws(() => normaliseDomain('example.com:80'), /port/);
  });
});

// Issue 12: names the WHATWG URL parser would read as an IPv4 address must be canonical dotted quads.
describe('numeric host names', () => {
  it('refuses hex, octal, short and single-number IPv4 forms', () => {
    for (const bad of [
      '0x7f.0x1',
      '127.0.0.0x1',
      '2130706433',
      '0177.0.0.1',
      '127.1',
      '127.0.1',
      '0x7f000001',
      '127.0.0.01',
      'pds.example.0x10',
      'pds.example.123',
      '256.0.0.1',
      '0x7f.0x1:2583',
      '2130706433:80',
    ]) {
      assert.throws(() => normaliseHostname(bad), /invalid|numeric/, bad);
      // the URL parser reads each of them as an IPv4 address (or fails), never as the name given
      let parsed: string | undefined;
      try {
        parsed = new URL(`http://${bad}`).hostname;
      } catch {
        parsed = undefined;
      }
      assert.notEqual(parsed, bad.replace(/:\d+$/, ''), bad);
    }
  });

  it('keeps canonical dotted quads and names with numeric inner labels', () => {
    assert.equal(normaliseHostname('127.0.0.1:2583'), '127.0.0.1:2583');
    assert.equal(normaliseHostname('10.0.0.1'), '10.0.0.1');
    assert.equal(normaliseHostname('0.0.0.0'), '0.0.0.0');
    assert.equal(normaliseHostname('123.pds.example.com'), '123.pds.example.com');
    assert.equal(normaliseHostname('0x10.example.com'), '0x10.example.com');
  });
});

describe('numeric host names against the URL parser', () => {
  it('every accepted name is one the WHATWG URL parser leaves as it is', () => {
    const rand = seededRandom(7);
    const parts = [
      '0',
      '1',
      '07',
      '0x',
      '0x1f',
      '0X7F',
      '255',
      '256',
      '4294967295',
      '01',
      'a',
      'pds',
      '1a',
      'x1',
    ];
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 5000; i++) {
      const n = 1 + Math.floor(rand() * 5);
      const name = Array.from({ length: n }, () => parts[Math.floor(rand() * parts.length)]).join('.');
      let normalised: string | undefined;
      try {
        normalised = normaliseHostname(name);
      } catch {
        refused++;
        continue;
      }
      accepted++;
      assert.equal(new URL(`http://${normalised}/`).hostname, normalised, name);
    }
    assert.ok(accepted > 500 && refused > 500, `${accepted} accepted, ${refused} refused`);
  });
});
