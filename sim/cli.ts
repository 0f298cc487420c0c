// Command-line entry for the simulated network:
//   npm run sim -- --hosts 50 --accounts 1000 --rate 2000 [--duration 60] [--seed 1]
//     [--pregenerate 100000] [--history 5000] [--faults highS=0.001,wrongKey=0.001] [--json]
// Starts a PLC directory and the PDS hosts on loopback, prints their URLs
// (one JSON line with --json, for scripts), runs the generator until SIGINT
// or --duration seconds, printing stats every 5 s and at the end.
import { parseArgs } from 'node:util';
import { COMMIT_FAULTS, type FaultKind, TRANSPORT_FAULTS } from './faults.ts';
import { SimNetwork } from './network.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '3' },
    accounts: { type: 'string', default: '100' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string' },
    seed: { type: 'string', default: '1' },
    pregenerate: { type: 'string', default: '0' },
    history: { type: 'string', default: '5000' },
    faults: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(
    'usage: npm run sim -- [--hosts N] [--accounts N] [--rate events/s] [--duration s] [--seed S]\n' +
      '                      [--pregenerate N] [--history N] [--faults kind=p,...] [--json]\n' +
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

const started = performance.now();
const net = await SimNetwork.start({
  hosts,
  accounts,
  seed: values.seed,
  historySize: positiveInt('history', values.history, 1),
  faultRates: parseFaults(values.faults),
});
const setupSecs = (performance.now() - started) / 1000;

if (values.json) {
  console.log(
    JSON.stringify({
      plc: net.plc.url,
      hosts: net.hosts.map((h) => ({
        name: h.name,
        url: h.url,
        hostname: h.hostname,
        accounts: h.accounts.size,
      })),
    }),
  );
} else {
  console.log(`PLC directory  ${net.plc.url}`);
  for (const h of net.hosts) console.log(`${h.name.padEnd(14)} ${h.url}  (${h.accounts.size} accounts)`);
  console.log(
    `${net.accountCount} accounts on ${hosts} hosts ready in ${setupSecs.toFixed(1)} s; ${rate} events/s`,
  );
}

function stats(): Record<string, unknown> {
  const g = net.generatorStats();
  return {
    emitted: g.emitted,
    rate: Math.round(g.rate),
    queued: g.queued,
    starvedTicks: g.starvedTicks,
    byType: net.counts(),
    subscribers: net.hosts.reduce((n, h) => n + h.firehose.subscriberCount, 0),
    faults: net.hosts.reduce((n, h) => n + h.faultLog.length, 0),
  };
}

if (pregenerate) {
  const t = performance.now();
  await net.pregenerateAsync(pregenerate);
  const secs = (performance.now() - t) / 1000;
  console.log(
    JSON.stringify({
      pregenerated: pregenerate,
      seconds: +secs.toFixed(1),
      perSec: Math.round(pregenerate / secs),
    }),
  );
}
if (rate > 0) net.startGenerator(rate);
const ticker = setInterval(() => console.log(JSON.stringify({ stats: stats() })), 5000);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(ticker);
  net.stopGenerator();
  console.log(JSON.stringify({ final: stats() }));
  await net.stop();
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
if (duration) setTimeout(shutdown, duration * 1000);
