import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bytesEqual } from '../src/protocol/bytes.ts';
import { cidForCbor } from '../src/protocol/cid.ts';
import { decodeFrame, encodeFrame } from '../src/protocol/frames.ts';
import { cborHead, prepareFrame, presealFrame, sealFrame } from './wire.ts';

describe('prepareFrame/sealFrame', () => {
  const commitBody = {
    repo: 'did:plc:aaaaaaaaaaaaaaaaaaaaaaaa',
    commit: cidForCbor(new Uint8Array([1, 2, 3])),
    rev: '3kabcdefghij2',
    since: null,
    blocks: new Uint8Array(300).fill(7),
    ops: [
      { action: 'create', path: 'app.bsky.feed.post/3kabcdefghij2', cid: cidForCbor(new Uint8Array([4])) },
    ],
    blobs: [],
    prevData: cidForCbor(new Uint8Array([5])),
    rebase: false,
    tooBig: false,
    time: '2026-01-01T00:00:00.000Z',
  };

  for (const seq of [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 5]) {
    it(`is byte-identical to a full encode at seq ${seq}`, () => {
      const p = prepareFrame('#commit', commitBody.repo, commitBody);
      const sealed = sealFrame(p, seq);
      const full = encodeFrame('#commit', { ...commitBody, seq });
      assert.ok(bytesEqual(sealed, full));
      const f = decodeFrame(sealed);
      assert.deepEqual(f.header, { op: 1, t: '#commit' });
      assert.equal(f.body.seq, seq);
    });
  }

  it('handles bodies whose keys all sort before or after seq', () => {
    const p = prepareFrame('#identity', 'did:x', { did: 'did:x', time: 't', handle: 'a.test' });
    assert.ok(
      bytesEqual(
        sealFrame(p, 7),
        encodeFrame('#identity', { did: 'did:x', time: 't', handle: 'a.test', seq: 7 }),
      ),
    );
    const q = prepareFrame('#account', 'did:x', { did: 'did:x', active: true, status: undefined, time: 't' });
    assert.deepEqual(decodeFrame(sealFrame(q, 9)).body, { did: 'did:x', active: true, time: 't', seq: 9 });
  });

  it('presealed for a seq, hands out those bytes; for another seq, still the right frame', () => {
    const p = prepareFrame('#commit', commitBody.repo, commitBody);
    presealFrame(p, 300);
    const at300 = sealFrame(p, 300);
    assert.equal(at300, p.sealed?.bytes, 'no new copy for the expected seq');
    assert.ok(bytesEqual(at300, encodeFrame('#commit', { ...commitBody, seq: 300 })));
    for (const seq of [299, 70_000, 5]) {
      const other = sealFrame(p, seq);
      assert.ok(bytesEqual(other, encodeFrame('#commit', { ...commitBody, seq })), `seq ${seq}`);
    }
    assert.ok(bytesEqual(sealFrame(p, 300), encodeFrame('#commit', { ...commitBody, seq: 300 })));
  });

  it('encodes minimal CBOR heads', () => {
    assert.deepEqual([...cborHead(0, 23)], [23]);
    assert.deepEqual([...cborHead(0, 24)], [24, 24]);
    assert.deepEqual([...cborHead(5, 3)], [0xa3]);
  });
});
