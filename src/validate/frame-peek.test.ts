// peekEventDid: the DID of an event frame, read without decoding it. It is the
// first thing the validator learns about an event and the key of the identity
// cache, so only a syntactically valid DID of at most 2 KB comes out of it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeFrame } from '../protocol/frames.ts';
import { peekEventDid } from './frame-peek.ts';

describe('peekEventDid', () => {
  it('reads repo of #commit and did of the other types', () => {
    assert.equal(
      peekEventDid(encodeFrame('#commit', { seq: 1, repo: 'did:plc:abc', ops: [] }), '#commit'),
      'did:plc:abc',
    );
    assert.equal(
      peekEventDid(encodeFrame('#identity', { seq: 1, did: 'did:web:a.test' }), '#identity'),
      'did:web:a.test',
    );
  });

  it('refuses a DID over 2 KB or with bad syntax (issue 12)', () => {
    const long = `did:plc:${'a'.repeat(4 * 1024 * 1024)}`;
    assert.equal(peekEventDid(encodeFrame('#commit', { seq: 1, repo: long }), '#commit'), undefined);
    assert.equal(
      peekEventDid(encodeFrame('#account', { seq: 1, did: `did:plc:${'a'.repeat(2041)}` }), '#account'),
      undefined,
    );
    for (const bad of ['did:', 'did:plc:', 'did:PLC:x', 'did:plc:a b', 'did:plc:x%']) {
      assert.equal(peekEventDid(encodeFrame('#identity', { seq: 1, did: bad }), '#identity'), undefined, bad);
    }
    // the longest valid DID passes
    const max = `did:plc:${'a'.repeat(2040)}`;
    assert.equal(max.length, 2048);
    assert.equal(peekEventDid(encodeFrame('#account', { seq: 1, did: max }), '#account'), max);
  });
});
