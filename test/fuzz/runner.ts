// Runs one fuzz target over a range of input indexes. Input `i` of target `t`
// under seed `s` is a pure function of (s, t, i): its PRNG is seeded with
// that triple, picks a seed input and mutates it (mutate.ts), so any failure
// reproduces with `npm run fuzz -- --target t --seed s --index i` whatever
// ran before it. Per input the runner checks the target's contract
// (targets.ts) and a time ceiling: an input fails when both its CPU time and
// its wall time pass the ceiling (CPU alone would blame a busy neighbour
// thread, wall alone a busy machine). A true infinite loop never returns
// here at all; the script's watchdog (scripts/fuzz.ts) catches those, and in
// `npm test` the test's own timeout does. Memory: the heap is measured after
// a forced GC before and after the run and every `heapCheckEvery` inputs; a
// run whose live heap grows past `maxHeapGrowthBytes` fails.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Prng } from '../../sim/prng.ts';
import { mutate } from './mutate.ts';
import type { SeedCorpus } from './seeds.ts';
import type { FuzzTarget } from './targets.ts';

export interface FuzzOptions {
  seed: string;
  /** First input index (inclusive). */
  start: number;
  /** Inputs to try. */
  count: number;
  /** An input slower than this in both CPU and wall time fails (default 2,000 ms). */
  ceilingMs?: number;
  /** Live-heap growth allowed over the run (default 64 MiB). */
  maxHeapGrowthBytes?: number;
  /** Inputs between heap checks (default 20,000). */
  heapCheckEvery?: number;
  /** Stop after this many failures (default 5). */
  maxFailures?: number;
  /** Called every `progressEvery` inputs with the inputs done so far (for the script's watchdog). */
  onProgress?: (done: number) => void;
  progressEvery?: number;
}

export interface FuzzFailure {
  target: string;
  seed: string;
  index: number;
  kind: 'unexpected-error' | 'too-slow' | 'heap-growth';
  detail: string;
  /** The input, hex, at most the first 16 KiB. */
  inputHex: string;
  inputLength: number;
}

export interface FuzzStats {
  target: string;
  inputs: number;
  /** Inputs the code under test accepted (returned normally). */
  accepted: number;
  /** Inputs refused with a documented error. */
  refused: number;
  slowestMs: number;
  heapGrowthBytes: number;
  failures: FuzzFailure[];
}

let gcFunction: (() => void) | undefined;

/** A forced major GC (V8's `gc`, enabled at run time). */
export function forceGc(): void {
  if (!gcFunction) {
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
  }
  gcFunction();
}

function liveHeap(): number {
  forceGc();
  return process.memoryUsage().heapUsed;
}

/** The input a (seed, target, index) triple stands for. */
export function fuzzInput(target: FuzzTarget, corpus: SeedCorpus, seed: string, index: number): Uint8Array {
  const prng = new Prng(`${seed}:${target.name}:${index}`);
  const seeds = target.seeds(corpus);
  return mutate(prng.pick(seeds), prng, seeds);
}

function describeError(err: unknown): string {
  if (err instanceof Error)
    return (err.stack ?? `${err.name}: ${err.message}`).split('\n').slice(0, 8).join('\n');
  return String(err);
}

function hex(input: Uint8Array): string {
  return Buffer.from(input.subarray(0, 16_384)).toString('hex');
}

export function runTarget(target: FuzzTarget, corpus: SeedCorpus, opts: FuzzOptions): FuzzStats {
  const ceilingMs = opts.ceilingMs ?? 2_000;
  const maxGrowth = opts.maxHeapGrowthBytes ?? 64 * 1024 * 1024;
  const heapEvery = opts.heapCheckEvery ?? 20_000;
  const maxFailures = opts.maxFailures ?? 5;
  const progressEvery = opts.progressEvery ?? 1_000;
  const seeds = target.seeds(corpus);
  const stats: FuzzStats = {
    target: target.name,
    inputs: 0,
    accepted: 0,
    refused: 0,
    slowestMs: 0,
    heapGrowthBytes: 0,
    failures: [],
  };
  const fail = (index: number, kind: FuzzFailure['kind'], detail: string, input: Uint8Array) => {
    stats.failures.push({
      target: target.name,
      seed: opts.seed,
      index,
      kind,
      detail,
      inputHex: hex(input),
      inputLength: input.length,
    });
  };
  const baseline = liveHeap();
  for (let i = opts.start; i < opts.start + opts.count; i++) {
    const prng = new Prng(`${opts.seed}:${target.name}:${i}`);
    const input = mutate(prng.pick(seeds), prng, seeds);
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    try {
      target.run(input, corpus);
      stats.accepted++;
    } catch (err) {
      if (target.expected.some((cls) => err instanceof cls)) stats.refused++;
      else fail(i, 'unexpected-error', describeError(err), input);
    }
    const wallMs = performance.now() - wall0;
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const ms = Math.min(wallMs, cpuMs);
    if (ms > stats.slowestMs) stats.slowestMs = ms;
    if (ms > ceilingMs)
      fail(i, 'too-slow', `${ms.toFixed(0)} ms (CPU and wall) over the ${ceilingMs} ms ceiling`, input);
    stats.inputs++;
    if (stats.inputs % progressEvery === 0) opts.onProgress?.(stats.inputs);
    if (stats.inputs % heapEvery === 0) {
      const growth = liveHeap() - baseline;
      stats.heapGrowthBytes = Math.max(stats.heapGrowthBytes, growth);
      if (growth > maxGrowth) {
        fail(i, 'heap-growth', `live heap grew ${(growth / 2 ** 20).toFixed(1)} MiB`, input);
        break;
      }
    }
    if (stats.failures.length >= maxFailures) break;
  }
  const growth = liveHeap() - baseline;
  stats.heapGrowthBytes = Math.max(stats.heapGrowthBytes, growth);
  if (growth > maxGrowth)
    fail(
      opts.start + stats.inputs - 1,
      'heap-growth',
      `live heap grew ${(growth / 2 ** 20).toFixed(1)} MiB`,
      new Uint8Array(0),
    );
  return stats;
}

/** A failure as a paragraph a developer can act on (how to reproduce first). */
export function formatFailure(f: FuzzFailure): string {
  return [
    `fuzz ${f.kind} in ${f.target} (seed ${f.seed}, input ${f.index}, ${f.inputLength} bytes)`,
    `  reproduce: npm run fuzz -- --target ${f.target} --seed ${f.seed} --index ${f.index}`,
    `  ${f.detail.split('\n').join('\n  ')}`,
    `  input (hex, first 16 KiB): ${f.inputHex}`,
  ].join('\n');
}
