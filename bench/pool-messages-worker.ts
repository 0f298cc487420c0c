// Worker side of bench/pool-messages.bench.ts: answers each batch at once with
// a result of the real shape (a passing #commit with its collections), in the
// format the bench runs (workerData.format), moving the frames back; it reads
// one byte per cache line of each frame so the frame is really touched.
import { parentPort, workerData } from 'node:worker_threads';
import type { VerifyResult, VerifyTask } from '../src/validate/verify-frame.ts';
import { type ResultWire, resultToWire, type TaskWire, taskFromWire } from '../src/validate/wire.ts';

const format = (workerData as { format: 'objects' | 'arrays' }).format;
const port = parentPort;
if (!port) throw new Error('a worker thread entry');

function answer(task: VerifyTask, i: number): VerifyResult {
  let sum = 0;
  for (let j = 0; j < task.frame.length; j += 64) sum += task.frame[j];
  return {
    ok: true,
    kind: 'commit',
    did: 'did:plc:abcdefghijklmnopqrstuvwx',
    rev: `3l${(1000 + i + sum).toString(36)}abcdefghi`,
    since: '3labcdefghijk',
    commitCid: `bafyreib${'a'.repeat(51)}`,
    dataCid: `bafyreic${'a'.repeat(51)}`,
    prevData: `bafyreid${'a'.repeat(51)}`,
    sig: 'ok',
    proof: 'ok',
    upstreamSeq: 12345 + i,
    collections: { created: ['app.bsky.feed.like'], gone: [], unknown: [], decided: 0 },
    frame: task.frame,
  };
}

port.on('message', (req: { batch: number; tasks: VerifyTask[] | TaskWire[] }) => {
  const back: ArrayBuffer[] = [];
  if (format === 'arrays') {
    const results: ResultWire[] = (req.tasks as TaskWire[]).map((w, i) => {
      const r = answer(taskFromWire(w), i);
      back.push(w[1].buffer as ArrayBuffer);
      return resultToWire(r);
    });
    port.postMessage({ batch: req.batch, results }, back);
  } else {
    const results = (req.tasks as VerifyTask[]).map((t, i) => {
      back.push(t.frame.buffer as ArrayBuffer);
      return answer(t, i);
    });
    port.postMessage({ batch: req.batch, results }, back);
  }
});
