import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import { WebSocket } from 'ws';
import { openTempEventLog } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { FileEventLog, FileEventLogOptions } from '../eventlog/file-log.ts';
import { decodeFrame, encodeFrame, readFrameSeq } from '../protocol/frames.ts';
import { type FirehoseOptions, FirehoseServer, parseCursor, SUBSCRIBE_REPOS_PATH } from './server.ts';

interface Harness {
  log: FileEventLog;
  firehose: FirehoseServer;
  port: number;
  url: (query?: string) => string;
  append: (n: number, size?: number, uid?: number) => Promise<number[]>;
  close: () => Promise<void>;
}

let harness: Harness | undefined;
const openClients = new Set<WebSocket | Socket>();
afterEach(async () => {
  for (const c of openClients) {
    if (c instanceof WebSocket) c.terminate();
    else c.destroy();
  }
  openClients.clear();
  await harness?.close();
  harness = undefined;
});

function commitFrame(seq: number, size = 64): Uint8Array {
  return encodeFrame('#commit', { seq, repo: 'did:plc:test', blob: new Uint8Array(size) });
}

async function start(
  logOpts: Partial<FileEventLogOptions> = {},
  fhOpts: Partial<FirehoseOptions> = {},
): Promise<Harness> {
  const log = await openTempEventLog(logOpts);
  const firehose = new FirehoseServer({ log, pingIntervalMs: 0, ...fhOpts });
  const server: Server = createServer((_req, res) => res.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (!firehose.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const h: Harness = {
    log,
    firehose,
    port,
    url: (query = '') => `ws://127.0.0.1:${port}${SUBSCRIBE_REPOS_PATH}${query}`,
    append: (n, size = 64, uid = 1) =>
      log.append(
        Array.from({ length: n }, () => ({ kind: 1, uid, frame: (seq: number) => commitFrame(seq, size) })),
      ),
    close: async () => {
      await firehose.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await log.close();
    },
  };
  harness = h;
  return h;
}

/** A WebSocket consumer that records every message (decoded seq or frame body). */
class TestConsumer {
  readonly ws: WebSocket;
  readonly seqs: number[] = [];
  readonly others: Record<string, unknown>[] = [];
  closeCode?: number;
  readonly opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers });
    openClients.add(this.ws);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code) => {
        this.closeCode = code;
        resolve(code);
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      const seq = readFrameSeq(data);
      const frame = decodeFrame(data);
      if (frame.header.op === 1 && frame.header.t === '#commit' && seq !== undefined) this.seqs.push(seq);
      else this.others.push({ ...frame.header, ...frame.body });
    });
  }

  last(): number {
    return this.seqs.at(-1) ?? -1;
  }
}

function assertConsecutive(seqs: number[], from: number, to: number, label: string): void {
  assert.equal(seqs[0], from, `${label}: first seq`);
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1) {
      assert.fail(`${label}: seq ${seqs[i]} follows ${seqs[i - 1]} (gap or duplicate)`);
    }
  }
  assert.equal(seqs.at(-1), to, `${label}: last seq`);
}

/** Raw TCP WebSocket client: completes the handshake, then lets the test control reading. */
async function rawConnect(port: number, path: string): Promise<{ sock: Socket; data: Buffer[] }> {
  const sock = connect(port, '127.0.0.1');
  openClients.add(sock);
  const data: Buffer[] = [];
  sock.on('data', (d: Buffer) => data.push(d));
  sock.on('error', () => {});
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  sock.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
  );
  await waitFor(() => Buffer.concat(data).includes('\r\n\r\n'), 'handshake');
  assert.match(Buffer.concat(data).toString('latin1'), /^HTTP\/1.1 101/);
  return { sock, data };
}

/** Parses the unmasked server frames after the HTTP response. */
function parseWsFrames(bytes: Buffer): { opcode: number; payload: Buffer }[] {
  let p = bytes.indexOf('\r\n\r\n') + 4;
  const out: { opcode: number; payload: Buffer }[] = [];
  while (p + 2 <= bytes.length) {
    const opcode = bytes[p] & 0x0f;
    let len = bytes[p + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      len = bytes.readUInt16BE(p + 2);
      h = 4;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(p + 2));
      h = 10;
    }
    if (p + h + len > bytes.length) break;
    out.push({ opcode, payload: bytes.subarray(p + h, p + h + len) });
    p += h + len;
  }
  return out;
}

