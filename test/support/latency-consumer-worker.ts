// Worker-thread side of the attack rig's latency consumer (attack-rig.ts):
// a plain subscribeRepos client on its own thread, so the time it stamps on
// each frame is when the frame reached this process, not when the test's
// main thread (which also runs the simulated hosts and the attackers) got
// around to it. Times are CLOCK_MONOTONIC milliseconds (process.hrtime), the
// same clock in every thread. Started through sim/worker-boot.mjs.
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { cidToString } from '../../src/protocol/cid.ts';
import { decodeFrame } from '../../src/protocol/frames.ts';

export interface ConsumerWorkerData {
  entry: string;
  url: string;
  /** accounts whose commits are reported */
  repos: string[];
}

/** Messages to the parent. */
export type ConsumerWorkerMessage =
  | { kind: 'open' }
  | { kind: 'commit'; repo: string; cid: string; at: number }
  | { kind: 'problem'; text: string }
  | { kind: 'seq'; seq: number }
  | { kind: 'close' };

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;
const data = workerData as ConsumerWorkerData;
const repos = new Set(data.repos);
const post = (m: ConsumerWorkerMessage): void => parentPort?.postMessage(m);
let lastSeq = 0;

const ws = new WebSocket(data.url, { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
ws.on('open', () => post({ kind: 'open' }));
ws.on('error', (err) => post({ kind: 'problem', text: `socket error: ${err.message}` }));
ws.on('close', () => {
  post({ kind: 'close' });
  parentPort?.close();
});
ws.on('message', (buf: Buffer) => {
  const at = nowMs();
  let f: ReturnType<typeof decodeFrame>;
  try {
    f = decodeFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.length));
  } catch (err) {
    post({ kind: 'problem', text: `undecodable frame: ${(err as Error).message}` });
    return;
  }
  if (f.header.op !== 1) {
    post({ kind: 'problem', text: `error frame ${JSON.stringify(f.body).slice(0, 200)}` });
    return;
  }
  const seq = f.body.seq as number;
  if (!(seq > lastSeq)) post({ kind: 'problem', text: `seq ${seq} after ${lastSeq}` });
  lastSeq = seq;
  if (f.header.t === '#commit' && repos.has(f.body.repo as string)) {
    post({ kind: 'commit', repo: f.body.repo as string, cid: cidToString(f.body.commit as never), at });
  }
});
parentPort?.on('message', (m: string) => {
  if (m === 'close') ws.terminate();
});
