import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CrawlRefusedError,
  hostAccountLimit,
  isTrustedHostname,
  parseTrustedDomains,
  subscribeUrl,
  validateCrawlHostname,
} from './host-policy.ts';

const prod = { allowInsecure: false };
const dev = { allowInsecure: true };

function refused(raw: unknown, opts = prod): CrawlRefusedError {
  try {
    validateCrawlHostname(raw, opts);
  } catch (err) {
    assert.ok(err instanceof CrawlRefusedError);
    return err;
  }
  assert.fail(`${String(raw)} was accepted`);
}

describe('validateCrawlHostname', () => {
  it('normalises production hostnames to TLS targets', () => {
    assert.deepEqual(validateCrawlHostname(' PDS.Example.COM. ', prod), {
      hostname: 'pds.example.com',
      tls: true,
    });
    assert.deepEqual(validateCrawlHostname('https://pds.example.com/', prod), {
      hostname: 'pds.example.com',
      tls: true,
    });
  });

  it('refuses ports, IPs, localhost, single labels and insecure schemes in production', () => {
    for (const raw of [
      'pds.example.com:8080',
      '127.0.0.1',
      '10.0.0.1',
      'localhost',
      'intranet',
      'http://pds.example.com',
      'ftp://pds.example.com',
      'pds.example.123',
      '',
      42,
      'a'.repeat(301),
      'bad_host.example.com',
    ]) {
      assert.equal(refused(raw).status, 400, String(raw));
    }
  });

  it('allows loopback with ports over plain ws in development', () => {
    assert.deepEqual(validateCrawlHostname('127.0.0.1:2583', dev), {
      hostname: '127.0.0.1:2583',
      tls: false,
    });
    assert.deepEqual(validateCrawlHostname('localhost:2583', dev), {
      hostname: 'localhost:2583',
      tls: false,
    });
    assert.deepEqual(validateCrawlHostname('pds.example.com', dev), {
      hostname: 'pds.example.com',
      tls: true,
    });
    assert.equal(
      subscribeUrl({ hostname: '127.0.0.1:5', tls: false }, 7),
      'ws://127.0.0.1:5/xrpc/com.atproto.sync.subscribeRepos?cursor=7',
    );
    assert.equal(
      subscribeUrl({ hostname: 'pds.example.com', tls: true }, 0),
      'wss://pds.example.com/xrpc/com.atproto.sync.subscribeRepos',
    );
  });
});

describe('trusted domains', () => {
  it('match whole labels and lift the account limit', () => {
    const trusted = parseTrustedDomains(' *.host.bsky.network , Example.ORG ,');
    assert.deepEqual(trusted, ['host.bsky.network', 'example.org']);
    assert.ok(isTrustedHostname('morel.us-east.host.bsky.network', trusted));
    assert.ok(isTrustedHostname('example.org', trusted));
    assert.ok(!isTrustedHostname('badexample.org', trusted));
    assert.ok(!isTrustedHostname('bsky.network', trusted));
    assert.equal(hostAccountLimit({ accountLimit: 100, trusted: false }, false), 100);
    assert.equal(hostAccountLimit({ accountLimit: 100, trusted: true }, false), Number.POSITIVE_INFINITY);
    assert.equal(hostAccountLimit({ accountLimit: 100, trusted: false }, true), Number.POSITIVE_INFINITY);
  });
});
