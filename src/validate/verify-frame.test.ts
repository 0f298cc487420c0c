import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { malformedCborFrame } from '../../sim/faults.ts';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { parseMultikey } from '../protocol/keys.ts';
import { peekEventDid } from './frame-peek.ts';
import { VerifyPool } from './pool.ts';
import { DEFAULT_MAX_REV_SKEW_MS, type VerifyResult, verifyFrame } from './verify-frame.ts';

describe('verifyFrame (stateless checks)', () => {
  let plc: SimPlc;
  let host: SimPds;
  let did: string;

  before(async () => {
    plc = await SimPlc.start('vf');
    host = await SimPds.start({ plc, name: 'pds0', seed: 'vf' });
    did = host.createAccount().did;
  });
  after(async () => {
    await host.stop();
    await plc.stop();
  });

  const key = () => parseMultikey(plc.get(did)?.signingKey ?? '');
  const frameOf = (seq: number) => {
    const f = host.firehose.frameAt(seq);
    assert.ok(f);
    return f;
  };
  const run = (type: string, frame: Uint8Array, withKey = true): VerifyResult =>
    verifyFrame({
      type,
      frame,
      key: withKey ? key() : undefined,
      nowMs: Date.now(),
      maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
    });

  it('passes a good commit with signature and inversion proof', () => {
    const ev = host.writeRecord(did);
    const r = run('#commit', frameOf(ev.seq));
    assert.equal(r.ok, true);
    if (!r.ok) return;
    assert.equal(r.sig, 'ok');
    assert.equal(r.proof, 'ok');
    assert.equal(r.rev, ev.rev);
    assert.equal(r.commitCid, ev.commit?.$link);
    assert.equal(r.signed, undefined);
    assert.equal(peekEventDid(frameOf(ev.seq), '#commit'), did);
  });

  it("works out the commit's effect on the account's collections from its blocks", () => {
    const acct = host.createAccount().did;
    const w = (action: 'create' | 'delete', collection: string, rkey: string) =>
      action === 'create'
        ? { action, collection, rkey, record: { $type: collection, text: rkey } }
        : { action, collection, rkey };
    host.writeRecords(acct, [w('create', 'app.test.a', 'r1'), w('create', 'app.test.b', 'r1')]);
    const first = run('#commit', frameOf(host.seq));
    assert.ok(first.ok);
    assert.deepEqual(first.collections?.created.sort(), ['app.test.a', 'app.test.b']);
    host.writeRecords(acct, [w('create', 'app.test.b', 'r2'), w('delete', 'app.test.a', 'r1')]);
    const second = run('#commit', frameOf(host.seq));
    assert.ok(second.ok);
    assert.deepEqual(second.collections, {
      created: ['app.test.b'],
      gone: ['app.test.a'],
      unknown: [],
      decided: 1,
    });
    host.writeRecords(acct, [w('delete', 'app.test.b', 'r1')]);
    const third = run('#commit', frameOf(host.seq));
    assert.ok(third.ok);
    assert.deepEqual(third.collections, { created: [], gone: [], unknown: [], decided: 1 }, 'r2 is left');
  });

  it('returns the signed bytes unchecked when no key is given', () => {
    const ev = host.writeRecord(did);
    const r = run('#commit', frameOf(ev.seq), false);
    assert.ok(r.ok);
    assert.equal(r.sig, 'unchecked');
    assert.ok(r.signed && r.signed.sig.length === 64);
  });

  it('flags a wrong key as a bad signature (the validator then re-resolves)', () => {
    host.injectFault('wrongKey');
    const ev = host.writeRecord(did);
    const r = run('#commit', frameOf(ev.seq));
    assert.ok(r.ok);
    assert.equal(r.sig, 'bad');
  });

  it('rejects a high-S signature', () => {
    host.injectFault('highS');
    const ev = host.writeRecord(did);
    const r = run('#commit', frameOf(ev.seq));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.reason, 'high-s-signature');
  });

  it('rejects a rev more than 5 minutes ahead', () => {
    host.injectFault('futureRev');
    const ev = host.writeRecord(did);
    const r = run('#commit', frameOf(ev.seq));
    assert.equal(!r.ok && r.reason, 'future-rev');
  });

  it('reports a failed inversion for a broken prevData', () => {
    // the futureRev above makes later clock revs look older, which is not this function's concern
    host.injectFault('brokenPrevData');
    const ev = host.writeRecord(did);
    const r = run('#commit', frameOf(ev.seq));
    assert.ok(r.ok);
    assert.equal(r.proof, 'prev-data-mismatch');
  });

  it('verifies a #sync', () => {
    const ev = host.emitSync(did);
    const r = run('#sync', frameOf(ev.seq));
    assert.ok(r.ok);
    assert.equal(r.kind, 'sync');
    assert.equal(r.sig, 'ok');
    assert.equal(r.commitCid, ev.commit?.$link);
    assert.equal(peekEventDid(frameOf(ev.seq), '#sync'), did);
  });

  it('rejects undecodable frames and type mismatches', () => {
    const bad = run('#commit', malformedCborFrame());
    assert.equal(!bad.ok && bad.reason, 'bad-frame');
    const ev = host.writeRecord(did);
    const wrongType = run('#sync', frameOf(ev.seq));
    assert.equal(!wrongType.ok && wrongType.reason, 'bad-frame');
    assert.equal(peekEventDid(malformedCborFrame(), '#commit'), undefined);
  });

  it('gives the same verdicts in a worker thread', async () => {
    const pool = new VerifyPool({ size: 1, batchSize: 4 });
    try {
      const seqs = [host.writeRecord(did).seq, host.writeRecord(did).seq, host.emitSync(did).seq];
      const tasks = seqs.map((seq, i) => ({
        type: i === 2 ? '#sync' : '#commit',
        frame: frameOf(seq),
        key: key(),
        nowMs: Date.now(),
        maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
      }));
      const results = await Promise.all(tasks.map((t) => pool.verify(t)));
      assert.deepEqual(results, tasks.map(verifyFrame));
    } finally {
      await pool.close();
    }
  });

  it('gives the same verdicts in a worker thread for every result shape (wire.ts)', async () => {
    const pool = new VerifyPool({ size: 1, batchSize: 16 });
    try {
      const withKey = key();
      const tasks: Array<{ type: string; frame: Uint8Array; key?: typeof withKey }> = [];
      const add = (type: string, frame: Uint8Array, k: boolean) =>
        tasks.push(k ? { type, frame, key: withKey } : { type, frame });
      add('#commit', frameOf(host.writeRecord(did).seq), true); // ok, with collections
      add('#sync', frameOf(host.emitSync(did).seq), true); // #sync: no collections
      add('#commit', frameOf(host.writeRecord(did).seq), false); // unchecked: signed bytes
      host.injectFault('wrongKey');
      add('#commit', frameOf(host.writeRecord(did).seq), true); // bad signature: signed bytes
      host.injectFault('brokenPrevData');
      add('#commit', frameOf(host.writeRecord(did).seq), true); // proof failure
      host.injectFault('highS');
      add('#commit', frameOf(host.writeRecord(did).seq), true); // rejected, with the did
      add('#commit', malformedCborFrame(), true); // rejected, no did
      add('#sync', frameOf(host.writeRecord(did).seq), true); // type mismatch
      const now = Date.now();
      const full = tasks.map((t) => ({ ...t, nowMs: now, maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS }));
      const inline = full.map(verifyFrame);
      const kinds = inline.map((r) => (r.ok ? `${r.kind}/${r.sig}/${r.proof}` : r.reason));
      assert.deepEqual(kinds, [
        'commit/ok/ok',
        'sync/ok/ok',
        'commit/unchecked/ok',
        'commit/bad/ok',
        'commit/ok/prev-data-mismatch',
        'high-s-signature',
        'bad-frame',
        'bad-frame',
      ]);
      const viaWorker = await Promise.all(full.map((t) => pool.verify(t)));
      assert.deepEqual(viaWorker, inline);
    } finally {
      await pool.close();
    }
  });

  it('moves an owned frame to the worker and back instead of copying it', async () => {
    const pool = new VerifyPool({ size: 1 });
    try {
      const original = frameOf(host.writeRecord(did).seq);
      const frame = new Uint8Array(original); // owns its buffer
      const r = await pool.verify({
        type: '#commit',
        frame,
        movable: true,
        key: key(),
        nowMs: Date.now(),
        maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
      });
      assert.ok(r.ok);
      assert.equal(frame.byteLength, 0, 'moved away');
      assert.deepEqual(r.frame, original, 'and handed back whole');
      // not movable: copied, left in place
      const kept = new Uint8Array(original);
      const r2 = await pool.verify({
        type: '#commit',
        frame: kept,
        key: key(),
        nowMs: Date.now(),
        maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
      });
      assert.ok(r2.ok);
      assert.equal(kept.byteLength, original.byteLength);
      assert.equal(r2.frame, undefined);
    } finally {
      await pool.close();
    }
  });
});
