// Host sockets on worker threads (socket-threads.ts, socket-thread.ts), driven
// directly through the UpstreamSocket interface, with the verify pool's real
// workers hosting them and loopback upstreams.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WebSocket } from 'ws';
import { scriptedPds } from '../../test/support/ingest-support.ts';
import { waitFor } from '../../test/support/wait.ts';
import { isWholeBuffer } from '../protocol/bytes.ts';
import { encodeErrorFrame, encodeFrame, encodeInfoFrame } from '../protocol/frames.ts';
import type { LookupFn } from '../protocol/identity/safe-fetch.ts';
import { VerifyPool } from '../validate/pool.ts';
import type { FrameVerdict } from './frame-check.ts';
import { guardedLookup } from './host-checks.ts';
import { SocketThreads } from './socket-threads.ts';
import type { UpstreamHandlers, UpstreamSocket } from './upstream-socket.ts';

const commit = (seq: number) => encodeFrame('#commit', { seq, repo: 'did:plc:a', rev: 'x', ops: [] });
const loopback = guardedLookup(undefined, true);

/** Handlers that record what a socket reports. */
class Recorder implements UpstreamHandlers {
  opened = false;
  closeCode: number | undefined;
  errors: { code: string | undefined; message: string }[] = [];
  frames: { verdict: FrameVerdict; frame: Uint8Array | undefined; bytes: number }[] = [];
  pongs = 0;
  onFrame: (r: Recorder) => void = () => {};
  open(): void {
    this.opened = true;
  }
  frame(verdict: FrameVerdict, frame: Uint8Array | undefined, bytes: number): void {
    this.frames.push({ verdict, frame, bytes });
    this.onFrame(this);
  }
  pong(): void {
    this.pongs++;
  }
  error(code: string | undefined, message: string): void {
    this.errors.push({ code, message });
  }
  close(code: number): void {
    this.closeCode = code;
  }
  get seqs(): number[] {
    return this.frames.flatMap((f) => (f.verdict.kind === 'event' ? [f.verdict.seq] : []));
  }
}

