// Test-only worker entries for the repo digest pool (src/validate/repo-digest.ts), chosen by
// workerData (each serves jobs like repo-worker.ts, through repo-worker-jobs.ts,
// with a hook before a CAR is read):
// - mode 'hostile': answers like repo-worker.ts, except for the DIDs named in
//   `oom` (allocates until the heap cap ends the thread, as a CAR built to
//   exhaust memory would) and `hang` (never answers: the pool's deadline must
//   end it);
// - mode 'gate': answers like repo-worker.ts, but each job first counts itself
//   in gate[1] and waits until the test sets gate[0] to 1, so a test can hold
//   a repo read "in progress" in the worker for as long as it needs — without
//   blocking the main thread, which is what such a test checks.
import { parentPort, workerData } from 'node:worker_threads';
import { serveRepoJobs } from '../../src/validate/repo-worker-jobs.ts';

export type RepoWorkerFixtureData =
  | { mode: 'hostile'; oom?: string[]; hang?: string[] }
  | { mode: 'gate'; gate: SharedArrayBuffer };

export const REPO_WORKER_FIXTURE_URL = new URL('./repo-worker-fixture.ts', import.meta.url);

const port = parentPort;
if (port) {
  const data = workerData as RepoWorkerFixtureData;
  const kept: unknown[] = [];
  serveRepoJobs(port, {
    beforeDigest: (opts) => {
      if (data.mode === 'hostile') {
        if (data.oom?.includes(opts.did)) for (;;) kept.push(new Array(1e5).fill({ did: opts.did }));
        if (data.hang?.includes(opts.did)) return 'hold';
      } else {
        const g = new Int32Array(data.gate);
        Atomics.add(g, 1, 1);
        while (Atomics.load(g, 0) === 0) Atomics.wait(g, 0, 0, 1000);
      }
      return undefined;
    },
  });
}
