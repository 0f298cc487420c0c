// Jetstream benchmark: the JSON stream (GET /subscribe, src/jetstream) beside
// the CBOR firehose (subscribeRepos) over the same event log.
//
// 1. Encoding: main-thread CPU per event to turn a relay #commit frame into
//    its Jetstream JSON messages (done once per event, shared by every
//    subscriber), next to the firehose's per-event work (framing the stored
//    bytes).
// 2. Fan-out: E events appended as fast as the log takes them, delivered to
//    1, 100 and 1,000 subscribers (in a separate process, raw sockets,
//    bench/jetstream-consumers.ts): events/s until every subscriber has all it
//    asked for, messages delivered/s, and the server process's CPU per event,
//    for the firehose, unfiltered JSON, and JSON filtered by collection (1 of
//    10 collections) and by DID (10 of 1,000 accounts).
//
// Events are realistic commits: one record (a post of ~200 bytes of text)
// per commit, from 1,000 accounts over 10 collections. The machine this runs
// on may be shared: the numbers are indicative.
//
//   node --import tsx bench/jetstream.bench.ts [--subscribers 1,100,1000] [--events 20000]
//        [--variants cbor,json,json-collection,json-did]
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openEventLog } from '../src/eventlog/file-log.ts';
import { FirehoseServer, SUBSCRIBE_REPOS_PATH } from '../src/firehose/server.ts';
import { frameMessages } from '../src/firehose/ws-frame.ts';
import { encodeEvent } from '../src/jetstream/encode.ts';
import { JETSTREAM_PATH, JetstreamServer } from '../src/jetstream/server.ts';
import { writeCar } from '../src/protocol/car.ts';
import { encodeCbor } from '../src/protocol/cbor.ts';
import { cidForCbor } from '../src/protocol/cid.ts';
import { encodeFrame } from '../src/protocol/frames.ts';

const { values: args } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1,100,1000' },
    events: { type: 'string', default: '20000' },
    variants: { type: 'string', default: 'cbor,json,json-collection,json-did' },
  },
});
const subscriberCounts = args.subscribers.split(',').map(Number);
const totalEvents = Number(args.events);
const variants = args.variants.split(',');

const ACCOUNTS = 1000;
const COLLECTIONS = Array.from({ length: 10 }, (_, i) => `app.bench.c${i}`);
const did = (i: number) => `did:plc:${String(i).padStart(24, 'b')}`;

