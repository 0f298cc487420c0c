// Fan-out benchmark: frame deliveries per second to 10, 100 and 1,000
// WebSocket consumers (in a separate process, bench/fanout-consumers.ts), and
// append-to-delivery latency (p50/p99) at a fixed event rate. Two servers run
// side by side over the same event log: the FirehoseServer (frames encoded
// once, shared live window, coalesced socket writes) and a plain server doing
// one `ws.send(frame)` per event per socket, as @atproto/xrpc-server does, so
// the gain is reported as a ratio.
//
// Throughput phase: the producer appends as fast as the slowest consumer
// allows (it pauses while any consumer is more than a window of events behind), so
// the number measured is what the server can deliver, not how fast it drops.
//
//   node --import tsx bench/fanout.bench.ts [--consumers 10,100,1000]
//        [--seconds 4] [--rate 500] [--size 512] [--variants firehose,plain]
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type WebSocket, WebSocketServer } from 'ws';
import { openEventLog } from '../src/eventlog/file-log.ts';
import type { EventLog } from '../src/eventlog/types.ts';
import { FirehoseServer, SUBSCRIBE_REPOS_PATH } from '../src/firehose/server.ts';

const { values: args } = parseArgs({
  options: {
    consumers: { type: 'string', default: '10,100,1000' },
    seconds: { type: 'string', default: '4' },
    rate: { type: 'string', default: '500' },
    size: { type: 'string', default: '512' },
    variants: { type: 'string', default: 'firehose,plain' },
    window: { type: 'string' },
  },
});
const consumerCounts = args.consumers.split(',').map(Number);
const seconds = Number(args.seconds);
const rate = Number(args.rate);
const size = Number(args.size);
/** Pacing: how far (events) the producer may run ahead of the slowest consumer. */
const windowFor = (n: number) =>
  args.window ? Number(args.window) : Math.min(20_000, Math.max(500, Math.round(200_000 / n)));
const variants = args.variants.split(',');

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function benchFrame(seq: number): Uint8Array {
  const b = Buffer.alloc(size);
  b.writeDoubleLE(now(), 0);
  b.writeDoubleLE(seq, 8);
  return b;
}

interface Served {
  handleUpgrade: (
    req: import('node:http').IncomingMessage,
    socket: import('node:stream').Duplex,
    head: Buffer,
  ) => boolean;
  close: () => Promise<void>;
}

function firehoseVariant(log: EventLog): Served {
  const fh = new FirehoseServer({
    log,
    maxConsumers: 10_000,
    maxConsumersPerIp: 10_000,
    outboxMaxBytes: 512 * 1024 * 1024,
    outboxMaxEvents: 10_000_000,
    pingIntervalMs: 0,
  });
  return { handleUpgrade: (req, s, h) => fh.handleUpgrade(req, s, h), close: () => fh.close() };
}

/** One ws.send per event per socket (the @atproto/xrpc-server pattern), frames still shared. */
function plainVariant(log: EventLog): Served {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, clientTracking: false });
  const clients = new Set<WebSocket>();
  const off = log.onDurable((records) => {
    for (const ws of clients) for (const r of records) ws.send(r.frame);
  });
  return {
    handleUpgrade: (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        clients.add(ws);
        ws.on('close', () => clients.delete(ws));
        ws.on('error', () => ws.terminate());
      });
      return true;
    },
    close: async () => {
      off();
      for (const ws of clients) ws.terminate();
      wss.close();
    },
  };
}

interface ChildMsg {
  type: string;
  minSeq?: number;
  messages?: number;
  bytes?: number;
  latencies?: number[];
  closed?: number;
}

