// The long fuzz run (issue 12): `npm run fuzz -- --inputs N [--target name]
// [--seed S] [--workers W] [--ceiling-ms MS]` spreads N inputs evenly over
// the targets (test/fuzz/targets.ts; all of them unless --target names some,
// comma-separated) and runs them in worker threads, chunk by chunk. Each
// input is a pure function of (seed, target, index), so a failure prints the
// command that reproduces it alone: `--target t --seed s --index i` runs that
// one input in this thread and shows what the code under test did. A worker
// that reports no progress for --stall-s seconds (default 120) is stopped
// and its chunk reported as a hang. --max-s S stops handing out chunks after
// S seconds (and SIGINT/SIGTERM stop at once); either way the summary counts
// the inputs really tried. --validator N also submits N mutated frames to a
// real Validator (test/fuzz/validator-fuzz.ts) on this thread, in runs of
// 1,000 (each run a fresh validator, seeded `<seed>-<run>`); `--inputs 0
// --validator N` runs only that. Exit status 1 when anything failed.
// `npm test` runs a bounded slice of the same targets (test/fuzz/fuzz.test.ts).
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { type FuzzFailure, type FuzzStats, formatFailure, fuzzInput } from '../test/fuzz/runner.ts';
import { buildSeedCorpus } from '../test/fuzz/seeds.ts';
import { TARGETS, targetByName } from '../test/fuzz/targets.ts';
import { fuzzValidator } from '../test/fuzz/validator-fuzz.ts';
import type { FuzzChunk, FuzzWorkerData, FuzzWorkerMessage } from '../test/fuzz/worker.ts';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '100000' },
    target: { type: 'string' },
    seed: { type: 'string' },
    index: { type: 'string' },
    workers: { type: 'string' },
    'ceiling-ms': { type: 'string', default: '2000' },
    'stall-s': { type: 'string', default: '120' },
    chunk: { type: 'string', default: '20000' },
    'max-s': { type: 'string' },
    validator: { type: 'string', default: '0' },
    help: { type: 'boolean', default: false },
  },
});

if (values.help) {
  console.log(
    'npm run fuzz -- --inputs N [--target a,b] [--seed S] [--workers W] [--ceiling-ms MS] [--index I]',
  );
  for (const t of TARGETS) console.log(`  ${t.name.padEnd(14)} ${t.what}`);
  process.exit(0);
}

const seed = values.seed ?? String(Date.now() % 1_000_000);
const targets = values.target ? values.target.split(',').map(targetByName) : [...TARGETS];
const corpus = buildSeedCorpus(1);

if (values.index !== undefined) {
  // reproduce one input in this thread
  const target = targets[0];
  const index = Number(values.index);
  const input = fuzzInput(target, corpus, seed, index);
  console.log(`${target.name} seed ${seed} input ${index}: ${input.length} bytes`);
  console.log(Buffer.from(input).toString('hex'));
  const t0 = performance.now();
  try {
    target.run(input, corpus);
    console.log(`accepted in ${(performance.now() - t0).toFixed(1)} ms`);
  } catch (err) {
    const expected = target.expected.some((cls) => err instanceof cls);
    console.log(
      `${expected ? 'refused (expected)' : 'FAILED'} in ${(performance.now() - t0).toFixed(1)} ms:`,
    );
    console.log(err);
    process.exitCode = expected ? 0 : 1;
  }
  process.exit();
}

const total = Number(values.inputs);
const perTarget = Math.ceil(total / targets.length);
const chunkSize = Number(values.chunk);
const workerCount = Number(values.workers ?? Math.max(1, availableParallelism()));
const stallMs = Number(values['stall-s']) * 1000;
const queue: FuzzChunk[] = [];
for (let start = 0; start < perTarget; start += chunkSize)
  for (const t of targets)
    queue.push({ target: t.name, start, count: Math.min(chunkSize, perTarget - start) });

console.log(
  `fuzz: seed ${seed}, ${perTarget * targets.length} inputs (${perTarget} per target: ${targets.map((t) => t.name).join(', ')}), ${workerCount} workers`,
);

const started = Date.now();
const maxMs = values['max-s'] === undefined ? Number.POSITIVE_INFINITY : Number(values['max-s']) * 1000;
const totals = new Map<string, FuzzStats>();
const failures: FuzzFailure[] = [];
let inputsDone = 0;
let lastReport = Date.now();

function record(stats: FuzzStats): void {
  const t = totals.get(stats.target);
  if (!t) totals.set(stats.target, { ...stats, failures: [] });
  else {
    t.inputs += stats.inputs;
    t.accepted += stats.accepted;
    t.refused += stats.refused;
    t.slowestMs = Math.max(t.slowestMs, stats.slowestMs);
    t.heapGrowthBytes = Math.max(t.heapGrowthBytes, stats.heapGrowthBytes);
  }
  inputsDone += stats.inputs;
  for (const f of stats.failures) {
    failures.push(f);
    console.log(formatFailure(f));
  }
  if (Date.now() - lastReport > 60_000) {
    lastReport = Date.now();
    const s = (Date.now() - started) / 1000;
    console.log(
      `fuzz: ${inputsDone} inputs in ${s.toFixed(0)} s (${(inputsDone / s).toFixed(0)}/s), ${failures.length} failures`,
    );
  }
}

