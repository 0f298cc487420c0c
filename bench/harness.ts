// A minimal micro-benchmark runner: warm up, then call fn in growing batches
// until the time budget is spent, and report ops/s. Batching keeps timer
// overhead out of sub-microsecond cases; the sink defeats dead-code
// elimination of results. Cost is measured in this process's CPU time
// (process.cpuUsage), not wall time: the benchmark usually shares a small
// machine, and CPU time is far less disturbed by other processes. Also the
// one /proc reader of a process's or a thread's CPU time (procCpuSeconds)
// for the benches that report per-thread costs.

import { readFileSync } from 'node:fs';

/**
 * User+system CPU seconds of a process, or of one of its threads
 * (`/proc/<pid>/task/<tid>/stat`; the main thread's tid is the pid). Linux
 * only; the benches that report per-thread CPU use it.
 */
export function procCpuSeconds(pid: number, tid?: number): number {
  const stat = readFileSync(
    tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`,
    'utf8',
  );
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 (1-based) of the full line: 12 and 13 after the name
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface BenchResult {
  name: string;
  opsPerSec: number;
  nsPerOp: number;
  iterations: number;
}

export interface BenchOptions {
  /** Measured CPU-time budget per case (default 1 s); warm-up is a quarter of it. */
  seconds?: number;
}

let sink: unknown;

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function runFor(fn: () => unknown, budgetNs: number): { iterations: number; elapsedNs: number } {
  let iterations = 0;
  let batch = 1;
  const start = cpuNs();
  let elapsedNs = 0;
  while (elapsedNs < budgetNs) {
    for (let i = 0; i < batch; i++) sink = fn();
    iterations += batch;
    elapsedNs = cpuNs() - start;
    if (batch < 1 << 16 && elapsedNs < budgetNs / 8) batch *= 2;
  }
  return { iterations, elapsedNs };
}

export function bench(name: string, fn: () => unknown, opts: BenchOptions = {}): BenchResult {
  const seconds = opts.seconds ?? 1;
  runFor(fn, seconds * 0.25e9);
  const { iterations, elapsedNs } = runFor(fn, seconds * 1e9);
  const nsPerOp = elapsedNs / iterations;
  return { name, opsPerSec: 1e9 / nsPerOp, nsPerOp, iterations };
}

export function printTable(results: BenchResult[]): void {
  const width = Math.max(4, ...results.map((r) => r.name.length));
  const line = (a: string, b: string, c: string) =>
    `${a.padEnd(width)}  ${b.padStart(12)}  ${c.padStart(10)}`;
  console.log(line('case', 'ops/s (CPU)', 'µs/op'));
  console.log('-'.repeat(width + 26));
  for (const r of results) {
    console.log(line(r.name, Math.round(r.opsPerSec).toLocaleString('en-US'), (r.nsPerOp / 1000).toFixed(2)));
  }
  if (sink === Symbol.for('never')) console.log(sink);
}
