// One observation on the hot path: prom-client's Histogram child (what the
// relay used) against TallyHistogram (tally-histogram.ts), with the buckets
// and values of relay_validation_latency_seconds. CPU time per observation,
// median of five interleaved runs.
//
//   node --import tsx src/tally-histogram.bench.ts
import { Histogram, Registry } from 'prom-client';
import { TallyHistogram } from './tally-histogram.ts';

const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const OPS = 1_000_000;
// latencies spread over the buckets, as the relay's are (a few ms to a few hundred)
const values = Array.from({ length: 1024 }, (_, i) => 0.001 * 1.008 ** i);

function cpuNs(fn: () => void): number {
  const t = process.cpuUsage();
  fn();
  const u = process.cpuUsage(t);
  return ((u.user + u.system) * 1000) / OPS;
}

const registry = new Registry();
const prom = new Histogram({ name: 'a', help: 'a', labelNames: ['type'], buckets, registers: [registry] });
const tally = new TallyHistogram({
  name: 'b',
  help: 'b',
  labelNames: ['type'],
  buckets,
  registers: [registry],
});
const promChild = prom.labels('#commit');
const tallyChild = tally.labels('#commit');

const cases: [string, () => void][] = [
  [
    'prom-client Histogram child observe',
    () => {
      for (let i = 0; i < OPS; i++) promChild.observe(values[i & 1023]);
    },
  ],
  [
    'TallyHistogram child observe',
    () => {
      for (let i = 0; i < OPS; i++) tallyChild.observe(values[i & 1023]);
    },
  ],
];
const samples = cases.map(() => [] as number[]);
for (let run = 0; run < 5; run++) {
  for (let i = 0; i < cases.length; i++) samples[i].push(cpuNs(cases[i][1]));
}
cases.forEach(([name], i) => {
  const s = samples[i].sort((a, b) => a - b);
  console.log(
    `${name.padEnd(40)} median ${s[2].toFixed(0)} ns (runs: ${s.map((v) => v.toFixed(0)).join(', ')})`,
  );
});
