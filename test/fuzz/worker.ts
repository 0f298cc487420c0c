// A fuzz worker thread (started by scripts/fuzz.ts through
// sim/worker-boot.mjs): receives chunks of work `{target, start, count}`,
// runs them with the seed corpus the parent built (so every worker mutates
// the same seeds), and reports progress (the script's watchdog turns a
// worker that stops reporting into a hang failure) and each chunk's stats.
import { parentPort, workerData } from 'node:worker_threads';
import { runTarget } from './runner.ts';
import type { SeedCorpus } from './seeds.ts';
import { targetByName } from './targets.ts';

export interface FuzzChunk {
  target: string;
  start: number;
  count: number;
}

export interface FuzzWorkerData {
  entry: string;
  corpus: SeedCorpus;
  seed: string;
  ceilingMs: number;
}

export type FuzzWorkerMessage =
  | { kind: 'progress'; target: string; start: number; done: number }
  | { kind: 'done'; stats: ReturnType<typeof runTarget> };

const data = workerData as FuzzWorkerData;
const port = parentPort;
if (!port) throw new Error('fuzz worker needs a parent port');
port.on('message', (chunk: FuzzChunk) => {
  const target = targetByName(chunk.target);
  const stats = runTarget(target, data.corpus, {
    seed: data.seed,
    start: chunk.start,
    count: chunk.count,
    ceilingMs: data.ceilingMs,
    onProgress: (done) =>
      port.postMessage({ kind: 'progress', target: chunk.target, start: chunk.start, done }),
  });
  port.postMessage({ kind: 'done', stats } satisfies FuzzWorkerMessage);
});