describe('host sockets on worker threads', () => {
  let threads: SocketThreads;
  let pool: VerifyPool;
  before(() => {
    threads = new SocketThreads({ windowFrames: 8, windowBytes: 1 << 20 });
    pool = new VerifyPool({ size: 1, socketThreads: threads });
  });
  after(() => pool.close());

  const dial = (
    hostname: string,
    rec: Recorder,
    lookup = loopback,
    handshakeTimeoutMs = 5_000,
  ): UpstreamSocket =>
    threads.dial(
      {
        url: `ws://${hostname}/xrpc/com.atproto.sync.subscribeRepos`,
        handshakeTimeoutMs,
        lookup,
      },
      rec,
    );

  it('reads on the thread: each message classified, events in buffers of their own, in order; pings answered', async () => {
    const frames = [
      ...Array.from({ length: 40 }, (_, i) => commit(i + 1)),
      new Uint8Array([0xff, 0x00]),
      commit(3), // not after 40
      encodeInfoFrame('OutdatedCursor', 'hello'),
      encodeErrorFrame('ConsumerTooSlow', 'bye'),
    ];
    let server: WebSocket | undefined;
    const pds = await scriptedPds([
      (ws) => {
        server = ws;
      },
    ]);
    try {
      const rec = new Recorder();
      const sock = dial(pds.hostname, rec);
      await waitFor(() => rec.opened);
      assert.equal(threads.connections, 1);
      sock.ping();
      await waitFor(() => rec.pongs === 1);
      for (const f of frames) server?.send(f);
      await waitFor(() => rec.frames.length === frames.length);
      assert.deepEqual(
        rec.seqs,
        Array.from({ length: 40 }, (_, i) => i + 1),
      );
      for (const f of rec.frames.slice(0, 40)) {
        assert.ok(f.frame && isWholeBuffer(f.frame), 'moved from the thread in a buffer of its own');
        assert.equal(f.bytes, f.frame.length);
        assert.equal(f.verdict.kind === 'event' && f.verdict.did, 'did:plc:a');
      }
      assert.deepEqual(
        rec.frames.slice(40).map((f) => [f.verdict.kind, f.frame]),
        [
          ['bad', undefined],
          ['bad', undefined],
          ['info', undefined],
          ['error', undefined],
        ],
      );
      const [garbage, stale, info, error] = rec.frames.slice(40).map((f) => f.verdict);
      assert.equal(garbage.kind === 'bad' && garbage.reason, 'bad-header');
      assert.equal(stale.kind === 'bad' && stale.reason, 'seq-not-increasing');
      assert.equal(info.kind === 'info' && info.info.name, 'OutdatedCursor');
      assert.equal(error.kind === 'error' && error.error.name, 'ConsumerTooSlow');
      sock.terminate();
      await waitFor(() => rec.closeCode !== undefined);
      assert.equal(threads.connections, 0);
    } finally {
      await pds.close();
    }
  });

  it('a paused socket stops within one credit window and, resumed, loses nothing', async () => {
    const total = 300;
    const frameBytes = 16 * 1024;
    const big = (seq: number) =>
      encodeFrame('#commit', {
        seq,
        repo: 'did:plc:a',
        rev: 'x',
        ops: [],
        blocks: new Uint8Array(frameBytes),
      });
    const pds = await scriptedPds([
      (ws) => {
        for (let s = 1; s <= total; s++) ws.send(big(s));
      },
    ]);
    const probe = await scriptedPds([(ws) => ws.send(commit(1))]);
    try {
      const rec = new Recorder();
      let sock: UpstreamSocket | undefined;
      rec.onFrame = (r) => {
        if (r.frames.length === 1) sock?.pause();
      };
      sock = dial(pds.hostname, rec);
      await waitFor(() => rec.frames.length >= 1 && sock?.isPaused === true);
      // a second socket on the same thread reads a frame: the thread has
      // turned its loop since, and the paused socket sent nothing more
      const other = new Recorder();
      const probeSock = dial(probe.hostname, other);
      await waitFor(() => other.frames.length === 1);
      // the window, plus the rest of the socket read `ws` was parsing when
      // the thread paused (as on the main thread: at most 64 KB)
      const bound = 8 + Math.ceil((64 * 1024) / frameBytes);
      assert.ok(rec.frames.length <= bound, `${rec.frames.length} frames read while paused (bound ${bound})`);
      assert.ok(sock.isPaused);
      sock.resume();
      await waitFor(() => rec.frames.length === total);
      assert.deepEqual(
        rec.seqs,
        Array.from({ length: total }, (_, i) => i + 1),
      );
      sock.terminate();
      probeSock.terminate();
      await waitFor(() => rec.closeCode !== undefined && other.closeCode !== undefined);
    } finally {
      await pds.close();
      await probe.close();
    }
  });

  it('refuses a non-public address on the main thread, before any connection', async () => {
    const pds = await scriptedPds([]);
    try {
      const port = pds.hostname.split(':')[1];
      // the name resolves to loopback, which the policy refuses (and which is
      // harmless if the refusal failed): the thread must never dial it
      const asked: string[] = [];
      const dns: LookupFn = async (name) => {
        asked.push(name);
        return [{ address: '127.0.0.1', family: 4 }];
      };
      const rec = new Recorder();
      dial(`pds.example:${port}`, rec, guardedLookup(dns, false));
      await waitFor(() => rec.closeCode !== undefined);
      assert.deepEqual(asked, ['pds.example']);
      assert.equal(rec.closeCode, 1006);
      assert.equal(rec.errors[0]?.code, 'ESSRF');
      assert.equal(rec.opened, false);
      assert.deepEqual(pds.cursors, [], 'no connection reached the upstream');
    } finally {
      await pds.close();
    }
  });

  it('a socket terminated while its address resolves is never dialled', async () => {
    const pds = await scriptedPds([]);
    try {
      let answer: (() => void) | undefined;
      const slow: LookupFn = (_name) =>
        new Promise((resolve) => {
          answer = () => resolve([{ address: '127.0.0.1', family: 4 }]);
        });
      const rec = new Recorder();
      const sock = dial(pds.hostname.replace('127.0.0.1', 'slow.test'), rec, guardedLookup(slow, true));
      await waitFor(() => answer !== undefined);
      sock.terminate();
      await waitFor(() => rec.closeCode !== undefined);
      answer?.();
      // a dial would now reach the upstream: a fresh socket to it proves the thread is past that point
      const probe = new Recorder();
      const s2 = dial(pds.hostname, probe);
      await waitFor(() => probe.opened);
      assert.equal(pds.cursors.length, 1, 'only the probe connected');
      s2.terminate();
      await waitFor(() => probe.closeCode !== undefined);
    } finally {
      await pds.close();
    }
  });

  it('a lookup that never answers fails the dial at the handshake timeout', async () => {
    const silent: LookupFn = () => new Promise(() => {});
    const rec = new Recorder();
    dial('silent.test:1234', rec, guardedLookup(silent, true), 50);
    await waitFor(() => rec.closeCode !== undefined);
    assert.equal(rec.closeCode, 1006);
    assert.match(rec.errors[0]?.message ?? '', /no address for silent\.test within 50 ms/);
    assert.equal(rec.opened, false);
  });

  it("a thread that exits closes its sockets (1006); the pool's new worker takes new ones", async () => {
    const pds = await scriptedPds([(ws) => ws.send(commit(1)), (ws) => ws.send(commit(2))]);
    try {
      const rec = new Recorder();
      dial(pds.hostname, rec);
      await waitFor(() => rec.frames.length === 1);
      await pool['workers'][0].worker.terminate();
      await waitFor(() => rec.closeCode !== undefined);
      assert.equal(rec.closeCode, 1006);
      assert.match(rec.errors.at(-1)?.message ?? '', /socket thread exited/);
      assert.equal(threads.connections, 0);
      const next = new Recorder();
      const sock = dial(pds.hostname, next);
      await waitFor(() => next.frames.length === 1);
      assert.deepEqual(next.seqs, [2]);
      sock.terminate();
      await waitFor(() => next.closeCode !== undefined);
    } finally {
      await pds.close();
    }
  });
});
