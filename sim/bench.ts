// Throughput benchmark for the simulator: how many events per second one
// process can push to subscribers. It pre-generates signed commits (and says
// how fast that is), then runs the timed generator at the target rate while a
// separate process (count-frames.ts) counts the frames arriving from every
// host. Usage:
//   node --import tsx sim/bench.ts [--hosts 10] [--accounts 1000] [--rate 25000] [--duration 10] [--threads 1]
// With --threads N the hosts run in N worker threads (threaded.ts).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { SimNetwork } from './network.ts';
import { ThreadedSimNetwork } from './threaded.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '10' },
    accounts: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '25000' },
    duration: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    threads: { type: 'string', default: '1' },
  },
});
const hosts = Number(values.hosts);
const accounts = Number(values.accounts);
const rate = Number(values.rate);
const duration = Number(values.duration);

const threads = Number(values.threads);

interface BenchNet {
  wsUrls: string[];
  pregenerate(n: number): Promise<void>;
  startGenerator(rate: number): Promise<void>;
  stopGenerator(): Promise<void>;
  queued(): Promise<number>;
  emitted(): Promise<number>;
  stop(): Promise<void>;
}

const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0);

async function startNet(): Promise<BenchNet> {
  const opts = { hosts, accounts, seed: values.seed, historySize: 50_000 };
  if (threads > 1) {
    const n = await ThreadedSimNetwork.start({ ...opts, threads });
    return {
      wsUrls: n.hosts.map((h) => h.wsUrl),
      pregenerate: (k) => n.pregenerate(k),
      startGenerator: (r) => n.startGenerator(r, { aheadSeconds: 0 }),
      stopGenerator: () => n.stopGenerator(),
      queued: async () => (await n.stats()).queued,
      emitted: async () => sum((await n.stats()).byType),
      stop: () => n.stop(),
    };
  }
  const n = await SimNetwork.start(opts);
  return {
    wsUrls: n.hosts.map((h) => h.wsUrl),
    pregenerate: async (k) => n.pregenerate(k),
    startGenerator: async (r) => n.startGenerator(r, { aheadSeconds: 0 }),
    stopGenerator: async () => n.stopGenerator(),
    queued: async () => n.queued,
    emitted: async () => sum(n.counts()),
    stop: () => n.stop(),
  };
}

let t = performance.now();
const net = await startNet();
console.log(
  `started ${hosts} hosts, ${accounts} accounts in ${((performance.now() - t) / 1000).toFixed(1)} s`,
);

const target = Math.ceil(rate * duration);
t = performance.now();
await net.pregenerate(target);
const genSecs = (performance.now() - t) / 1000;
console.log(
  `pre-generated ${target} events in ${genSecs.toFixed(1)} s (${Math.round(target / genSecs)} commits/s)`,
);

const child = spawn(
  process.execPath,
  ['--import', 'tsx', new URL('./count-frames.ts', import.meta.url).pathname, ...net.wsUrls],
  {
    stdio: ['pipe', 'pipe', 'inherit'],
  },
);
const lines = createInterface({ input: child.stdout! });
let latest = { frames: 0, bytes: 0, elapsedMs: 0, activeMs: 0 };
let ready: () => void;
const readyP = new Promise<void>((r) => {
  ready = r;
});
let finalSeen: () => void;
const finalP = new Promise<void>((r) => {
  finalSeen = r;
});
lines.on('line', (line) => {
  const msg = JSON.parse(line);
  if (msg.ready) ready();
  else {
    latest = msg;
    if (msg.final) finalSeen();
  }
});
await readyP;

const base = await net.emitted();
const startFrames = latest.frames;
t = performance.now();
// send the pre-generated queue at the target rate; stop when it is empty
await net.startGenerator(rate);
while ((await net.queued()) > 0) await new Promise((r) => setTimeout(r, 20));
await net.stopGenerator();
const sendSecs = (performance.now() - t) / 1000;
const emitted = (await net.emitted()) - base;
// wait for the counter to see everything
while (latest.frames - startFrames < emitted && performance.now() - t < (sendSecs + 30) * 1000)
  await new Promise((r) => setTimeout(r, 50));
child.stdin!.end();
await finalP;
const received = latest.frames - startFrames;
console.log(
  JSON.stringify(
    {
      hosts,
      accounts,
      targetRate: rate,
      emitted,
      emittedPerSec: Math.round(emitted / sendSecs),
      received,
      receivedPerSec: Math.round(received / (latest.activeMs / 1000)),
      mbPerSec: +(latest.bytes / 1e6 / (latest.activeMs / 1000)).toFixed(1),
      pregenCommitsPerSec: Math.round(target / genSecs),
    },
    null,
    2,
  ),
);
await net.stop();
process.exit(0);
