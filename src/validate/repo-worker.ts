// Worker-thread entry of the repo digest pool (repo-digest.ts): one job at a
// time, a whole getRepo CAR in (its buffer transferred), its digest out (rev,
// CIDs, commit block, collection names; protocol/repo-car.ts). Runs under a
// heap cap set by the pool, so a CAR that would exhaust memory ends this
// thread, never the relay.
import { parentPort } from 'node:worker_threads';
import { answerRepoDigest, REPO_WORKER_READY, type RepoDigestRequest } from './repo-digest.ts';

const port = parentPort;
if (!port) throw new Error('repo-worker.ts must run in a worker thread');
port.on('message', (req: RepoDigestRequest) => port.postMessage(answerRepoDigest(req)));
port.postMessage(REPO_WORKER_READY);
