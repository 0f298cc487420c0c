// Event log benchmark: append throughput with group commit (fsync on, and off
// for comparison), then replay throughput of the whole log to one WebSocket
// consumer (separate process, bench/fanout-consumers.ts) through the
// FirehoseServer with cursor=0, in events/s and MB/s.
//
//   node --import tsx bench/eventlog.bench.ts [--events 200000] [--size 512] [--batch 1]
//
// --batch is the number of events per append() call; appends are issued
// without waiting (up to 20,000 events in flight), as the relay pipeline does,
// so group commit decides the batching on disk. "burst" issues them in a tight
// loop (the flush finds thousands queued); "yielding" gives the event loop a
// turn every 20 calls, closer to events arriving from many sockets, so the
// 400-event / 2 ms flush triggers decide the batch size.
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { type FileEventLog, openEventLog } from '../src/eventlog/file-log.ts';
import { FirehoseServer, SUBSCRIBE_REPOS_PATH } from '../src/firehose/server.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '200000' },
    size: { type: 'string', default: '512' },
    batch: { type: 'string', default: '1' },
  },
});
const total = Number(args.events);
const size = Number(args.size);
const batch = Number(args.batch);
const MAX_IN_FLIGHT = 20_000;

function frame(seq: number): Uint8Array {
  const b = Buffer.alloc(size, seq & 0xff);
  b.writeDoubleLE(performance.timeOrigin + performance.now(), 0);
  b.writeDoubleLE(seq, 8);
  return b;
}

/** Issues all appends; with `yieldEvery`, gives the event loop a turn every that many calls. */
async function appendAll(log: FileEventLog, yieldEvery: number): Promise<number> {
  const t0 = performance.now();
  let calls = 0;
  const inFlight = new Set<Promise<unknown>>();
  let issued = 0;
  while (issued < total) {
    const k = Math.min(batch, total - issued);
    const p = log.append(Array.from({ length: k }, () => ({ kind: 1, uid: 1 + (issued % 1000), frame })));
    issued += k;
    inFlight.add(p);
    void p.then(() => inFlight.delete(p));
    if (issued - log.head() > MAX_IN_FLIGHT) await Promise.race(inFlight);
    if (yieldEvery > 0 && ++calls % yieldEvery === 0) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(inFlight);
  return performance.now() - t0;
}

async function flushCount(registry: Registry): Promise<number> {
  const text = await registry.metrics();
  return Number(/relay_eventlog_flush_seconds_count (\d+)/.exec(text)?.[1] ?? 0);
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

console.log(
  `event log bench: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}, ` +
    `${fmt(total)} events of ${size} bytes, ${batch} per append() call`,
);

const modes = [
  { fsync: true, yieldEvery: 0, label: 'fsync=on,  burst   ' },
  { fsync: true, yieldEvery: 20, label: 'fsync=on,  yielding' },
  { fsync: false, yieldEvery: 0, label: 'fsync=off, burst   ' },
];
for (const { fsync, yieldEvery, label } of modes) {
  const dir = mkdtempSync(join(tmpdir(), 'eventlog-bench-'));
  const registry = new Registry();
  const log = await openEventLog({ dir, fsync, gcIntervalMs: 0, registry });
  const ms = await appendAll(log, yieldEvery);
  const flushes = await flushCount(registry);
  console.log(
    `append ${label}: ${fmt((total / ms) * 1000)} events/s, ` +
      `${mb(((total * size) / ms) * 1000)} MB/s of frames, ${fmt(flushes)} group commits ` +
      `(${(total / flushes).toFixed(0)} events each)`,
  );
  if (yieldEvery > 0 || !fsync) {
    await log.close();
    rmSync(dir, { recursive: true, force: true });
    continue;
  }

  // Replay everything to one consumer in another process.
  const firehose = new FirehoseServer({ log, pingIntervalMs: 0 });
  const server = createServer((_q, r) => r.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (!firehose.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}${SUBSCRIBE_REPOS_PATH}?cursor=0`;
  const t0 = performance.now();
  const child: ChildProcess = fork(join(import.meta.dirname, 'fanout-consumers.ts'), [url, '1', '1000000'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let tReady = 0;
  const stats = await new Promise<{ messages: number; bytes: number }>((resolve) => {
    child.on('message', (m: { type: string; minSeq?: number; messages?: number; bytes?: number }) => {
      if (m.type === 'ready') tReady = performance.now();
      if (m.type === 'progress' && m.minSeq === total) child.send({ type: 'report' });
      if (m.type === 'stats') resolve({ messages: m.messages ?? 0, bytes: m.bytes ?? 0 });
    });
  });
  const replayMs = performance.now() - (tReady || t0);
  console.log(
    `replay to 1 consumer (cursor=0): ${fmt((stats.messages / replayMs) * 1000)} events/s, ` +
      `${mb((stats.bytes / replayMs) * 1000)} MB/s on the wire (${fmt(stats.messages)} events in ${(replayMs / 1000).toFixed(2)} s)`,
  );
  child.send({ type: 'exit' });
  await new Promise((r) => child.once('exit', r));
  await firehose.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await log.close();
  rmSync(dir, { recursive: true, force: true });
}
