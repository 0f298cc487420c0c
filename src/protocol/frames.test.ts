import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom as rng } from '../../sim/prng.ts';
import { concatBytes, ownedCopy, SEQ_HEADROOM } from './bytes.ts';
import { encodeCbor } from './cbor.ts';
import { cidForCbor } from './cid.ts';
import { MAX_EVENT_DEPTH } from './events.ts';
import {
  decodeFrame,
  encodeErrorFrame,
  encodeFrame,
  encodeInfoFrame,
  FrameError,
  readFrameSeq,
  rewriteSeq,
  seqWriter,
} from './frames.ts';

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof FrameError, `expected FrameError, got ${e}`);
    return e.reason;
  }
  assert.fail('did not throw');
}

const commitBody = (seq: number) => ({
  seq,
  rebase: false,
  tooBig: false,
  repo: 'did:plc:abc',
  commit: cidForCbor(new Uint8Array([1])),
  rev: '3kabc',
  since: null,
  blocks: new Uint8Array(300).fill(5),
  ops: [{ action: 'create', path: 'app.bsky.feed.post/3k', cid: cidForCbor(new Uint8Array([2])) }],
  blobs: [],
  time: '2024-01-01T00:00:00.000Z',
});

describe('decodeFrame / encodeFrame', () => {
  it('round-trips a message frame', () => {
    const frame = encodeFrame('#commit', commitBody(42));
    const { header, body } = decodeFrame(frame);
    assert.deepEqual(header, { op: 1, t: '#commit' });
    assert.equal(body.seq, 42);
    assert.ok(body.blocks instanceof Uint8Array);
  });

  it('encodes error and info frames', () => {
    const err = decodeFrame(encodeErrorFrame('FutureCursor', 'too far'));
    assert.deepEqual(err, { header: { op: -1 }, body: { error: 'FutureCursor', message: 'too far' } });
    assert.deepEqual(decodeFrame(encodeErrorFrame('ConsumerTooSlow')).body, { error: 'ConsumerTooSlow' });
    const info = decodeFrame(encodeInfoFrame('OutdatedCursor', 'old'));
    assert.deepEqual(info, {
      header: { op: 1, t: '#info' },
      body: { name: 'OutdatedCursor', message: 'old' },
    });
    assert.deepEqual(decodeFrame(encodeInfoFrame('OutdatedCursor')).body, { name: 'OutdatedCursor' });
  });

  it('accepts a body with a "constructor" key', () => {
    const frame = encodeFrame('#x', { seq: 1 });
    const header = encodeCbor({ op: 1, t: '#x' });
    const body = new Uint8Array(Buffer.from('a16b636f6e7374727563746f7201', 'hex'));
    assert.equal(decodeFrame(concatBytes([header, body])).body.constructor, 1);
    assert.equal(readFrameSeq(frame), 1);
  });

  it('rejects bad headers', () => {
    const body = encodeCbor({ seq: 1 });
    for (const h of [
      { op: 2, t: '#x' },
      { op: 1 },
      { op: 1, t: 5 },
      { op: 1, t: '' },
      { op: 1, t: '#x', x: 1 },
      { op: -1, t: '#x' },
      [1],
      'x',
    ]) {
      assert.equal(
        reasonOf(() => decodeFrame(concatBytes([encodeCbor(h), body]))),
        'bad-header',
        JSON.stringify(h),
      );
    }
    assert.equal(
      reasonOf(() => decodeFrame(new Uint8Array(0))),
      'bad-header',
    );
    // non-canonical header: `op` before `t` (shorter keys sort first)
    assert.equal(
      reasonOf(() =>
        decodeFrame(new Uint8Array([0xa2, 0x62, 0x6f, 0x70, 0x01, 0x61, 0x74, 0x61, 0x78, 0xa0])),
      ),
      'bad-header',
    );
  });

  it('rejects bad bodies and trailing bytes', () => {
    const header = encodeCbor({ op: 1, t: '#commit' });
    assert.equal(
      reasonOf(() => decodeFrame(header)),
      'bad-body',
    );
    assert.equal(
      reasonOf(() => decodeFrame(concatBytes([header, encodeCbor([1, 2])]))),
      'bad-body',
    );
    assert.equal(
      reasonOf(() => decodeFrame(concatBytes([header, new Uint8Array([0xa1, 0x61, 0x61, 0x18, 0x01])]))),
      'bad-body',
    );
    assert.equal(
      reasonOf(() => decodeFrame(concatBytes([header, encodeCbor({ a: 1 }), new Uint8Array([0])]))),
      'trailing-bytes',
    );
    assert.equal(
      reasonOf(() => decodeFrame(concatBytes([encodeCbor({ op: -1 }), encodeCbor({ message: 'x' })]))),
      'bad-body',
    );
  });
});

