import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VerifyResult, VerifyTask } from './verify-frame.ts';
import { resultFromWire, resultToWire, taskFromWire, taskToWire } from './wire.ts';

/** Through a structured clone, as postMessage sends it. */
const overWire = <T>(value: T): T => structuredClone(value);

describe('verify pool wire format', () => {
  it('round-trips tasks with and without a key', () => {
    const frame = new Uint8Array([1, 2, 3]);
    const keyed: VerifyTask = {
      type: '#commit',
      frame,
      key: { alg: 'p256', bytes: new Uint8Array(33).fill(3) },
      nowMs: 1_700_000_000_000,
      maxRevSkewMs: 300_000,
      returnFrame: true,
    };
    assert.deepEqual(taskFromWire(overWire(taskToWire(keyed))), keyed);
    const plain: VerifyTask = { type: '#sync', frame, nowMs: 5, maxRevSkewMs: 0 };
    assert.deepEqual(taskFromWire(overWire(taskToWire(plain))), plain);
    // `movable` is the pool's business and stays behind
    assert.deepEqual(taskFromWire(overWire(taskToWire({ ...plain, movable: true }))), plain);
  });

  it('round-trips every result shape, optional fields present only when set', () => {
    const results: VerifyResult[] = [
      { ok: false, reason: 'bad-frame', detail: 'nothing decodes' },
      {
        ok: false,
        reason: 'high-s-signature',
        detail: 'high S',
        did: 'did:plc:abc',
        frame: new Uint8Array([9]),
      },
      {
        ok: true,
        kind: 'commit',
        did: 'did:plc:abc',
        rev: '3l2bq7xyz2222',
        since: null,
        commitCid: 'bafyreia',
        dataCid: 'bafyreib',
        prevData: null,
        sig: 'ok',
        proof: 'ok',
        upstreamSeq: 42,
        collections: { created: ['app.bsky.feed.post'], gone: [], unknown: ['a.b.c'], decided: 2 },
      },
      {
        ok: true,
        kind: 'commit',
        did: 'did:web:example.com',
        rev: '3l2bq7xyz2223',
        since: '3l2bq7xyz2222',
        commitCid: 'bafyreic',
        dataCid: 'bafyreid',
        prevData: 'bafyreie',
        sig: 'bad',
        signed: { message: new Uint8Array([1, 2]), sig: new Uint8Array(64) },
        proof: 'prev-data-mismatch',
        proofDetail: 'root \\n mismatch \\u0000 ✓',
        upstreamSeq: 2 ** 40,
        collections: { created: [], gone: ['x.y.z'], unknown: [], decided: 0 },
        frame: new Uint8Array([7, 7]),
      },
      {
        ok: true,
        kind: 'sync',
        did: 'did:plc:abc',
        rev: '3l2bq7xyz2224',
        since: null,
        commitCid: 'bafyreif',
        dataCid: 'bafyreig',
        prevData: null,
        sig: 'unchecked',
        signed: { message: new Uint8Array([3]), sig: new Uint8Array([4]) },
        proof: 'ok',
        upstreamSeq: 0,
      },
    ];
    for (const r of results) assert.deepStrictEqual(resultFromWire(overWire(resultToWire(r))), r);
  });
});
