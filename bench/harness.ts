// A minimal micro-benchmark runner: warm up, then call fn in growing batches
// until the time budget is spent, and report ops/s. Batching keeps the
// process.hrtime overhead out of sub-microsecond cases; the sink defeats
// dead-code elimination of results.

export interface BenchResult {
  name: string;
  opsPerSec: number;
  nsPerOp: number;
  iterations: number;
}

export interface BenchOptions {
  /** Measured time budget per case (default 1 s); warm-up is a quarter of it. */
  seconds?: number;
}

let sink: unknown;

function runFor(fn: () => unknown, ns: bigint): { iterations: number; elapsed: bigint } {
  let iterations = 0;
  let batch = 1;
  const start = process.hrtime.bigint();
  let elapsed = 0n;
  while (elapsed < ns) {
    for (let i = 0; i < batch; i++) sink = fn();
    iterations += batch;
    elapsed = process.hrtime.bigint() - start;
    if (batch < 1 << 16) batch *= 2;
  }
  return { iterations, elapsed };
}

export function bench(name: string, fn: () => unknown, opts: BenchOptions = {}): BenchResult {
  const seconds = opts.seconds ?? 1;
  runFor(fn, BigInt(Math.round(seconds * 0.25e9)));
  const { iterations, elapsed } = runFor(fn, BigInt(Math.round(seconds * 1e9)));
  const nsPerOp = Number(elapsed) / iterations;
  return { name, opsPerSec: 1e9 / nsPerOp, nsPerOp, iterations };
}

export function printTable(results: BenchResult[]): void {
  const width = Math.max(4, ...results.map((r) => r.name.length));
  const line = (a: string, b: string, c: string) =>
    `${a.padEnd(width)}  ${b.padStart(12)}  ${c.padStart(10)}`;
  console.log(line('case', 'ops/s', 'µs/op'));
  console.log('-'.repeat(width + 26));
  for (const r of results) {
    console.log(line(r.name, Math.round(r.opsPerSec).toLocaleString('en-US'), (r.nsPerOp / 1000).toFixed(2)));
  }
  if (sink === Symbol.for('never')) console.log(sink);
}