describe('rewriteSeq / readFrameSeq', () => {
  const boundaries = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER];

  it('matches a full re-encode across integer-width boundaries', () => {
    for (const from of boundaries) {
      const frame = encodeFrame('#commit', commitBody(from));
      assert.equal(readFrameSeq(frame), from);
      for (const to of boundaries) {
        const out = rewriteSeq(frame, to);
        assert.deepEqual(out, encodeFrame('#commit', commitBody(to)), `${from} -> ${to}`);
        assert.equal(readFrameSeq(out), to);
      }
    }
  });

  it('property: equals decode → set seq → encode on random bodies', () => {
    const rand = rng(12345);
    const keys = [
      'a',
      'b',
      'zz',
      'ops',
      'rev',
      'sep',
      'seq',
      'ser',
      'sez',
      'seqq',
      'time',
      'did',
      'blocks',
      'é',
    ];
    const randomValue = (depth: number): unknown => {
      const k = Math.floor(rand() * (depth > 2 ? 5 : 8));
      switch (k) {
        case 0:
          return Math.floor(rand() * 2 ** (rand() * 53)) * (rand() < 0.2 ? -1 : 1);
        case 1:
          return 'x'.repeat(Math.floor(rand() * 300));
        case 2:
          return new Uint8Array(Math.floor(rand() * 70000 * (rand() < 0.1 ? 1 : 0.001)));
        case 3:
          return rand() < 0.5 ? null : rand() < 0.5;
        case 4:
          return cidForCbor(new Uint8Array([Math.floor(rand() * 256)]));
        case 5:
          return Array.from({ length: Math.floor(rand() * 30) }, () => randomValue(depth + 1));
        default: {
          const o: Record<string, unknown> = {};
          for (const key of keys) if (rand() < 0.3) o[key] = randomValue(depth + 1);
          return o;
        }
      }
    };
    for (let i = 0; i < 300; i++) {
      const body: Record<string, unknown> = {};
      for (const key of keys) if (rand() < 0.5) body[key] = randomValue(0);
      const t = rand() < 0.5 ? '#commit' : '#identity';
      const frame =
        rand() < 0.1
          ? concatBytes([encodeCbor({ op: -1 }), encodeCbor({ ...body, error: 'X' })])
          : encodeFrame(t, body);
      const seq = Math.floor(rand() * 2 ** (rand() * 53));
      const decoded = decodeFrame(frame);
      decoded.body.seq = seq;
      const expected = concatBytes([encodeCbor(decoded.header), encodeCbor(decoded.body)]);
      const got = rewriteSeq(frame, seq);
      assert.deepEqual(got, expected, `case ${i}`);
      assert.equal(readFrameSeq(got), seq);
    }
  });

  it('readFrameSeq returns undefined for missing, non-integer or malformed seq', () => {
    assert.equal(readFrameSeq(encodeFrame('#info', { name: 'x' })), undefined);
    assert.equal(readFrameSeq(encodeFrame('#x', { seq: 'nope' })), undefined);
    assert.equal(readFrameSeq(encodeFrame('#x', { seq: -5 })), undefined);
    assert.equal(readFrameSeq(new Uint8Array([0xa1])), undefined);
    assert.equal(readFrameSeq(new Uint8Array(0)), undefined);
  });

  it('fuzz: corrupted frames give FrameError from decode, never a crash from readFrameSeq', () => {
    const rand = rng(99);
    const frame = encodeFrame('#commit', commitBody(5));
    for (let i = 0; i < 2000; i++) {
      const bad = frame.slice(0, rand() < 0.2 ? Math.floor(rand() * frame.length) : frame.length);
      for (let j = 0; j < 2; j++) bad[Math.floor(rand() * bad.length)] = Math.floor(rand() * 256);
      const seq = readFrameSeq(bad);
      assert.ok(seq === undefined || Number.isSafeInteger(seq));
      let decoded = false;
      try {
        decodeFrame(bad);
        decoded = true;
      } catch (e) {
        assert.ok(e instanceof FrameError, String(e));
      }
      // On any frame that decodes, rewriteSeq agrees with a re-encode.
      if (decoded) {
        const d = decodeFrame(bad);
        d.body.seq = 77;
        assert.deepEqual(rewriteSeq(bad, 77), concatBytes([encodeCbor(d.header), encodeCbor(d.body)]));
      }
    }
  });

  it('walks within the event limits: a body nested past MAX_EVENT_DEPTH before seq is a FrameError', () => {
    let deep: unknown = 1;
    for (let i = 0; i < MAX_EVENT_DEPTH; i++) deep = [deep]; // with the body map: one level too many
    const frame = encodeFrame('#commit', { ops: deep, seq: 3 });
    assert.throws(
      () => rewriteSeq(frame, 4),
      (e: unknown) => e instanceof FrameError && /too-deep/.test(e.message),
    );
    assert.equal(readFrameSeq(frame), undefined);
    let shallow: unknown = 1;
    for (let i = 0; i < MAX_EVENT_DEPTH - 1; i++) shallow = [shallow];
    assert.equal(readFrameSeq(rewriteSeq(encodeFrame('#commit', { ops: shallow, seq: 3 }), 4)), 4);
    // a string that announces more bytes than the frame holds
    const cut = encodeFrame('#commit', { ops: 'x'.repeat(100), seq: 3 }).subarray(0, 40);
    assert.throws(() => rewriteSeq(cut, 4), FrameError);
  });

  it('rejects invalid seq values', () => {
    const frame = encodeFrame('#commit', commitBody(1));
    assert.throws(() => rewriteSeq(frame, -1), RangeError);
    assert.throws(() => rewriteSeq(frame, 1.5), RangeError);
    assert.throws(() => rewriteSeq(frame, 2 ** 53), RangeError);
  });

  it('does not modify its input', () => {
    const frame = encodeFrame('#commit', commitBody(7));
    const copy = frame.slice();
    rewriteSeq(frame, 123456);
    assert.deepEqual(frame, copy);
  });
});

