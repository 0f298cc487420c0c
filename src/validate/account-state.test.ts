import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isActive, publishedStatus, upstreamStatusOf } from './account-state.ts';
import { isAuthoritativeHost } from './validator.ts';

describe('account state', () => {
  it('maps #account events to upstream statuses', () => {
    assert.equal(upstreamStatusOf(true, undefined), 'active');
    assert.equal(upstreamStatusOf(true, 'takendown'), 'active');
    assert.equal(upstreamStatusOf(false, 'takendown'), 'takendown');
    assert.equal(upstreamStatusOf(false, 'deleted'), 'deleted');
    assert.equal(upstreamStatusOf(false, undefined), 'deactivated');
    assert.equal(upstreamStatusOf(false, 'some-future-status'), 'deactivated');
  });

  it('publishes the local status first, then the upstream one', () => {
    assert.deepEqual(publishedStatus({ status: 'active', upstreamStatus: 'active' }), { active: true });
    assert.deepEqual(publishedStatus({ status: 'takendown', upstreamStatus: 'active' }), {
      active: false,
      status: 'takendown',
    });
    assert.deepEqual(publishedStatus({ status: 'active', upstreamStatus: 'deactivated' }), {
      active: false,
      status: 'deactivated',
    });
    assert.deepEqual(publishedStatus({ status: 'throttled', upstreamStatus: 'deleted' }), {
      active: false,
      status: 'throttled',
    });
    assert.equal(isActive({ status: 'active', upstreamStatus: 'suspended' }), false);
  });

  it('compares the DID document PDS with the frame host, ignoring default ports and case', () => {
    const id = (pdsEndpoint?: string) => ({ did: 'did:plc:x', pdsEndpoint });
    assert.ok(isAuthoritativeHost(id('https://PDS.example.com'), 'pds.example.com'));
    assert.ok(isAuthoritativeHost(id('https://pds.example.com'), 'pds.example.com:443'));
    assert.ok(isAuthoritativeHost(id('http://127.0.0.1:2583'), '127.0.0.1:2583'));
    assert.ok(!isAuthoritativeHost(id('http://127.0.0.1:2583'), '127.0.0.1:2584'));
    assert.ok(!isAuthoritativeHost(id('https://evil.example.com'), 'pds.example.com'));
    assert.ok(!isAuthoritativeHost(id(undefined), 'pds.example.com'));
  });
});
