#!/usr/bin/env node
// Runs the test suite (or a path prefix of it) N times while busy loops keep
// every core occupied, and prints how often each test failed. A test that
// relies on timing rather than on a condition shows up here long before it
// blocks a landing on a busy CI machine. Not part of `npm test`.
//
//   npm run test:stress -- --runs 20 src/validate src/firehose
//   npm run test:stress -- --runs 5 --busy 4 --test-name-pattern="resync"
//
// --runs N       how many times to run the selection (default 10)
// --busy K       busy-loop processes beside the tests (default: one per core)
// --keep-going   do not stop early (default; --stop-on-fail stops at the first failing run)
// Other arguments are passed to scripts/run-tests.mjs: path prefixes select
// files, `--…` flags go to node --test. Each run's full TAP output is kept
// under $TMPDIR/atrelay-stress-<pid>/ for the failures' details.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
let runs = 10;
let busy = availableParallelism();
let stopOnFail = false;
const passThrough = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--runs') runs = Number(args[++i]);
  else if (a.startsWith('--runs=')) runs = Number(a.slice(7));
  else if (a === '--busy') busy = Number(args[++i]);
  else if (a.startsWith('--busy=')) busy = Number(a.slice(7));
  else if (a === '--stop-on-fail') stopOnFail = true;
  else if (a === '--keep-going') stopOnFail = false;
  else passThrough.push(a);
}
if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
if (!Number.isInteger(busy) || busy < 0) throw new Error('--busy must be a non-negative integer');

const outDir = join(tmpdir(), `atrelay-stress-${process.pid}`);
mkdirSync(outDir, { recursive: true });

const loops = [];
for (let i = 0; i < busy; i++) {
  loops.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
}
const stopLoops = () => {
  for (const p of loops) p.kill('SIGKILL');
};
process.on('exit', stopLoops);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    stopLoops();
    process.exit(130);
  });
}

/** per test: { file, runs, failures, errors: Map<message, count> } */
const tests = new Map();
const runResults = [];
const started = Date.now();
for (let run = 1; run <= runs; run++) {
  const jsonFile = join(outDir, `run-${run}.jsonl`);
  const tapFile = join(outDir, `run-${run}.tap`);
  const t0 = Date.now();
  const code = await new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [
        join(root, 'scripts', 'run-tests.mjs'),
        `--test-reporter=${join(root, 'scripts', 'failure-reporter.mjs')}`,
        `--test-reporter-destination=${jsonFile}`,
        '--test-reporter=tap',
        `--test-reporter-destination=${tapFile}`,
        ...passThrough,
      ],
      { cwd: root, stdio: 'inherit' },
    );
    child.on('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
  });
  let failed = 0;
  let passed = 0;
  let lines = [];
  try {
    lines = readFileSync(jsonFile, 'utf8').split('\n').filter(Boolean);
  } catch {}
  for (const line of lines) {
    const r = JSON.parse(line);
    const key = `${r.file ? r.file.replace(root, '') : '?'} :: ${r.path}`;
    let t = tests.get(key);
    if (!t) {
      t = { runs: 0, failures: 0, errors: new Map() };
      tests.set(key, t);
    }
    t.runs++;
    if (r.ok) passed++;
    else {
      failed++;
      t.failures++;
      t.errors.set(r.error, (t.errors.get(r.error) ?? 0) + 1);
    }
  }
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  const load = loadavg()[0].toFixed(1);
  runResults.push({ run, code, passed, failed, secs, load });
  console.log(
    `[stress] run ${run}/${runs}: ${passed} passed, ${failed} failed, exit ${code}, ${secs} s, load ${load}`,
  );
  if (stopOnFail && (failed > 0 || code !== 0)) break;
}
stopLoops();

const failing = [...tests].filter(([, t]) => t.failures > 0).sort((a, b) => b[1].failures - a[1].failures);
const badRuns = runResults.filter((r) => r.code !== 0 || r.failed > 0).length;
console.log('');
console.log(
  `[stress] ${runResults.length} runs with ${busy} busy loop(s) on ${availableParallelism()} core(s), ` +
    `${((Date.now() - started) / 60000).toFixed(1)} min; ${tests.size} tests; ` +
    `${failing.length} test(s) failed at least once; ${badRuns} run(s) not green`,
);
for (const [key, t] of failing) {
  console.log(`  ${t.failures}/${t.runs}  ${key}`);
  for (const [msg, n] of t.errors) console.log(`      ${n}× ${msg}`);
}
if (failing.length === 0 && badRuns === 0) rmSync(outDir, { recursive: true, force: true });
else console.log(`[stress] TAP output of each run: ${outDir}`);
process.exit(failing.length === 0 && badRuns === 0 ? 0 : 1);