describe('rewriteSeq on a body without seq (issue 12 fuzzing)', () => {
  const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
  const header = encodeCbor({ op: 1, t: '#commit' });
  const seq5 = '63736571 05'; // "seq": 5

  it('inserts seq in canonical key order without re-encoding the rest (floats stay floats)', () => {
    // {a: 1.0 as float64} decodes to the number 1, which a re-encode would write as the integer 1
    const floatBody = hex('a1 6161 fb3ff0000000000000');
    const out = rewriteSeq(concatBytes([header, floatBody]), 5);
    assert.deepEqual(out, concatBytes([header, hex(`a2 6161 fb3ff0000000000000 ${seq5}`)]));
    assert.equal(readFrameSeq(out), 5);
  });

  it('does not throw on a float no encoder can write back as an integer (1e300)', () => {
    const body = hex('a1 6161 fb7e37e43c8800759c');
    const out = rewriteSeq(concatBytes([header, body]), 5);
    assert.deepEqual(out, concatBytes([header, hex(`a2 6161 fb7e37e43c8800759c ${seq5}`)]));
  });

  it('puts seq before a longer key and before a same-length key that sorts after it, and grows the map head', () => {
    assert.deepEqual(
      rewriteSeq(concatBytes([header, hex('a2 6173 01 63736967 02')]), 5), // {s: 1, sig: 2}
      concatBytes([header, hex(`a3 6173 01 ${seq5} 63736967 02`)]),
    );
    assert.deepEqual(
      rewriteSeq(concatBytes([header, hex('a1 6474696d65 01')]), 5), // {time: 1}
      concatBytes([header, hex(`a2 ${seq5} 6474696d65 01`)]),
    );
    assert.deepEqual(
      rewriteSeq(concatBytes([header, hex('a0')]), 5),
      concatBytes([header, hex(`a1 ${seq5}`)]),
    );
    // 23 entries → 24: the map head becomes two bytes
    const body: Record<string, number> = {};
    for (let i = 0; i < 23; i++) body[`k${String(i).padStart(3, '0')}`] = i;
    const frame = encodeFrame('#commit', body);
    assert.deepEqual(rewriteSeq(frame, 300), encodeFrame('#commit', { ...body, seq: 300 }));
  });

  it('still refuses a frame that does not decode', () => {
    assert.throws(() => rewriteSeq(concatBytes([header, hex('a2 6161 01 6161 02')]), 5), FrameError);
    assert.throws(() => rewriteSeq(concatBytes([header, hex('a1 6161')]), 5), FrameError);
  });
});

