// Worker-thread entry of the verify pool: receives batches of frames (with
// the signing key the main thread looked up) and answers each batch with the
// stateless verdicts of verify-frame.ts, in the same order. Batching keeps
// the per-message cost (a structured clone and an event-loop turn on each
// side) small next to the ~100 µs of hashing and signature work per commit.
// A frame whose buffer the pool moved here (transfer, not copy) is moved back
// with its result. Tasks and results cross as arrays of fields (wire.ts).
// When the pool hosts host sockets, the first message is a port for them: the
// worker then also reads those sockets (ingest/socket-thread.ts) and verifies
// the #commit/#sync it reads in place when it holds the key (in-place.ts).
import { parentPort } from 'node:worker_threads';
import { serveSockets } from '../ingest/socket-thread.ts';
import { isSocketPortMessage } from '../ingest/socket-wire.ts';
import { InPlaceVerifier } from './in-place.ts';
import type { WorkerMessage, WorkerResponse } from './pool.ts';
import { type VerifyResult, verifyFrame } from './verify-frame.ts';
import { type ResultWire, resultToWire, taskFromWire } from './wire.ts';

const port = parentPort;
if (!port) throw new Error('worker.ts must run in a worker thread');
/** The pool says this worker is far busier than the rest: pass read frames on unverified (in-place.ts). */
let shed = false;

port.on('message', (req: WorkerMessage) => {
  if ('shed' in req) {
    shed = req.shed;
    return;
  }
  if (isSocketPortMessage(req)) {
    // this worker also hosts host sockets (ingest/socket-threads.ts)
    serveSockets(req.socketPort, new InPlaceVerifier(req.maxRevSkewMs, { busy: () => shed }));
    return;
  }
  const results: ResultWire[] = new Array(req.tasks.length);
  // frames whose buffers were moved here go back the same way (no copy either way)
  const back: ArrayBuffer[] = [];
  for (let i = 0; i < req.tasks.length; i++) {
    const task = taskFromWire(req.tasks[i]);
    const r: VerifyResult = verifyFrame(task);
    if (task.returnFrame) {
      r.frame = task.frame;
      back.push(task.frame.buffer as ArrayBuffer);
    }
    results[i] = resultToWire(r);
  }
  const res: WorkerResponse = { batch: req.batch, results };
  port.postMessage(res, back);
});
