// Scale-out benchmark (issue 17, docs/scale-out.md), two parts:
//
// 1. Latency the shared log adds: events appended at --latency-rate/s (in
//    batches every 10 ms), time from the append call to the records reaching
//    the durable listeners, (a) of the same file log (fsync on: the
//    single-process relay's path) and (b) of a second NatsEventLog on the same
//    stream (file storage: what a fan-out node sees of an ingest process's
//    publish). p50/p99/max in ms.
// 2. Fan-out: one ingest process and two fan-out processes (as `npm start`
//    runs them, RELAY_ROLE) on the machine's NATS and PostgreSQL, the
//    simulated network at --rate events/s, --consumers consumers (their own
//    process, counting frames on raw sockets: bench/e2e-consumers.ts) first
//    all on fan-out node 1, then split over both. For each: deliveries/s
//    (messages received by all consumers together) and fan-out CPU µs per
//    delivery (user+system of the fan-out processes from /proc).
// Stream, KV buckets, schema and data directories are made for the run and
// removed after it. The machine is shared: numbers are indicative; the load
// average is printed with them.
//
//   node --import tsx bench/scale-out.bench.ts [--rate 300] [--consumers 1000] [--seconds 15]
//       [--latency-rate 2000] [--latency-seconds 10]
import { type ChildProcess, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { SimNetwork } from '../sim/network.ts';
import { openEventLog } from '../src/eventlog/file-log.ts';
import { openNatsEventLog } from '../src/eventlog/nats-log.ts';
import type { EventLog, LogRecord } from '../src/eventlog/types.ts';
import { decodeFrame, encodeFrame } from '../src/protocol/frames.ts';
import { deleteStreams } from '../test/support/nats.ts';
import { type RelayProcess, spawnRelay } from '../test/support/relay-process.ts';

const { values: args } = parseArgs({
  options: {
    rate: { type: 'string', default: '300' },
    consumers: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '15' },
    'latency-rate': { type: 'string', default: '2000' },
    'latency-seconds': { type: 'string', default: '10' },
  },
});
const NATS_URL = process.env.BENCH_NATS_URL ?? 'nats://127.0.0.1:4222';
const PG_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);
const suffix = `${process.pid}_${randomBytes(3).toString('hex')}`;
const dir = mkdtempSync(join(tmpdir(), 'atrelay-scale-bench-'));
const streams: string[] = [];