/** A #commit frame with one record create, as the relay stores it. */
function commitFrame(i: number): Uint8Array {
  const collection = COLLECTIONS[i % COLLECTIONS.length];
  const record = {
    $type: collection,
    text: `bench post ${i} `.padEnd(200, 'x'),
    langs: ['en'],
    createdAt: new Date(1_700_000_000_000 + i).toISOString(),
    reply: {
      root: { uri: `at://${did(i % ACCOUNTS)}/app.bsky.feed.post/3l7tq`, cid: cidForCbor(encodeCbor({ i })) },
    },
  };
  const bytes = encodeCbor(record);
  const cid = cidForCbor(bytes);
  const commitBlock = encodeCbor({ did: did(i % ACCOUNTS), version: 3, rev: '3l7tqjqmdaa2k' });
  const commitCid = cidForCbor(commitBlock);
  return encodeFrame('#commit', {
    seq: i + 1,
    rebase: false,
    tooBig: false,
    repo: did(i % ACCOUNTS),
    commit: commitCid,
    rev: '3l7tqjqmdaa2k',
    since: null,
    blocks: writeCar(
      [commitCid],
      [
        [commitCid, commitBlock],
        [cid, bytes],
      ],
    ),
    ops: [{ action: 'create', path: `${collection}/3l7tq${String(i).padStart(8, 'a')}`, cid }],
    blobs: [],
    time: new Date().toISOString(),
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function encodingCost(frames: Uint8Array[]): void {
  const n = frames.length;
  for (let i = 0; i < Math.min(n, 2000); i++) encodeEvent(i, i, frames[i]); // warm up
  let t0 = process.cpuUsage();
  let w0 = performance.now();
  let bytes = 0;
  for (let i = 0; i < n; i++) bytes += encodeEvent(i, i, frames[i]).buf.length;
  let cpu = process.cpuUsage(t0);
  let wall = performance.now() - w0;
  console.log(
    `JSON encode (once per event): ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU/event, ` +
      `${Math.round(n / (wall / 1000))} events/s on one core, ${Math.round(bytes / n)} B/event framed JSON ` +
      `(CBOR frame ${Math.round(frames.reduce((s, f) => s + f.length, 0) / n)} B)`,
  );
  // a replaying subscriber filtered by DID (10 of 1,000 accounts) builds only its own messages
  const wanted = new Set(Array.from({ length: 10 }, (_, k) => did(k * 7)));
  const prefilter = (_kind: string, d: string) => wanted.has(d);
  t0 = process.cpuUsage();
  for (let i = 0; i < n; i++) encodeEvent(i, i, frames[i], undefined, prefilter);
  cpu = process.cpuUsage(t0);
  console.log(
    `JSON replay encode with a DID filter (10 of 1,000 accounts): ${((cpu.user + cpu.system) / n).toFixed(1)} µs CPU/event`,
  );
  t0 = process.cpuUsage();
  w0 = performance.now();
  for (let i = 0; i < n; i += 100) frameMessages(frames.slice(i, i + 100));
  cpu = process.cpuUsage(t0);
  wall = performance.now() - w0;
  console.log(
    `CBOR firehose framing (once per event): ${((cpu.user + cpu.system) / n).toFixed(2)} µs CPU/event`,
  );
}

class Consumers {
  readonly child: ChildProcess;
  min = 0;
  private readyResolve?: () => void;
  readonly ready = new Promise<void>((r) => {
    this.readyResolve = r;
  });
  constructor(url: string, n: number) {
    this.child = fork(join(import.meta.dirname, 'jetstream-consumers.ts'), [url, String(n)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: { type: string; min?: number }) => {
      if (m.type === 'ready') this.readyResolve?.();
      if (m.type === 'progress') this.min = m.min ?? 0;
    });
  }
  async exit(): Promise<void> {
    const done = new Promise((r) => this.child.once('exit', r));
    this.child.send({ type: 'exit' });
    await done;
  }
}

interface Row {
  variant: string;
  subscribers: number;
  eventsPerSec: number;
  deliveriesPerSec: number;
  cpuUsPerEvent: number;
  done: boolean;
}

async function runOne(variant: string, n: number, frames: Uint8Array[]): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'jetstream-bench-'));
  const log = await openEventLog({ dir, gcIntervalMs: 0, fsync: false });
  const limits = { outboxMaxBytes: 1024 ** 3, outboxMaxEvents: 10_000_000, pingIntervalMs: 0 };
  const firehose = new FirehoseServer({ log, maxConsumers: 10_000, maxConsumersPerIp: 10_000, ...limits });
  const jetstream = new JetstreamServer({
    log,
    maxSubscribers: 10_000,
    maxSubscribersPerIp: 10_000,
    ...limits,
  });
  const server = createServer((_q, r) => r.writeHead(404).end());
  server.on('upgrade', (req, socket, head) => {
    if (!firehose.handleUpgrade(req, socket, head) && !jetstream.handleUpgrade(req, socket, head))
      socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let path = JETSTREAM_PATH;
  let expected = frames.length;
  if (variant === 'cbor') path = SUBSCRIBE_REPOS_PATH;
  else if (variant === 'json-collection') {
    path += `?wantedCollections=${COLLECTIONS[3]}`;
    expected = frames.filter((_, i) => i % COLLECTIONS.length === 3).length;
  } else if (variant === 'json-did') {
    const wanted = Array.from({ length: 10 }, (_, k) => k * 7);
    path += `?${wanted.map((k) => `wantedDids=${did(k)}`).join('&')}`;
    expected = frames.filter((_, i) => wanted.includes(i % ACCOUNTS)).length;
  }
  const consumers = new Consumers(base + path, n);
  await consumers.ready;
  await sleep(200);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < frames.length; i += 200) {
    await log.append(frames.slice(i, i + 200).map((f) => ({ kind: 1, uid: 1, frame: f })));
  }
  const deadline = Date.now() + 120_000;
  while (consumers.min < expected && Date.now() < deadline) await sleep(2);
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const done = consumers.min >= expected;
  await consumers.exit();
  await Promise.all([firehose.close(), jetstream.close()]);
  server.close();
  await log.close();
  rmSync(dir, { recursive: true, force: true });
  return {
    variant,
    subscribers: n,
    eventsPerSec: Math.round(frames.length / wall),
    deliveriesPerSec: Math.round((expected * n) / wall),
    cpuUsPerEvent: Math.round((cpu.user + cpu.system) / frames.length),
    done,
  };
}

const frames = Array.from({ length: totalEvents }, (_, i) => commitFrame(i));
encodingCost(frames);
const rows: Row[] = [];
for (const n of subscriberCounts) {
  for (const v of variants) {
    // fewer events for many subscribers, so a run stays within a minute on a small machine
    const count = Math.max(1000, Math.floor(totalEvents / Math.max(1, n / 20)));
    const row = await runOne(v, n, frames.slice(0, Math.min(count, frames.length)));
    rows.push(row);
    console.log(
      `${row.variant.padEnd(16)} ${String(row.subscribers).padStart(5)} subscribers: ` +
        `${String(row.eventsPerSec).padStart(7)} events/s, ${String(row.deliveriesPerSec).padStart(9)} messages delivered/s, ` +
        `${String(row.cpuUsPerEvent).padStart(6)} µs server CPU/event${row.done ? '' : ' (INCOMPLETE: timed out)'}`,
    );
  }
}
