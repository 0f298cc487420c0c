import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { concatBytes } from '../protocol/bytes.ts';
import { encodeCbor } from '../protocol/cbor.ts';
import { encodeErrorFrame, encodeFrame, encodeInfoFrame } from '../protocol/frames.ts';
import { checkFrame } from './frame-check.ts';

describe('checkFrame', () => {
  const commit = encodeFrame('#commit', {
    seq: 123456789,
    repo: 'did:plc:abc',
    blocks: new Uint8Array(300),
    ops: [{ action: 'create', path: 'a/b', cid: null }],
    tooBig: false,
  });

  it('accepts a whole frame and reads its seq', () => {
    const c = checkFrame(commit);
    assert.ok(c.ok && c.op === 1);
    assert.equal(c.t, '#commit');
    assert.equal(c.seq, 123456789);
    const info = checkFrame(encodeInfoFrame('OutdatedCursor'));
    assert.ok(info.ok && info.op === 1 && info.seq === undefined);
    assert.ok(checkFrame(encodeErrorFrame('FutureCursor', 'x')).ok);
  });

  it('refuses truncated frames, trailing bytes, non-map bodies and indefinite lengths', () => {
    for (let cut = 1; cut < commit.length; cut += 17) {
      assert.equal(checkFrame(commit.subarray(0, cut)).ok, false, `cut at ${cut}`);
    }
    assert.equal(checkFrame(concatBytes([commit, Uint8Array.of(0)])).ok, false);
    assert.equal(
      checkFrame(concatBytes([encodeCbor({ op: 1, t: '#commit' }), encodeCbor([1, 2])])).ok,
      false,
    );
    assert.equal(
      checkFrame(concatBytes([encodeCbor({ op: 1, t: '#commit' }), Uint8Array.of(0xbf, 0xff)])).ok,
      false,
    );
    assert.equal(checkFrame(Uint8Array.of(0xff)).ok, false);
    assert.equal(checkFrame(concatBytes([encodeCbor({ op: 2 }), encodeCbor({ seq: 1 })])).ok, false);
  });
});
