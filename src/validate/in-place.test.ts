import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { startHarness } from '../../test/support/validator-harness.ts';
import type { InboundFrame } from '../ingest/frame-sink.ts';
import { ownedCopy, SEQ_HEADROOM } from '../protocol/bytes.ts';
import { parseMultikey } from '../protocol/keys.ts';
import { InPlaceVerifier, inPlaceResult, shedding } from './in-place.ts';
import { DEFAULT_MAX_REV_SKEW_MS, verifyFrame } from './verify-frame.ts';

/** Through a structured clone, as the socket port carries it. */
const overWire = <T>(value: T): T => structuredClone(value);

/** A socket thread's learner that records what main teaches it. */
class Lessons {
  readonly taught: [string, unknown][] = [];
  learn(did: string, payload: unknown): void {
    this.taught.push([did, overWire(payload)]);
  }
  teach(v: InPlaceVerifier): void {
    for (const [did, p] of this.taught.splice(0)) v.learn(did, p);
  }
}

describe('in-place verification (unit)', () => {
  let plc: SimPlc;
  let host: SimPds;
  let did: string;
  let other: string;

  before(async () => {
    plc = await SimPlc.start('ip');
    host = await SimPds.start({ plc, name: 'pds0', seed: 'ip' });
    did = host.createAccount().did;
    other = host.createAccount().did;
  });
  after(async () => {
    await host.stop();
    await plc.stop();
  });

  const keyOf = (d: string) => parseMultikey(plc.get(d)?.signingKey ?? '');
  const inbound = (seq: number, lessons: Lessons, inPlace?: unknown): InboundFrame => {
    const bytes = host.firehose.frameAt(seq);
    assert.ok(bytes);
    return {
      hostId: 1,
      hostname: 'pds0',
      upstreamSeq: seq,
      type: '#commit',
      frame: ownedCopy(bytes, SEQ_HEADROOM),
      did,
      owned: true,
      receivedAt: 0,
      inPlace,
      learner: lessons,
    };
  };

  it('verifies with a key main taught, and main takes the verdict only for that key', () => {
    const v = new InPlaceVerifier(DEFAULT_MAX_REV_SKEW_MS);
    const lessons = new Lessons();
    const key = keyOf(did);
    const first = host.writeRecord(did);
    const f1 = inbound(first.seq, lessons);
    // nothing learnt yet: no verdict, and admission teaches the key
    assert.equal(v.onEvent('#commit', did, f1.frame), null);
    assert.equal(inPlaceResult(f1, did, key), undefined);
    assert.equal(lessons.taught.length, 1);
    lessons.teach(v);
    assert.equal(v.size, 1);

    const second = host.writeRecord(did);
    const f2 = inbound(second.seq, lessons);
    f2.inPlace = overWire(v.onEvent('#commit', did, f2.frame));
    const r = inPlaceResult(f2, did, key);
    assert.ok(r?.ok);
    assert.equal(r.sig, 'ok');
    assert.equal(r.rev, second.rev);
    // exactly what the pool would have said, and the owned frame comes back for the seq rewrite
    const { frame, ...verdict } = r;
    assert.equal(frame, f2.frame);
    assert.deepEqual(
      verdict,
      verifyFrame({
        type: '#commit',
        frame: f2.frame,
        key,
        nowMs: Date.now(),
        maxRevSkewMs: DEFAULT_MAX_REV_SKEW_MS,
      }),
    );
    assert.equal(lessons.taught.length, 0, 'a usable verdict teaches nothing');

    // the same key bytes in another object (a refreshed identity) count as another key: verified again
    const refreshed = keyOf(did);
    assert.equal(inPlaceResult(f2, did, refreshed), undefined);
    assert.equal(lessons.taught.length, 1);
  });

  it("never passes a verdict made with another account's key", () => {
    const v = new InPlaceVerifier(DEFAULT_MAX_REV_SKEW_MS);
    const lessons = new Lessons();
    const wrong = keyOf(other);
    // the thread was taught a wrong key for this DID (stale or mixed up)
    inPlaceResult(inbound(host.writeRecord(did).seq, lessons), did, wrong);
    lessons.teach(v);
    const f = inbound(host.writeRecord(did).seq, lessons);
    f.inPlace = overWire(v.onEvent('#commit', did, f.frame));
    const bad = inPlaceResult(f, did, wrong);
    assert.ok(bad?.ok);
    assert.equal(bad.sig, 'bad', 'the verdict says what the wrong key gives');
    // main's key is the right one: the wrong key's verdict is not used
    assert.equal(inPlaceResult(f, did, keyOf(did)), undefined);
  });

  it('holds a bounded table, oldest taught first out, and ignores malformed lessons', () => {
    const v = new InPlaceVerifier(DEFAULT_MAX_REV_SKEW_MS, { maxKeys: 2 });
    const lessons = new Lessons();
    const k = keyOf(did);
    for (const d of ['did:plc:a', 'did:plc:b', did]) inPlaceResult({ ...inbound(1, lessons), did: d }, d, k);
    lessons.teach(v);
    assert.equal(v.size, 2);
    const f = inbound(host.writeRecord(did).seq, lessons);
    assert.notEqual(v.onEvent('#commit', did, f.frame), null, 'the last taught is held');
    assert.equal(v.onEvent('#commit', 'did:plc:a', f.frame), null, 'the first taught is gone');
    for (const p of [
      'x',
      null,
      ['rsa', new Uint8Array(33), 1],
      ['k256', 'bytes', 1],
      ['k256', new Uint8Array(33)],
    ])
      v.learn('did:plc:c', p);
    assert.equal(v.size, 2);
    assert.equal(v.onEvent('#identity', did, f.frame), null, 'only #commit and #sync are verified');
  });

  it('a busy thread passes frames on unverified, and main does not teach it the key again', () => {
    let busy = false;
    const v = new InPlaceVerifier(DEFAULT_MAX_REV_SKEW_MS, { busy: () => busy });
    const lessons = new Lessons();
    const key = keyOf(did);
    inPlaceResult(inbound(host.writeRecord(did).seq, lessons), did, key);
    lessons.teach(v);
    busy = true;
    const f = inbound(host.writeRecord(did).seq, lessons);
    f.inPlace = overWire(v.onEvent('#commit', did, f.frame));
    assert.equal(inPlaceResult(f, did, key), undefined, 'verified by the pool');
    assert.equal(lessons.taught.length, 0, 'the thread has the key');
    busy = false;
    f.inPlace = overWire(v.onEvent('#commit', did, f.frame));
    assert.ok(inPlaceResult(f, did, key)?.ok);
  });

  it('only a worker far busier than the others sheds', () => {
    assert.deepEqual(shedding([0.99]), [false], 'alone: nowhere to shed to');
    assert.deepEqual(shedding([0.95, 0.93, 0.97]), [false, false, false], 'all busy: no point');
    assert.deepEqual(
      shedding([0.98, 0.1, 0.2, 0.05]),
      [true, false, false, false],
      'one upstream on one worker',
    );
    assert.deepEqual(shedding([0.7, 0.1]), [false, false], 'not busy enough to matter');
  });
});

