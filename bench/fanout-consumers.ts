// Consumer process for the firehose benchmarks: opens N WebSocket consumers
// on raw TCP sockets (raw-ws-clients.ts: frame headers only, no per-message
// allocation), so that on a small machine the measuring side costs as little
// CPU as possible and the server under test is what limits the numbers.
// Bench payloads start with float64 append time (ms, wall clock from
// performance.timeOrigin) and float64 seq; every `sampleEvery`-th message of
// each consumer gives an append-to-delivery latency sample.
//
// Talks to the parent over IPC: sends {type:'ready'} once all are connected,
// {type:'progress', minSeq, messages} every 5 ms, and {type:'stats', ...} on
// a {type:'report'} request (counters reset after each report).
import { openRawWsConnections, type RawWsConnection } from './raw-ws-clients.ts';

const [url, countArg, sampleArg] = process.argv.slice(2);
const sampleEvery = Number(sampleArg ?? 1);
const send = (msg: object) => process.send?.(msg);
const now = () => performance.timeOrigin + performance.now();

const conns: RawWsConnection[] = [];
let messages = 0;
/** Bytes read by all sockets at the last report (stats count from there). */
let bytesReported = 0;
let closedEarly = 0;
let latencies: number[] = [];

setInterval(() => {
  let minSeq = Number.POSITIVE_INFINITY;
  for (const c of conns) if (c.lastSeq < minSeq) minSeq = c.lastSeq;
  send({ type: 'progress', minSeq, messages, closed: closedEarly });
}, 5);

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'report') {
    let read = 0;
    for (const c of conns) read += c.sock.bytesRead;
    send({ type: 'stats', messages, bytes: read - bytesReported, latencies, closed: closedEarly });
    messages = 0;
    bytesReported = read;
    latencies = [];
  } else if (msg.type === 'exit') {
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }
});

await openRawWsConnections({
  into: conns,
  url,
  count: Number(countArg),
  userAgent: 'fanout-bench',
  peekBytes: 16,
  onFrame(c, opcode, len, buf, at) {
    if (opcode !== 2 || len < 16) return;
    c.lastSeq = buf.readDoubleLE(at + 8);
    c.messages++;
    messages++;
    if (c.messages % sampleEvery === 0) latencies.push(now() - buf.readDoubleLE(at));
  },
  onReady: () => send({ type: 'ready' }),
  onClose: () => {
    closedEarly++;
  },
});