describe('FirehoseServer', () => {
  it('parses cursors strictly', () => {
    assert.deepEqual(parseCursor([]), { ok: true, value: undefined });
    assert.deepEqual(parseCursor(['0']), { ok: true, value: 0 });
    assert.deepEqual(parseCursor(['42']), { ok: true, value: 42 });
    for (const bad of ['-1', 'abc', '1.5', '', ' 1', '1e3', '99999999999999999999']) {
      assert.equal(parseCursor([bad]).ok, false, bad);
    }
    assert.equal(parseCursor(['1', '2']).ok, false);
  });

  // cutoverLagEvents 0: replay reads until it meets the head, then cuts over;
  // huge: replay hands over at once and the whole catch-up runs in the cutover
  // phase, while the live window buffers the events appended meanwhile.
  for (const cutoverLagEvents of [0, 1e9]) {
    it(`gives every consumer a gapless, duplicate-free, ordered stream while appending at full speed (cutover lag ${cutoverLagEvents})`, async () => {
      const h = await start({ segmentEvents: 500 }, { replayBatchBytes: 32 * 1024, cutoverLagEvents });
      await h.append(3000);
      let appending = true;
      const appender = async () => {
        while (appending)
          await h.append(1 + Math.floor(Math.random() * 20), 32 + Math.floor(Math.random() * 200));
      };
      const appenders = [appender(), appender()];
      const consumers: { c: TestConsumer; from: number | undefined; label: string }[] = [];
      for (let i = 0; i < 10; i++) {
        await sleep(20 + Math.floor(Math.random() * 60));
        const head = h.log.head();
        const choice = i % 4;
        const cursor =
          choice === 0
            ? undefined
            : choice === 1
              ? 0
              : choice === 2
                ? Math.floor(Math.random() * head)
                : head;
        const c = new TestConsumer(h.url(cursor === undefined ? '' : `?cursor=${cursor}`));
        consumers.push({ c, from: cursor, label: `consumer ${i} cursor=${cursor}` });
      }
      await sleep(200);
      appending = false;
      await Promise.all(appenders);
      const final = h.log.head();
      await waitFor(() => consumers.every(({ c }) => c.last() === final), 'all consumers to reach the head');
      for (const { c, from, label } of consumers) {
        assert.deepEqual(c.others, [], `${label}: no info or error frames`);
        const first = from === undefined ? c.seqs[0] : from + 1;
        assertConsecutive(c.seqs, first, final, label);
      }
      const infos = h.firehose.listConsumers();
      assert.equal(infos.length, consumers.length);
      for (const info of infos) {
        assert.equal(info.state, 'live');
        assert.equal(info.lastSeq, final);
        assert.equal(info.lag, 0);
      }
    });
  }

  it('replays at disk speed, so a consumer catching up is not dropped even with a small outbox', async () => {
    const h = await start({ segmentEvents: 2000 }, { outboxMaxBytes: 256 * 1024, outboxMaxEvents: 2000 });
    for (let i = 0; i < 20; i++) await h.append(1000, 500); // ~11 MB, 40× the outbox
    let appending = true;
    const live = (async () => {
      while (appending) {
        await h.append(20, 500);
        await sleep(5);
      }
    })();
    const c = new TestConsumer(h.url('?cursor=0'));
    await sleep(300);
    appending = false;
    await live;
    const head = h.log.head();
    await waitFor(() => c.last() === head, 'catch-up');
    assert.deepEqual(c.others, []);
    assertConsecutive(c.seqs, 1, head, 'catching-up consumer');
    assert.equal(h.firehose.listConsumers()[0]?.state, 'live');
  });

  it('forgets a consumer that leaves in the middle of a replay', async () => {
    const h = await start({}, { replayBatchBytes: 16 * 1024 });
    for (let i = 0; i < 5; i++) await h.append(1000, 500);
    const c = new TestConsumer(h.url('?cursor=0'));
    await waitFor(() => c.seqs.length > 0, 'first events');
    c.ws.terminate();
    await waitFor(() => h.firehose.listConsumers().length === 0, 'consumer forgotten');
    await h.append(10);
    assert.equal(h.firehose.window.end - h.firehose.window.start, 0, 'nothing held for nobody');
  });

  it('sends OutdatedCursor and starts at the oldest kept event when the cursor is older than retention', async () => {
    const h = await start({ segmentEvents: 10, retentionBytes: 3000 });
    await h.append(100, 100); // ~100 events of ~150 bytes: 10 segments
    await h.log.gc();
    const oldest = h.log.oldest();
    assert.ok(oldest > 10, `retention removed segments (oldest ${oldest})`);
    const c = new TestConsumer(h.url('?cursor=3'));
    await waitFor(() => c.last() === 100, 'replay');
    assert.equal(c.others.length, 1);
    assert.equal(c.others[0].t, '#info');
    assert.equal(c.others[0].name, 'OutdatedCursor');
    await h.append(5);
    await waitFor(() => c.last() === 105, 'live events');
    assertConsecutive(c.seqs, oldest, 105, 'outdated consumer');
  });

  it('answers a cursor beyond the head with FutureCursor and close 1008', async () => {
    const h = await start();
    await h.append(5);
    const c = new TestConsumer(h.url('?cursor=6'));
    assert.equal(await c.closed, 1008);
    assert.deepEqual(c.seqs, []);
    assert.equal(c.others[0].op, -1);
    assert.equal(c.others[0].error, 'FutureCursor');
    // cursor == head is fine: nothing to replay, then live.
    const ok = new TestConsumer(h.url('?cursor=5'));
    await ok.opened;
    await waitFor(() => h.firehose.listConsumers().some((i) => i.state === 'live'), 'live');
    await h.append(1);
    await waitFor(() => ok.last() === 6, 'live event');
    assert.deepEqual(ok.seqs, [6]);
  });

  it('rejects a malformed or negative cursor with a clear error', async () => {
    const h = await start();
    for (const bad of ['-1', 'abc', '1.5']) {
      const c = new TestConsumer(h.url(`?cursor=${bad}`));
      assert.equal(await c.closed, 1008);
      assert.equal(c.others[0].error, 'InvalidRequest');
      assert.match(String(c.others[0].message), /non-negative integer/);
    }
  });

  it('drops a consumer whose outbox overflows with ConsumerTooSlow, without harming the others', async () => {
    const registry = new Registry();
    const h = await start({}, { outboxMaxBytes: 256 * 1024, registry });
    const good = new TestConsumer(h.url());
    await good.opened;
    const slow = await rawConnect(h.port, SUBSCRIBE_REPOS_PATH);
    slow.sock.pause();
    await waitFor(
      () => h.firehose.listConsumers().filter((i) => i.state === 'live').length === 2,
      'both live',
    );
    let batches = 0;
    while (h.firehose.listConsumers().length === 2) {
      await h.append(20, 4000);
      if (++batches > 2000) assert.fail('slow consumer was never dropped');
    }
    const head = h.log.head();
    await waitFor(() => good.last() === head, 'good consumer to get everything');
    assertConsecutive(good.seqs, 1, head, 'good consumer');
    assert.match(await registry.metrics(), /relay_firehose_consumer_drops_total\{reason="slow"\} 1/);

    // The slow consumer, once it reads again, finds the error frame and a close frame.
    slow.sock.resume();
    await waitFor(
      () => parseWsFrames(Buffer.concat(slow.data)).some((f) => f.opcode === 8),
      'close frame at the slow consumer',
    );
    const frames = parseWsFrames(Buffer.concat(slow.data));
    const close = frames.at(-1)!;
    assert.equal(close.opcode, 8);
    assert.equal(close.payload.readUInt16BE(0), 1008);
    const error = decodeFrame(frames.at(-2)!.payload);
    assert.equal(error.header.op, -1);
    assert.equal(error.body.error, 'ConsumerTooSlow');
    // Everything before the error frame was still a gapless prefix of the stream.
    const seqs = frames.slice(0, -2).map((f) => readFrameSeq(f.payload)!);
    if (seqs.length > 0) assertConsecutive(seqs, 1, seqs.at(-1)!, 'slow consumer prefix');
  });

  it('limits consumers per address and in total', async () => {
    const h = await start({}, { maxConsumersPerIp: 2, maxConsumers: 3 });
    const a = new TestConsumer(h.url());
    const b = new TestConsumer(h.url());
    await Promise.all([a.opened, b.opened]);
    const refused = new WebSocket(h.url());
    openClients.add(refused);
    refused.on('error', () => {});
    const status = await new Promise<number>((resolve) =>
      refused.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0)),
    );
    assert.equal(status, 429);
    a.ws.close();
    await a.closed;
    await waitFor(() => h.firehose.listConsumers().length === 1, 'slot released');
    const c = new TestConsumer(h.url());
    await c.opened;
    assert.equal(h.firehose.listConsumers().length, 2);
  });

  it('drops peers that stop answering pings and keeps those that answer', async () => {
    // No timer: the test runs the liveness rounds itself, so a busy machine
    // cannot make a healthy peer's pong late.
    const h = await start({}, { pingIntervalMs: 0 });
    const healthy = new TestConsumer(h.url());
    await healthy.opened;
    const dead = await rawConnect(h.port, SUBSCRIBE_REPOS_PATH); // never answers pings
    await waitFor(() => h.firehose.listConsumers().length === 2, 'two consumers');
    for (let round = 0; round < 3; round++) {
      h.firehose.pingConsumers();
      await waitFor(
        () => h.firehose.listConsumers().some((c) => !c.awaitingPong),
        `the healthy consumer's pong (round ${round})`,
      );
    }
    await waitFor(() => h.firehose.listConsumers().length === 1, 'dead peer dropped');
    await new Promise<void>((resolve) =>
      dead.sock.destroyed ? resolve() : dead.sock.once('close', resolve),
    );
    assert.equal(healthy.ws.readyState, WebSocket.OPEN);
    assert.equal(h.firehose.listConsumers()[0].awaitingPong, false);
  });

  it('runs the liveness rounds on its own timer', async () => {
    const h = await start({}, { pingIntervalMs: 40 });
    const dead = await rawConnect(h.port, SUBSCRIBE_REPOS_PATH);
    await waitFor(() => h.firehose.listConsumers().length === 1, 'the consumer');
    await waitFor(() => h.firehose.listConsumers().length === 0, 'dead peer dropped by the timer');
    await new Promise<void>((resolve) =>
      dead.sock.destroyed ? resolve() : dead.sock.once('close', resolve),
    );
  });

  it('lists consumers with address, user agent, cursor, lag and bytes, and disconnects by id', async () => {
    const h = await start();
    await h.append(50);
    const c = new TestConsumer(h.url('?cursor=10'), { 'user-agent': 'test-consumer/1.0' });
    await waitFor(() => c.last() === 50, 'replay');
    const [info] = h.firehose.listConsumers();
    assert.equal(info.remoteAddress, '127.0.0.1');
    assert.equal(info.userAgent, 'test-consumer/1.0');
    assert.equal(info.cursor, 10);
    assert.equal(info.lastSeq, 50);
    assert.equal(info.lag, 0);
    assert.equal(info.eventsSent, 40);
    assert.ok(info.bytesSent > 40 * 64);
    assert.equal(h.firehose.disconnect(info.id), true);
    assert.equal(await c.closed, 1000);
    assert.equal(h.firehose.disconnect(info.id), false);
    assert.deepEqual(h.firehose.listConsumers(), []);
  });

  it('does not replay events of taken-down accounts', async () => {
    const h = await start();
    await h.append(3, 64, 1);
    await h.append(2, 64, 2);
    await h.log.setTakedown(2, true);
    await h.append(1, 64, 2);
    const c = new TestConsumer(h.url('?cursor=0'));
    await waitFor(() => c.last() === 6, 'replay');
    assert.deepEqual(c.seqs, [1, 2, 3, 6]);
  });

  it('leaves other upgrade paths alone', async () => {
    const h = await start();
    const ws = new WebSocket(`ws://127.0.0.1:${h.port}/xrpc/other`);
    openClients.add(ws);
    ws.on('error', () => {});
    await new Promise<void>((resolve) => {
      ws.on('error', () => resolve());
      ws.on('close', () => resolve());
    });
    assert.deepEqual(h.firehose.listConsumers(), []);
  });
});
