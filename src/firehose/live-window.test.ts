import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import type { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { LogRecord } from '../eventlog/types.ts';
import { LiveWindow } from './live-window.ts';
import { frameMessages, wsHeaderSize } from './ws-frame.ts';

function rec(seq: number, size: number): LogRecord {
  return { seq, kind: 1, uid: 1, flags: 0, time: 0, frame: Buffer.alloc(size, seq & 0xff) };
}

// ws's frame parser is not in its type declarations; load it untyped.
const { Receiver } = createRequire(import.meta.url)('ws') as {
  Receiver: new (opts: { isServer: boolean }) => Writable;
};

/** Decodes server frames with ws's own parser, to check our framing against it. */
function parseWithWs(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const receiver = new Receiver({ isServer: false });
  receiver.on('message', (data: Buffer) => out.push(data));
  receiver.write(bytes);
  return out;
}

describe('ws-frame', () => {
  it('frames payloads of every length class as ws parses them', () => {
    const sizes = [0, 1, 125, 126, 65535, 65536, 70_000];
    const payloads = sizes.map((n, i) => Buffer.alloc(n, i + 1));
    const { buf, offsets } = frameMessages(payloads);
    assert.equal(offsets.length, sizes.length + 1);
    assert.equal(offsets.at(-1), buf.length);
    assert.deepEqual(sizes.map(wsHeaderSize), [2, 2, 2, 4, 4, 10, 10]);
    const parsed = parseWithWs(buf);
    assert.equal(parsed.length, sizes.length);
    for (const [i, p] of parsed.entries()) assert.ok(p.equals(payloads[i]));
  });
});

describe('LiveWindow', () => {
  it('tracks positions, bytes and slices across batches, and trims', () => {
    const w = new LiveWindow();
    w.skip(5); // events 0..4 were sent while nobody was live
    assert.equal(w.end, 5);
    w.push([rec(6, 10), rec(7, 200), rec(8, 10)]);
    w.push([rec(9, 10)]);
    assert.equal(w.start, 5);
    assert.equal(w.end, 9);
    assert.equal(w.seqAt(5), 6);
    assert.equal(w.seqAt(8), 9);
    assert.equal(w.lastSeq(), 9);
    assert.equal(w.bytesFrom(9), 0);
    assert.equal(w.bytesFrom(8), 12);
    assert.equal(w.bytesFrom(5), 12 + 204 + 12 + 12);

    const all = w.slices(5, 1 << 20);
    assert.equal(all.chunks.length, 2);
    assert.equal(all.next, 9);
    assert.equal(all.lastSeq, 9);
    assert.deepEqual(
      parseWithWs(Buffer.concat(all.chunks)).map((b) => b.length),
      [10, 200, 10, 10],
    );
    // A small budget still takes whole events, at least one.
    const some = w.slices(6, 100);
    assert.equal(some.events, 1);
    assert.equal(some.lastSeq, 7);
    const two = w.slices(6, 220);
    assert.equal(two.events, 2);

    w.trimBefore(8);
    assert.equal(w.start, 8);
    assert.equal(w.seqAt(8), 9);
    assert.equal(w.bytesFrom(8), 12);
  });
});
