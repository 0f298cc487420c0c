// Command-line entry for the simulated network:
//   npm run sim -- --hosts 50 --accounts 1000 --rate 2000 [--duration 60] [--seed 1]
//     [--pregenerate 100000] [--history 5000] [--threads 4] [--faults highS=0.001,wrongKey=0.001] [--json]
// --threads N runs the hosts in N worker threads (threaded.ts) to use more cores.
// Starts a PLC directory and the PDS hosts on loopback, prints their URLs
// (one JSON line with --json, for scripts), runs the generator until SIGINT
// or --duration seconds, printing stats every 5 s and at the end.
import { parseArgs } from 'node:util';
import { COMMIT_FAULTS, type FaultKind, TRANSPORT_FAULTS } from './faults.ts';
import type { WorkerStats } from './host-worker.ts';
import { SimNetwork } from './network.ts';
import { ThreadedSimNetwork } from './threaded.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3' },
    accounts: { type: 'string', default: '100' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string' },
    seed: { type: 'string', default: '1' },
    pregenerate: { type: 'string', default: '0' },
    threads: { type: 'string', default: '1' },
    history: { type: 'string', default: '5000' },
    faults: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(
    'usage: npm run sim -- [--hosts N] [--accounts N] [--rate events/s] [--duration s] [--seed S]\n' +
      '                      [--pregenerate N] [--history N] [--threads N] [--faults kind=p,...] [--json]\n' +
      `fault kinds: ${[...COMMIT_FAULTS, ...TRANSPORT_FAULTS].join(', ')}`,
  );
  process.exit(0);
}

function positiveInt(name: string, v: string | undefined, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}`);
    process.exit(2);
  }
  return n;
}

function parseFaults(spec: string | undefined): Partial<Record<FaultKind, number>> | undefined {
  if (!spec) return undefined;
  const known = new Set<string>([...COMMIT_FAULTS, ...TRANSPORT_FAULTS]);
  const out: Partial<Record<FaultKind, number>> = {};
  for (const part of spec.split(',')) {
    const [k, p] = part.split('=');
    const prob = Number(p);
    if (!known.has(k) || !(prob >= 0 && prob <= 1)) {
      console.error(`bad --faults entry ${part} (kinds: ${[...known].join(', ')})`);
      process.exit(2);
    }
    out[k as FaultKind] = prob;
  }
  return out;
}

const hosts = positiveInt('hosts', values.hosts, 1);
const accounts = positiveInt('accounts', values.accounts, 1);
const rate = positiveInt('rate', values.rate);
const duration = values.duration === undefined ? undefined : positiveInt('duration', values.duration, 1);
const pregenerate = positiveInt('pregenerate', values.pregenerate);
const threads = positiveInt('threads', values.threads, 1);

interface Runner {
  plcUrl: string;
  hosts: { name: string; url: string; hostname: string; accounts: number }[];
  pregenerate(n: number): Promise<void>;
  startGenerator(rate: number): Promise<void>;
  stopGenerator(): Promise<void>;
  stats(): Promise<WorkerStats>;
  stop(): Promise<void>;
}

async function startRunner(): Promise<Runner> {
  const common = {
    hosts,
    accounts,
    seed: values.seed,
    historySize: positiveInt('history', values.history, 1),
    faultRates: parseFaults(values.faults),
  };
  if (threads > 1) {
    const net = await ThreadedSimNetwork.start({ ...common, threads });
    return {
      plcUrl: net.plc.url,
      hosts: net.hosts,
      pregenerate: (n) => net.pregenerate(n),
      startGenerator: (r) => net.startGenerator(r),
      stopGenerator: () => net.stopGenerator(),
      stats: () => net.stats(),
      stop: () => net.stop(),
    };
  }
  const net = await SimNetwork.start(common);
  return {
    plcUrl: net.plc.url,
    hosts: net.hosts.map((h) => ({
      name: h.name,
      url: h.url,
      hostname: h.hostname,
      accounts: h.accounts.size,
    })),
    pregenerate: (n) => net.pregenerateAsync(n),
    startGenerator: async (r) => net.startGenerator(r),
    stopGenerator: async () => net.stopGenerator(),
    stats: async () => {
      const g = net.generatorStats();
      return {
        emitted: g.emitted,
        queued: g.queued,
        starvedTicks: g.starvedTicks,
        byType: net.counts(),
        subscribers: net.hosts.reduce((n, h) => n + h.firehose.subscriberCount, 0),
        faults: net.hosts.reduce((n, h) => n + h.faultLog.length, 0),
      };
    },
    stop: () => net.stop(),
  };
}

const started = performance.now();
const net = await startRunner();
const setupSecs = (performance.now() - started) / 1000;
const totalAccounts = net.hosts.reduce((n, h) => n + h.accounts, 0);

if (values.json) {
  console.log(JSON.stringify({ plc: net.plcUrl, hosts: net.hosts }));
} else {
  console.log(`PLC directory  ${net.plcUrl}`);
  for (const h of net.hosts) console.log(`${h.name.padEnd(14)} ${h.url}  (${h.accounts} accounts)`);
  console.log(
    `${totalAccounts} accounts on ${hosts} hosts ready in ${setupSecs.toFixed(1)} s` +
      `${threads > 1 ? ` (${threads} threads)` : ''}; ${rate} events/s`,
  );
}

let genStart = performance.now();
async function stats(): Promise<Record<string, unknown>> {
  const s = await net.stats();
  const secs = (performance.now() - genStart) / 1000;
  return { ...s, rate: Math.round(s.emitted / secs) };
}

if (pregenerate) {
  const t = performance.now();
  await net.pregenerate(pregenerate);
  const secs = (performance.now() - t) / 1000;
  console.log(
    JSON.stringify({
      pregenerated: pregenerate,
      seconds: +secs.toFixed(1),
      perSec: Math.round(pregenerate / secs),
    }),
  );
}
genStart = performance.now();
if (rate > 0) await net.startGenerator(rate);
const ticker = setInterval(async () => console.log(JSON.stringify({ stats: await stats() })), 5000);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  await net.stopGenerator();
  console.log(JSON.stringify({ final: await stats() }));
  await net.stop();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
if (duration) setTimeout(shutdown, duration * 1000);
