// The verify pool's thread crossing alone: what a task costs the main thread
// and the process when it goes to a worker and its result comes back, with
// the worker doing no verification (it answers at once, bench/pool-messages-
// worker.ts). Two formats: `objects` (a VerifyTask and a VerifyResult cloned
// as objects, as before wire.ts) and `arrays` (wire.ts, what the pool sends).
// Frames (3.4 KB, a commit's size) own their buffers and are moved there and
// back, as ingest's frames are; two workers; at most 64 tasks outstanding.
//
//   node --import tsx bench/pool-messages.bench.ts [--tasks 200000] [--batch 4,8,16] [--rounds 2]
//
// Reports main-thread CPU (/proc/self/task/<pid>/stat) and process CPU
// (/proc/self/stat) per task, and the wall time.
import { parseArgs } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../src/module-url.ts';
import type { VerifyResult, VerifyTask } from '../src/validate/verify-frame.ts';
import { type ResultWire, resultFromWire, taskToWire } from '../src/validate/wire.ts';
import { procCpuSeconds } from './harness.ts';

const { values } = parseArgs({
  options: {
    tasks: { type: 'string', default: '200000' },
    batch: { type: 'string', default: '4,8,16' },
    rounds: { type: 'string', default: '2' },
  },
});
const total = Number(values.tasks);
const FRAME_BYTES = 3400;
const source = Buffer.alloc(FRAME_BYTES, 7);
const key = { alg: 'k256' as const, bytes: new Uint8Array(33).fill(2) };

const mainCpu = (): number => procCpuSeconds(process.pid, process.pid);
const processCpu = (): number => procCpuSeconds(process.pid);

async function run(format: 'objects' | 'arrays', batch: number): Promise<string> {
  const workers: Array<{ w: Worker; out: number }> = [0, 1].map(() => ({
    w: startWorker(new URL('./pool-messages-worker.ts', import.meta.url), { workerData: { format } }),
    out: 0,
  }));
  const pending = new Map<number, number>();
  let nextBatch = 1;
  let sent = 0;
  let done = 0;
  let finish = () => {};
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const pump = () => {
    while (sent < total && workers[0].out + workers[1].out < 64) {
      const target = workers[0].out <= workers[1].out ? workers[0] : workers[1];
      const tasks: VerifyTask[] = [];
      const moved: ArrayBuffer[] = [];
      for (let i = 0; i < batch && sent < total; i++, sent++) {
        const frame = new Uint8Array(new ArrayBuffer(FRAME_BYTES + 8), 8, FRAME_BYTES);
        frame.set(source);
        tasks.push({
          type: '#commit',
          frame,
          key,
          nowMs: Date.now(),
          maxRevSkewMs: 300_000,
          returnFrame: true,
        });
        moved.push(frame.buffer as ArrayBuffer);
      }
      const id = nextBatch++;
      pending.set(id, tasks.length);
      target.out += tasks.length;
      target.w.postMessage({ batch: id, tasks: format === 'arrays' ? tasks.map(taskToWire) : tasks }, moved);
    }
  };
  for (const worker of workers) {
    worker.w.on('message', (res: { batch: number; results: VerifyResult[] | ResultWire[] }) => {
      const n = pending.get(res.batch) ?? 0;
      pending.delete(res.batch);
      for (let i = 0; i < n; i++) {
        const r =
          format === 'arrays'
            ? resultFromWire((res.results as ResultWire[])[i])
            : (res.results as VerifyResult[])[i];
        if (!r.ok || r.frame === undefined) throw new Error('unexpected result');
      }
      worker.out -= n;
      done += n;
      if (done >= total) finish();
      else pump();
    });
  }
  // the workers load tsx first: time from the first answer on
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const main0 = mainCpu();
  const proc0 = processCpu();
  const wall0 = performance.now();
  pump();
  await finished;
  const wall = performance.now() - wall0;
  const main = ((mainCpu() - main0) * 1e6) / total;
  const proc = ((processCpu() - proc0) * 1e6) / total;
  for (const worker of workers) await worker.w.terminate();
  return `${format.padEnd(7)} batch ${String(batch).padStart(2)}: main thread ${main.toFixed(2)} µs/task, process ${proc.toFixed(2)} µs/task, wall ${wall.toFixed(0)} ms`;
}

console.log(`${total} tasks of ${FRAME_BYTES}-byte frames, 2 workers, answered at once:`);
for (let round = 0; round < Number(values.rounds); round++) {
  for (const batch of values.batch.split(',').map(Number)) {
    for (const format of ['objects', 'arrays'] as const) console.log(`  ${await run(format, batch)}`);
  }
}