function runWorker(): Promise<void> {
  return new Promise((resolve) => {
    const data: FuzzWorkerData = {
      entry: new URL('../test/fuzz/worker.ts', import.meta.url).href,
      corpus,
      seed,
      ceilingMs: Number(values['ceiling-ms']),
    };
    const worker = new Worker(new URL('../sim/worker-boot.mjs', import.meta.url), { workerData: data });
    let current: FuzzChunk | undefined;
    let lastProgress = Date.now();
    let progressDone = 0;
    const next = () => {
      current = Date.now() - started < maxMs ? queue.shift() : undefined;
      lastProgress = Date.now();
      progressDone = 0;
      if (current) worker.postMessage(current);
      else {
        clearInterval(watchdog);
        void worker.terminate().then(() => resolve());
      }
    };
    const watchdog = setInterval(() => {
      if (!current || Date.now() - lastProgress < stallMs) return;
      const c = current;
      failures.push({
        target: c.target,
        seed,
        index: c.start + progressDone,
        kind: 'too-slow',
        detail: `worker made no progress for ${stallMs / 1000} s within inputs ${c.start + progressDone}..${c.start + Math.min(c.count, progressDone + 1000) - 1} (a hang)`,
        inputHex: '',
        inputLength: 0,
      });
      console.log(formatFailure(failures[failures.length - 1]));
      clearInterval(watchdog);
      void worker.terminate().then(() => runWorker().then(resolve));
    }, 1000);
    worker.on('message', (m: FuzzWorkerMessage) => {
      if (m.kind === 'progress') {
        lastProgress = Date.now();
        progressDone = m.done;
      } else {
        record(m.stats);
        next();
      }
    });
    worker.on('error', (err) => {
      console.log(`fuzz worker died on ${current?.target} ${current?.start}: ${err.stack ?? err}`);
      failures.push({
        target: current?.target ?? '?',
        seed,
        index: (current?.start ?? 0) + progressDone,
        kind: 'unexpected-error',
        detail: `worker died: ${err.message}`,
        inputHex: '',
        inputLength: 0,
      });
      clearInterval(watchdog);
      void runWorker().then(resolve);
    });
    worker.once('online', next);
  });
}

function summary(): void {
  const seconds = (Date.now() - started) / 1000;
  console.log(
    `\nfuzz: seed ${seed}: ${inputsDone} inputs in ${seconds.toFixed(0)} s (${(inputsDone / seconds).toFixed(0)}/s)`,
  );
  for (const t of totals.values()) {
    console.log(
      `  ${t.target.padEnd(14)} ${String(t.inputs).padStart(10)} inputs, ${t.accepted} accepted, ${t.refused} refused, slowest ${t.slowestMs.toFixed(1)} ms, heap growth ${(t.heapGrowthBytes / 2 ** 20).toFixed(1)} MiB`,
    );
  }
  if (validatorInputs > 0)
    console.log(`  ${'validator'.padEnd(14)} ${String(validatorInputs).padStart(10)} mutated frames`);
  console.log(failures.length === 0 ? 'fuzz: no failures' : `fuzz: ${failures.length} FAILURES`);
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`fuzz: ${signal}, stopping (chunks in flight are not counted)`);
    summary();
    process.exit(failures.length === 0 ? 0 : 1);
  });
}

let validatorInputs = 0;
async function runValidator(total: number): Promise<void> {
  for (let run = 0; validatorInputs < total && Date.now() - started < maxMs; run++) {
    const count = Math.min(1_000, total - validatorInputs);
    let found: string[];
    try {
      const stats = await fuzzValidator({ seed: `${seed}-${run}`, count });
      validatorInputs += stats.mutated;
      found = stats.failures;
    } catch (err) {
      validatorInputs += count;
      found = [`run ${run} ended with ${err instanceof Error ? err.stack : String(err)}`];
    }
    for (const f of found) {
      console.log(`fuzz validator failure: ${f}`);
      failures.push({
        target: 'validator',
        seed: `${seed}-${run}`,
        index: -1,
        kind: 'unexpected-error',
        detail: f,
        inputHex: '',
        inputLength: 0,
      });
    }
    if (run % 10 === 9)
      console.log(`fuzz: validator ${validatorInputs} mutated frames, ${failures.length} failures`);
  }
}

await Promise.all([
  ...Array.from({ length: total > 0 ? workerCount : 0 }, () => runWorker()),
  runValidator(Number(values.validator)),
]);
summary();
process.exit(failures.length === 0 ? 0 : 1);
