// Instructions per verifyFrame (the verify workers' whole job on one #commit),
// counted with valgrind's callgrind: deterministic to well under 1 %, where
// timing the same code on these shared 2-core machines swings by ±20 % from
// run to run (docs/benchmarks.md). Use it to judge a change to the worker's
// path (CBOR, CAR, commit, signature, MST proof) that timings cannot resolve.
//
//   node --import tsx bench/verify-instructions.ts [--calls 512]
//
// The frames are real #commit events of a 10,000-record k256 repo (the
// protocol bench's realCommits), written to a temp file first. Then the
// compiled build in dist/ (brought up to date first) runs verifyFrame over
// them under callgrind twice, with 0 calls and with --calls calls, and the
// difference over the calls is the count per frame, so node's start-up and
// the module loading cancel out. V8 runs single-threaded and predictable
// (--single-threaded --predictable): callgrind counts every thread, and
// background compilation and GC made the counts wander by half. It also
// prints the CPU time per call of the compiled build (outside valgrind),
// for scale: the protocol bench runs the sources under tsx, where the same
// verifyFrame took 1.1-1.4x the compiled build's time (what `npm start`
// runs; five back-to-back pairs, docs/benchmarks.md).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { commitFrame, realCommits } from './protocol.bench.ts';

const { values } = parseArgs({ options: { calls: { type: 'string', default: '512' } } });
const calls = Number(values.calls);
const root = new URL('..', import.meta.url).pathname;

const built = spawnSync(process.execPath, [join(root, 'scripts/build.mjs'), '--quiet'], { stdio: 'inherit' });
if (built.status !== 0) throw new Error('build failed');
const dir = mkdtempSync(join(tmpdir(), 'atrelay-vi-'));
try {
  const { key, commits } = realCommits('k256', 10_000, 256);
  const framesFile = join(dir, 'frames.json');
  writeFileSync(
    framesFile,
    JSON.stringify({
      key: Buffer.from(key.publicKey.bytes).toString('base64'),
      frames: commits.map((c, i) => Buffer.from(commitFrame(c, i + 1)).toString('base64')),
    }),
  );
  const count = (n: number): number => {
    const r = spawnSync(
      'valgrind',
      [
        '--tool=callgrind',
        '--smc-check=all-non-file',
        `--callgrind-out-file=${join(dir, `cg.${n}.out`)}`,
        process.execPath,
        '--single-threaded',
        '--predictable',
        join(root, 'bench/verify-instructions-run.mjs'),
        framesFile,
        String(n),
      ],
      { encoding: 'utf8' },
    );
    if (r.error) throw new Error(`valgrind: ${r.error.message} (is valgrind installed?)`);
    const m = /Collected : (\d+)/.exec(r.stderr);
    if (r.status !== 0 || !m) throw new Error(`callgrind run failed:\n${r.stderr.slice(-2000)}`);
    return Number(m[1]);
  };
  const base = count(0);
  const total = count(calls);
  const per = Math.round((total - base) / calls);
  console.log(
    `verifyFrame: ${per.toLocaleString('en')} instructions per #commit (${calls} calls; callgrind)`,
  );
  // and the time, for scale: CPU per call of the compiled build, outside valgrind
  const timed = spawnSync(
    process.execPath,
    [join(root, 'bench/verify-instructions-run.mjs'), framesFile, 'time', '4'],
    { encoding: 'utf8' },
  );
  if (timed.status !== 0) throw new Error(`timing run failed:\n${timed.stderr.slice(-2000)}`);
  const us = Number(timed.stdout.trim());
  console.log(`verifyFrame: ${us} µs of CPU per #commit (compiled build, 4 s; varies with the machine)`);
  console.log(
    JSON.stringify({ bench: 'verify-instructions', calls, instructionsPerFrame: per, cpuUsPerFrame: us }),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