describe('in-place verification (validator)', () => {
  it('admission uses a verdict made with the current key and verifies again after a key rotation', async () => {
    const h = await startHarness();
    try {
      const v = new InPlaceVerifier(DEFAULT_MAX_REV_SKEW_MS);
      const lessons = new Lessons();
      const host = h.net.hosts[0];
      /** The host's new frames as a socket thread would hand them over. */
      const read = (): InboundFrame[] =>
        h.takeFrames(0).map((f) => {
          const did = f.type === '#commit' ? host.firehose.eventAt(f.upstreamSeq)?.did : undefined;
          const inPlace = did === undefined ? undefined : overWire(v.onEvent(f.type, did, f.frame));
          return { ...f, owned: true, inPlace: inPlace ?? undefined, learner: lessons };
        });
      const did = h.net.createAccount(0);
      await h.submitAll(read()); // #identity, #account, #commit: the thread knew no key
      assert.equal(h.validator.metrics.verifiedWhereRead, 0);
      assert.ok(lessons.taught.length >= 1, 'admission taught the thread the key');
      lessons.teach(v);

      host.writeRecord(did);
      await h.submitAll(read());
      assert.equal(h.validator.metrics.verifiedWhereRead, 1);
      assert.equal(h.validator.metrics.passed.get('#commit'), 2);

      // a rotation: the #identity and the first commit with the new key come
      // together, so the commit is admitted while the cache still has the old
      // key, which the thread used too (a bad signature): the verdict is the
      // one the pool would give, and the rules check the new key themselves
      host.rotateSigningKey(did);
      host.writeRecord(did);
      await h.submitAll(read());
      assert.equal(h.validator.metrics.dropped.size, 0);
      assert.equal(h.validator.metrics.passed.get('#commit'), 3);
      assert.equal(h.validator.metrics.verifiedWhereRead, 2);
      assert.equal(h.validator.metrics.mainThreadSignatures, 1);
      assert.equal(lessons.taught.length, 0);

      // now main has the new key: the thread's verdict (old key) is not used,
      // the pool verifies, and the thread is taught the new key
      host.writeRecord(did);
      await h.submitAll(read());
      assert.equal(h.validator.metrics.passed.get('#commit'), 4);
      assert.equal(h.validator.metrics.verifiedWhereRead, 2);
      assert.ok(lessons.taught.length >= 1, 'the thread is taught the new key');
      lessons.teach(v);
      host.writeRecord(did);
      await h.submitAll(read());
      assert.equal(h.validator.metrics.verifiedWhereRead, 3);
      assert.equal(h.validator.metrics.passed.get('#commit'), 5);
      assert.equal(h.validator.metrics.mainThreadSignatures, 1);
      assert.equal(h.validator.metrics.dropped.size, 0);
      const out = await h.output();
      assert.equal(out.filter((e) => e.t === '#commit').length, 5);
    } finally {
      await h.close();
    }
  });
});