function pct(sorted: readonly number[], q: number): number {
  return sorted.length === 0
    ? Number.NaN
    : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Appends at `rate` for `seconds`; returns append → listener latencies (ms) seen on `reader`. */
async function latency(writer: EventLog, reader: EventLog, rate: number, seconds: number): Promise<number[]> {
  const out: number[] = [];
  const off = reader.onDurable((recs: readonly LogRecord[]) => {
    const now = performance.now();
    for (const r of recs) out.push(now - (decodeFrame(r.frame).body.t as number));
  });
  const perTick = Math.max(1, Math.round(rate / 100));
  const end = performance.now() + seconds * 1000;
  const pending: Promise<number[]>[] = [];
  while (performance.now() < end) {
    const t = performance.now();
    pending.push(
      writer.append(
        Array.from({ length: perTick }, () => ({
          kind: 1,
          uid: 1,
          frame: (seq: number) => encodeFrame('#commit', { seq, t, pad: new Uint8Array(400) }),
        })),
      ),
    );
    await sleep(10);
  }
  await Promise.all(pending);
  await sleep(200);
  off();
  return out.sort((a, b) => a - b);
}

function summary(name: string, ms: number[]): Record<string, number | string> {
  return {
    path: name,
    events: ms.length,
    p50: Number(pct(ms, 0.5).toFixed(2)),
    p99: Number(pct(ms, 0.99).toFixed(2)),
    max: Number((ms[ms.length - 1] ?? Number.NaN).toFixed(2)),
  };
}

function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

interface ConsumerStats {
  messages: number;
  perConsumerMin: number;
  closed: number;
}

function startConsumers(url: string, n: number): Promise<ChildProcess> {
  const child = fork(new URL('./e2e-consumers.ts', import.meta.url).pathname, [url, String(n)], {
    execArgv: ['--import', 'tsx'],
  });
  return new Promise((resolve) => {
    child.on('message', (m: { type: string }) => {
      if (m.type === 'ready') resolve(child);
    });
  });
}

function report(child: ChildProcess): Promise<ConsumerStats> {
  return new Promise((resolve) => {
    const on = (msg: { type: string } & ConsumerStats) => {
      if (msg.type !== 'stats') return;
      child.off('message', on);
      resolve(msg);
    };
    child.on('message', on);
    child.send({ type: 'report' });
  });
}

async function partLatency(): Promise<void> {
  const rate = Number(args['latency-rate']);
  const seconds = Number(args['latency-seconds']);
  const file = await openEventLog({ dir: join(dir, 'latency-file'), fsync: true, gcIntervalMs: 0 });
  const fileMs = await latency(file, file, rate, seconds);
  await file.close();
  const stream = `bench_lat_${suffix}`;
  streams.push(stream);
  const w = await openNatsEventLog({ url: NATS_URL, stream });
  const r = await openNatsEventLog({ url: NATS_URL, stream });
  const sameMs = await latency(w, w, rate, seconds);
  const natsMs = await latency(w, r, rate, seconds);
  await Promise.all([w.close(), r.close()]);
  const rows = [
    summary('file log, append → durable listener (fsync)', fileMs),
    summary('JetStream, append → own tail (ingest process)', sameMs),
    summary('JetStream, append → another process tail (fan-out node)', natsMs),
  ];
  console.table(rows);
  console.log(JSON.stringify({ bench: 'scale-out-latency', rate, seconds, loadavg: loadavg()[0], rows }));
}

async function partFanout(): Promise<void> {
  const rate = Number(args.rate);
  const consumers = Number(args.consumers);
  const seconds = Number(args.seconds);
  const stream = `bench_fo_${suffix}`;
  streams.push(stream, `KV_${stream}-leases`);
  const schema = `bench_fo_${suffix}`;
  const db = new pg.Client({ connectionString: PG_URL });
  await db.connect();
  await db.query(`CREATE SCHEMA ${schema}`);
  const procs: RelayProcess[] = [];
  const kids: ChildProcess[] = [];
  const net = await SimNetwork.start({
    hosts: 4,
    accountsPerHost: 50,
    seed: 'scale-bench',
    historySize: Math.ceil(rate * (2 * seconds + 30)),
    pregenerate: Math.ceil(rate * (2 * seconds + 20)),
  });
  try {
    const env = (role: string, n: number) => ({
      RELAY_PORT: '0',
      RELAY_METRICS_PORT: '0',
      RELAY_BIND: '127.0.0.1',
      RELAY_DATA_DIR: join(dir, `${role}-${n}`),
      RELAY_PLC_URL: net.plc.url,
      RELAY_UPSTREAM: 'none',
      RELAY_ALLOW_INSECURE_HOSTS: 'true',
      RELAY_HOST_RATE_PER_SECOND: '100000',
      RELAY_HOST_RATE_PER_HOUR: '1000000000',
      RELAY_HOST_RATE_PER_DAY: '1000000000',
      RELAY_MAX_CONSUMERS_PER_IP: String(consumers + 10),
      RELAY_MAX_CONSUMERS: String(consumers + 10),
      // 1,000 handshakes at once on a busy machine: let them all queue and finish
      RELAY_MAX_PENDING_UPGRADES: String(consumers + 10),
      RELAY_UPGRADE_TIMEOUT_MS: '60000',
      DATABASE_URL: `${PG_URL}?options=-c%20search_path%3D${schema}`,
      RELAY_EVENTLOG: 'nats',
      RELAY_NATS_URL: NATS_URL,
      RELAY_NATS_STREAM: stream,
      RELAY_ROLE: role,
    });
    const ingest = await spawnRelay(env('ingest', 1));
    procs.push(ingest);
    const fan = [await spawnRelay(env('fanout', 1)), await spawnRelay(env('fanout', 2))];
    procs.push(...fan);
    for (const h of net.hosts) await h.requestCrawl(`http://127.0.0.1:${ingest.port}`);
    while (!net.hosts.every((h) => h.firehose.subscriberCount === 1)) await sleep(50);
    net.startGenerator(rate);
    const url = (p: RelayProcess) => `ws://127.0.0.1:${p.port}/xrpc/com.atproto.sync.subscribeRepos`;
    const rows: Record<string, number | string>[] = [];
    for (const split of [[consumers], [Math.floor(consumers / 2), consumers - Math.floor(consumers / 2)]]) {
      const groups = await Promise.all(split.map((n, i) => startConsumers(url(fan[i]), n)));
      kids.push(...groups);
      await sleep(3000); // warm-up
      const cpu0 = fan.map((p) => procCpuSeconds(p.child.pid as number));
      const s0 = await Promise.all(groups.map(report));
      const t0 = performance.now();
      await sleep(seconds * 1000);
      const s1 = await Promise.all(groups.map(report));
      const elapsed = (performance.now() - t0) / 1000;
      const cpu = fan.reduce((n, p, i) => n + procCpuSeconds(p.child.pid as number) - cpu0[i], 0);
      const delivered = s1.reduce((n, s, i) => n + s.messages - s0[i].messages, 0);
      rows.push({
        nodes: split.length,
        consumers,
        offeredPerSec: rate,
        deliveriesPerSec: Math.round(delivered / elapsed),
        fanoutCpuUsPerDelivery: Number(((cpu * 1e6) / Math.max(1, delivered)).toFixed(2)),
        fanoutCpuCores: Number((cpu / elapsed).toFixed(2)),
        closed: s1.reduce((n, s) => n + s.closed, 0),
      });
      for (const g of groups) g.kill('SIGKILL');
    }
    console.table(rows);
    console.log(JSON.stringify({ bench: 'scale-out-fanout', seconds, loadavg: loadavg()[0], rows }));
  } finally {
    net.stopGenerator();
    for (const k of kids) k.kill('SIGKILL');
    for (const p of procs) p.child.kill('SIGKILL');
    await net.stop();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  }
}

try {
  log(`load average ${loadavg()[0].toFixed(2)}`);
  await partLatency();
  await partFanout();
} finally {
  await deleteStreams(streams);
  rmSync(dir, { recursive: true, force: true });
}