class ConsumerProcess {
  readonly child: ChildProcess;
  minSeq = 0;
  closed = 0;
  private waiters: ((m: ChildMsg) => void)[] = [];
  constructor(url: string, n: number, sampleEvery: number) {
    this.child = fork(
      join(import.meta.dirname, 'fanout-consumers.ts'),
      [url, String(n), String(sampleEvery)],
      {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    this.child.on('message', (m: ChildMsg) => {
      if (m.type === 'progress') {
        this.minSeq = m.minSeq ?? 0;
        this.closed = m.closed ?? 0;
      }
      for (const w of this.waiters.splice(0)) w(m);
    });
  }
  next(type: string): Promise<ChildMsg> {
    return new Promise((resolve) => {
      const wait = (m: ChildMsg) => (m.type === type ? resolve(m) : this.waiters.push(wait));
      this.waiters.push(wait);
    });
  }
  async report(): Promise<ChildMsg> {
    const p = this.next('stats');
    this.child.send({ type: 'report' });
    return p;
  }
  async exit(): Promise<void> {
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.send({ type: 'exit' });
    await done;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

interface Row {
  variant: string;
  consumers: number;
  deliveriesPerSec: number;
  eventsPerSec: number;
  p50: number;
  p99: number;
  dropped: number;
}

async function runOne(variant: string, n: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'fanout-bench-'));
  const log = await openEventLog({ dir, gcIntervalMs: 0 });
  const served = variant === 'firehose' ? firehoseVariant(log) : plainVariant(log);
  const server = createServer((_q, r) => r.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (!served.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}${SUBSCRIBE_REPOS_PATH}`;
  // Latency samples: about 20k per phase whatever the consumer count.
  const sampleEvery = Math.max(1, Math.round((n * rate * seconds) / 20_000));
  const consumers = new ConsumerProcess(url, n, sampleEvery);
  await consumers.next('ready');
  await sleep(200);
  // Appends resolve in seq order, so the last one issued tells when all are durable.
  let lastAppend: Promise<unknown> = Promise.resolve();
  const append = (k: number) => {
    lastAppend = log.append(Array.from({ length: k }, () => ({ kind: 1, uid: 1, frame: benchFrame })));
  };
  const waitDelivered = async (timeoutMs: number) => {
    await lastAppend;
    const target = log.head();
    const deadline = Date.now() + timeoutMs;
    while (consumers.minSeq < target && Date.now() < deadline) await sleep(2);
  };

  // Throughput: append in batches, paced by the slowest consumer.
  const startSeq = log.head();
  const t0 = performance.now();
  let assigned = startSeq;
  while (performance.now() - t0 < seconds * 1000) {
    if (assigned - consumers.minSeq > windowFor(n)) {
      await sleep(1);
      continue;
    }
    append(50);
    assigned += 50;
    await new Promise((r) => setImmediate(r));
  }
  await waitDelivered(20_000);
  const t1 = performance.now();
  const events = log.head() - startSeq;
  const tput = await consumers.report();
  const deliveriesPerSec = (tput.messages ?? 0) / ((t1 - t0) / 1000);

  // Latency: fixed rate, 10 ms ticks.
  const perTick = Math.max(1, Math.round(rate / 100));
  const tickTimer = setInterval(() => append(perTick), 10);
  await sleep(seconds * 1000);
  clearInterval(tickTimer);
  await waitDelivered(10_000);
  const lat = await consumers.report();
  const sorted = (lat.latencies ?? []).sort((a, b) => a - b);
  const row: Row = {
    variant,
    consumers: n,
    deliveriesPerSec,
    eventsPerSec: events / ((t1 - t0) / 1000),
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    dropped: consumers.closed,
  };
  await consumers.exit();
  await served.close();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return row;
}

console.log(
  `fan-out bench: ${cpus().length} × ${cpus()[0]?.model}, node ${process.version}, ` +
    `${size}-byte frames, ${seconds}s per phase, latency at ${rate} events/s, ` +
    `pacing window ${consumerCounts.map((n) => `${windowFor(n)} events for ${n}`).join(', ')}`,
);
const rows: Row[] = [];
for (const n of consumerCounts) {
  for (const v of variants) {
    const row = await runOne(v, n);
    rows.push(row);
    console.log(
      `${v.padEnd(9)} consumers=${String(n).padStart(4)}  deliveries/s=${Math.round(row.deliveriesPerSec).toLocaleString('en-US').padStart(10)}` +
        `  events/s=${Math.round(row.eventsPerSec).toLocaleString('en-US').padStart(8)}` +
        `  latency p50=${row.p50.toFixed(2)}ms p99=${row.p99.toFixed(2)}ms  dropped=${row.dropped}`,
    );
  }
}
console.log(
  '\n| consumers | firehose deliveries/s | plain ws.send deliveries/s | ratio | firehose p50 / p99 (ms) | plain p50 / p99 (ms) |',
);
console.log('|---:|---:|---:|---:|---:|---:|');
for (const n of consumerCounts) {
  const f = rows.find((r) => r.variant === 'firehose' && r.consumers === n);
  const p = rows.find((r) => r.variant === 'plain' && r.consumers === n);
  const fmt = (x?: number) => (x === undefined ? '–' : Math.round(x).toLocaleString('en-US'));
  const lat = (r?: Row) => (r ? `${r.p50.toFixed(2)} / ${r.p99.toFixed(2)}` : '–');
  const ratio = f && p ? (f.deliveriesPerSec / p.deliveriesPerSec).toFixed(1) : '–';
  console.log(
    `| ${n} | ${fmt(f?.deliveriesPerSec)} | ${fmt(p?.deliveriesPerSec)} | ${ratio}× | ${lat(f)} | ${lat(p)} |`,
  );
}
