// The pool's wire format: every kind of task and result comes back from an
// encode → structured clone (what postMessage does) → decode equal to what
// went in, and what crosses holds no objects with property names to hash
// (the reason for the format: verify-wire.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VerifyResult, VerifyTask } from './verify-frame.ts';
import { decodeResult, decodeTask, encodeResult, encodeTask } from './verify-wire.ts';

const frame = Uint8Array.from([1, 2, 3, 4]);
const cid = (n: number) => `bafyreib2rxk3rybk3aobmv5cjuql3bm2twh4jo5uxgf3gp2z5dnz3fsb${n}`;

const results: [string, VerifyResult][] = [
  ['a rejection without a DID', { ok: false, reason: 'bad-frame', detail: 'header type does not match' }],
  [
    'a rejection with a DID and the frame moved back',
    { ok: false, reason: 'bad-car', detail: 'truncated', did: 'did:plc:a', frame },
  ],
  [
    'a checked #commit with collections',
    {
      ok: true,
      kind: 'commit',
      did: 'did:plc:a',
      rev: '3kabc',
      since: '3kabb',
      commitCid: cid(1),
      dataCid: cid(2),
      prevData: cid(3),
      sig: 'ok',
      proof: 'ok',
      upstreamSeq: 42,
      collections: { created: ['app.bsky.feed.post'], gone: ['app.bsky.feed.like'], unknown: [], decided: 1 },
      frame,
    },
  ],
  [
    'a #commit whose proof failed, signature unchecked, no prevData',
    {
      ok: true,
      kind: 'commit',
      did: 'did:plc:b',
      rev: '3kabc',
      since: null,
      commitCid: cid(1),
      dataCid: cid(2),
      prevData: null,
      sig: 'unchecked',
      signed: { message: Uint8Array.from([9, 9]), sig: Uint8Array.from([7]) },
      proof: 'op-mismatch',
      proofDetail: 'create of a/b found a record',
      upstreamSeq: 7,
      collections: { created: [], gone: [], unknown: ['app.bsky.graph.follow'], decided: 0 },
    },
  ],
  [
    'a #sync with a bad signature',
    {
      ok: true,
      kind: 'sync',
      did: 'did:web:example.com',
      rev: '3kabc',
      since: null,
      commitCid: cid(4),
      dataCid: cid(5),
      prevData: null,
      sig: 'bad',
      signed: { message: Uint8Array.from([1]), sig: Uint8Array.from([2]) },
      proof: 'ok',
      upstreamSeq: 9,
    },
  ],
];

/** Nothing but primitives, byte arrays and arrays of strings crosses. */
function assertFlat(tuple: unknown[]): void {
  for (const v of tuple) {
    if (v === null || typeof v !== 'object') continue;
    if (v instanceof Uint8Array) continue;
    assert.ok(
      Array.isArray(v) && v.every((s) => typeof s === 'string'),
      `object in tuple: ${JSON.stringify(v)}`,
    );
  }
}

describe('verify wire format', () => {
  for (const [name, r] of results) {
    it(`round-trips ${name}`, () => {
      const t = encodeResult(r);
      assertFlat(t);
      assert.deepEqual(decodeResult(structuredClone(t)), r);
    });
  }

  it('round-trips a task with and without a key', () => {
    const withKey: VerifyTask = {
      type: '#commit',
      frame,
      key: { alg: 'k256', bytes: Uint8Array.from([2, 1, 2, 3]) },
      nowMs: 1_700_000_000_000,
      maxRevSkewMs: 300_000,
      returnFrame: true,
    };
    const bare: VerifyTask = { type: '#sync', frame, nowMs: 1, maxRevSkewMs: 0 };
    for (const task of [withKey, bare]) {
      const t = encodeTask(task);
      assertFlat(t);
      assert.deepEqual(decodeTask(structuredClone(t)), task);
    }
  });
});
