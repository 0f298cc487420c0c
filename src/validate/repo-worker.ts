// Worker-thread entry of the repo digest pool (repo-digest.ts): serves its
// jobs (repo-worker-jobs.ts) — a whole getRepo CAR in (its buffer
// transferred) or downloaded here, its digest out (rev, CIDs, commit block,
// collection names; protocol/repo-car.ts). Runs under a heap cap set by the
// pool, so a CAR that would exhaust memory ends this thread, never the relay.
import { parentPort } from 'node:worker_threads';
import { serveRepoJobs } from './repo-worker-jobs.ts';

if (!parentPort) throw new Error('repo-worker.ts must run in a worker thread');
serveRepoJobs(parentPort);
