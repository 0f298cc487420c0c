// checkFrame, ingest's one-pass structural check of every upstream frame:
// whole frames pass with their seq and DID; truncated, trailing, non-map,
// indefinite-length, oversized, over-deep and over-wide frames are refused
// with a named reason before anything decodes them; every frame the
// simulated network makes passes well inside the limits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import { concatBytes } from '../protocol/bytes.ts';
import { encodeCbor } from '../protocol/cbor.ts';
import { CborScanner } from '../protocol/cbor-scan.ts';
import { MAX_EVENT_DEPTH, MAX_EVENT_ITEMS, MAX_FRAME_KEY_BYTES } from '../protocol/events.ts';
import { encodeErrorFrame, encodeFrame, encodeInfoFrame, rewriteSeq } from '../protocol/frames.ts';
import { checkFrame, classifyFrame, readControlBody } from './frame-check.ts';

const commit = encodeFrame('#commit', {
  seq: 123456789,
  repo: 'did:plc:abc',
  blocks: new Uint8Array(300),
  ops: [{ action: 'create', path: 'a/b', cid: null }],
  tooBig: false,
});

describe('checkFrame', () => {
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

// Issue 12: bounded headers and bodies, checked in one linear pass before anything decodes the frame.
describe('checkFrame bounds', () => {
  const header = encodeCbor({ op: 1, t: '#commit' });
  /** `n` nested one-item arrays around a 0. */
  const nested = (n: number) => {
    const b = new Uint8Array(n + 1);
    b.fill(0x81, 0, n);
    return b;
  };

  it('refuses a header over 1 KB or with fields other than op and t', () => {
    const body = encodeCbor({ seq: 1 });
    const padded = encodeCbor({ op: 1, t: '#commit', pad: new Uint8Array(2048) });
    assert.equal(checkFrame(concatBytes([padded, body])).ok, false);
    assert.equal(checkFrame(concatBytes([encodeCbor({ op: 1, t: '#commit', x: 1 }), body])).ok, false);
    // a megabyte of nesting where the header should be is refused from its first kilobyte
    const deepHeader = concatBytes([Uint8Array.of(0xa2, 0x61, 0x74), nested(1_000_000), body]);
    const c = checkFrame(deepHeader);
    assert.ok(!c.ok && c.reason === 'bad-header');
    assert.match(c.detail, /at byte [0-9]\b/, 'refused within the first few bytes');
  });

  it('refuses a body nested deeper than the limit', () => {
    const body = concatBytes([
      Uint8Array.of(0xa2, 0x61, 0x78),
      nested(100_000),
      encodeCbor('seq'),
      encodeCbor(5),
    ]);
    assert.equal(checkFrame(concatBytes([header, body])).ok, false);
  });
});

describe('checkFrame reasons and fields', () => {
  const header = encodeCbor({ op: 1, t: '#commit' });

  it('names why a frame failed', () => {
    const reasonOf = (f: Uint8Array) => {
      const c = checkFrame(f);
      return c.ok ? 'ok' : c.reason;
    };
    assert.equal(reasonOf(concatBytes([encodeCbor({ op: 2, t: '#commit' }), encodeCbor({})])), 'bad-header');
    assert.equal(reasonOf(concatBytes([encodeCbor({ op: 1 }), encodeCbor({})])), 'bad-header');
    assert.equal(reasonOf(concatBytes([encodeCbor({ op: -1, t: '#x' }), encodeCbor({})])), 'bad-header');
    assert.equal(
      reasonOf(concatBytes([encodeCbor({ op: 1, t: 'x'.repeat(65) }), encodeCbor({})])),
      'bad-header',
    );
    assert.equal(reasonOf(concatBytes([encodeCbor({ op: 1, t: '' }), encodeCbor({})])), 'bad-header');
    assert.equal(reasonOf(commit.subarray(0, 40)), 'malformed');
    const wide = concatBytes([
      header,
      Uint8Array.of(0xa1, 0x61, 0x78, 0x9a, 0x00, 0x01, 0x00, 0x00),
      new Uint8Array(65536),
    ]);
    assert.equal(reasonOf(wide), 'too-many-items');
    const identity = (pad: number) =>
      encodeFrame('#identity', { seq: 1, did: 'did:plc:a', time: 't', pad: new Uint8Array(pad) });
    assert.equal(reasonOf(identity(60_000)), 'ok');
    assert.equal(reasonOf(identity(70_000)), 'too-large');
    assert.equal(reasonOf(encodeErrorFrame('X', 'm'.repeat(70_000))), 'too-large');
    assert.equal(
      reasonOf(encodeFrame('#commit', { seq: 1, repo: 'did:plc:a', blocks: new Uint8Array(4_000_000) })),
      'ok',
    );
  });

  it('refuses a top-level key over MAX_FRAME_KEY_BYTES as key-too-long (not malformed), naming the length', () => {
    const withKey = (length: number) =>
      encodeFrame('#commit', { seq: 9, repo: 'did:plc:a', ['k'.repeat(length)]: 1 });
    const atLimit = checkFrame(withKey(MAX_FRAME_KEY_BYTES));
    assert.ok(atLimit.ok && atLimit.op === 1 && atLimit.seq === 9);
    const over = checkFrame(withKey(MAX_FRAME_KEY_BYTES + 1));
    assert.ok(!over.ok);
    assert.equal(over.reason, 'key-too-long');
    assert.match(over.detail, new RegExp(`key of ${MAX_FRAME_KEY_BYTES + 1} bytes .*${MAX_FRAME_KEY_BYTES}`));
    assert.deepEqual(classifyFrame(withKey(300), true, 0), { kind: 'bad', reason: 'key-too-long' });
    // a key that long nested inside a value is not a top-level field: only the item and depth limits apply
    assert.ok(
      checkFrame(encodeFrame('#commit', { seq: 9, repo: 'did:plc:a', x: { ['k'.repeat(300)]: 1 } })).ok,
    );
  });

  it('reads the account DID of the event types, only when it is valid DID syntax', () => {
    const didOf = (f: Uint8Array) => {
      const c = checkFrame(f);
      return c.ok && c.op === 1 ? c.did : 'refused';
    };
    assert.equal(didOf(commit), 'did:plc:abc');
    assert.equal(didOf(encodeFrame('#sync', { seq: 1, did: 'did:web:a.test' })), 'did:web:a.test');
    assert.equal(
      didOf(encodeFrame('#commit', { seq: 1, did: 'did:plc:a' })),
      undefined,
      '#commit reads repo',
    );
    assert.equal(didOf(encodeFrame('#account', { seq: 1, did: `did:plc:${'a'.repeat(3000)}` })), undefined);
    assert.equal(didOf(encodeFrame('#account', { seq: 1, did: 'did:PLC:a' })), undefined);
    assert.equal(didOf(encodeFrame('#account', { seq: 1, did: 42 })), undefined);
    assert.equal(didOf(encodeFrame('#info', { name: 'x', did: 'did:plc:a' })), undefined);
  });

  it('passes every frame the simulated network makes, well inside the depth and item limits', async () => {
    const net = await SimNetwork.start({ hosts: 1, accountsPerHost: 3, seed: 3 });
    try {
      const host = net.hosts[0];
      const did = net.accounts[0].did;
      host.writeRecords(did, [
        { action: 'create', collection: 'app.bsky.feed.post', rkey: '3l7aaaaaaaaaa', record: { text: 'x' } },
      ]);
      net.step(200);
      host.changeHandle(did, 'new.pds0.test');
      host.deactivate(did);
      host.activate(did);
      host.emitSync(did);
      let deepest = 0;
      let mostItems = 0;
      for (let seq = 1; seq <= host.seq; seq++) {
        const frame = host.firehose.frameAt(seq)!;
        const c = checkFrame(frame);
        assert.ok(c.ok && c.op === 1, `seq ${seq}`);
        assert.equal(c.seq, seq);
        assert.ok(c.did?.startsWith('did:'));
        for (let depth = 1; ; depth++) {
          const s = new CborScanner(
            frame,
            { maxDepth: depth, maxItems: 1e9, maxStringBytes: 1e9 },
            c.bodyStart,
          );
          try {
            s.skip();
            deepest = Math.max(deepest, depth);
            mostItems = Math.max(mostItems, s.items);
            break;
          } catch {
            // deeper
          }
        }
      }
      assert.equal(deepest, 4, 'body map → ops array → op map → CID tag');
      assert.ok(deepest < MAX_EVENT_DEPTH && mostItems < MAX_EVENT_ITEMS / 4, `items ${mostItems}`);
    } finally {
      await net.stop();
    }
  });

  it('reports where the seq is, and rewriteSeq given that span writes what its own walk would', async () => {
    const net = await SimNetwork.start({ hosts: 1, accountsPerHost: 3, seed: 4 });
    try {
      const host = net.hosts[0];
      const did = net.accounts[0].did;
      host.writeRecords(did, [
        { action: 'create', collection: 'app.bsky.feed.post', rkey: '3l7aaaaaaaaab', record: { text: 'y' } },
      ]);
      host.changeHandle(did, 'other.pds0.test');
      host.emitSync(did);
      const frames = [commit];
      for (let seq = 1; seq <= host.seq; seq++) frames.push(host.firehose.frameAt(seq)!);
      const widths = [0, 23, 24, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER];
      for (const frame of frames) {
        const c = checkFrame(frame);
        assert.ok(c.ok && c.op === 1 && c.seqSpan !== undefined && c.seq !== undefined);
        const { start, end } = c.seqSpan;
        assert.deepEqual(
          frame.subarray(start - 4, start),
          Uint8Array.of(0x63, 0x73, 0x65, 0x71),
          '"seq" key',
        );
        assert.equal(
          new CborScanner(frame, { maxDepth: 1, maxItems: 1, maxStringBytes: 0 }, start).readUint(),
          c.seq,
        );
        for (const to of widths) {
          const walked = rewriteSeq(frame, to);
          assert.deepEqual(rewriteSeq(frame, to, c.seqSpan), walked, `${c.t} seq ${c.seq} -> ${to}`);
          // a span that does not fit these bytes is not trusted: the walk decides
          for (const wrong of [
            { start: start + 1, end: end + 1 },
            { start: start - 1, end },
            { start, end: end + 1 },
            { start: 2, end: 3 },
            { start: frame.length, end: frame.length + 5 },
          ]) {
            assert.deepEqual(rewriteSeq(frame, to, wrong), walked);
          }
        }
      }
    } finally {
      await net.stop();
    }
  });

  it('reads error and #info text with a cap', () => {
    const err = encodeErrorFrame('FutureCursor', 'é'.repeat(2000));
    const c = checkFrame(err);
    assert.ok(c.ok && c.op === -1);
    const body = readControlBody(err, c.bodyStart, 'error');
    assert.equal(body.name, 'FutureCursor');
    assert.ok(body.message!.endsWith('…') && body.message!.length <= 1025);
    const info = encodeInfoFrame('n'.repeat(500));
    const i = checkFrame(info);
    assert.ok(i.ok);
    assert.equal(readControlBody(info, i.bodyStart, 'name').name, `${'n'.repeat(128)}…`);
    assert.deepEqual(readControlBody(info, i.bodyStart, 'error'), { name: undefined, message: undefined });
  });
});