describe('seqWriter', () => {
  const widths = [0, 23, 24, 255, 256, 65536, 2 ** 32, Number.MAX_SAFE_INTEGER];
  /** Where the seq value is (what ingest's checkFrame reports), found here by its key's bytes. */
  function spanOf(frame: Uint8Array): { start: number; end: number } {
    for (let i = 0; i + 4 < frame.length; i++) {
      if (frame[i] === 0x63 && frame[i + 1] === 0x73 && frame[i + 2] === 0x65 && frame[i + 3] === 0x71) {
        const first = frame[i + 4];
        const info = first & 0x1f;
        const len = info < 24 ? 1 : info === 24 ? 2 : info === 25 ? 3 : info === 26 ? 5 : 9;
        return { start: i + 4, end: i + 4 + len };
      }
    }
    throw new Error('no seq key');
  }

  it('in place: the bytes rewriteSeq gives, in the same buffer, for every width change', () => {
    for (const from of widths) {
      for (const to of widths) {
        const original = encodeFrame('#commit', commitBody(from));
        const frame = ownedCopy(original, SEQ_HEADROOM);
        const out = seqWriter(frame, spanOf(original), true)(to);
        assert.deepEqual(out, rewriteSeq(original, to), `${from} -> ${to}`);
        assert.equal(out.buffer, frame.buffer, `${from} -> ${to}: written in place, not copied`);
      }
    }
  });

  it('called again (an append retried with another seq), it rewrites what it returned last', () => {
    const original = encodeFrame('#commit', commitBody(5));
    const write = seqWriter(ownedCopy(original, SEQ_HEADROOM), spanOf(original), true);
    for (const seq of [300, 2 ** 40, 7, 70_000, 2 ** 40 + 1]) {
      assert.deepEqual(write(seq), rewriteSeq(original, seq), `seq ${seq}`);
    }
  });

  it('copies where there is no room before the frame, a span does not fit, or in place was not allowed', () => {
    const original = encodeFrame('#commit', commitBody(5));
    const span = spanOf(original);
    const tight = ownedCopy(original); // no headroom: a longer seq cannot be written in place
    const grown = seqWriter(tight, span, true)(2 ** 40);
    assert.deepEqual(grown, rewriteSeq(original, 2 ** 40));
    assert.notEqual(grown.buffer, tight.buffer);
    assert.deepEqual(tight, original, 'the input is left as it was');
    const shrunk = seqWriter(ownedCopy(encodeFrame('#commit', commitBody(70_000))), undefined, true)(3);
    assert.deepEqual(shrunk, rewriteSeq(original, 3), 'no span: walked for, then copied');
    const wrong = seqWriter(ownedCopy(original, SEQ_HEADROOM), { start: 3, end: 4 }, true)(9);
    assert.deepEqual(wrong, rewriteSeq(original, 9), 'a span that does not fit: walked for');
    const shared = ownedCopy(original, SEQ_HEADROOM);
    const copied = seqWriter(shared, span, false)(2 ** 40);
    assert.deepEqual(copied, rewriteSeq(original, 2 ** 40));
    assert.deepEqual(shared, original, 'not in place: the input is untouched');
    assert.throws(() => seqWriter(ownedCopy(original, SEQ_HEADROOM), span, true)(-1), RangeError);
  });
});
