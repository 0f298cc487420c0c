import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
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
