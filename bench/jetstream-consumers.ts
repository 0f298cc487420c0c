// Consumer process for the Jetstream benchmark (bench/jetstream.bench.ts):
// opens N WebSocket connections on raw TCP sockets to one URL
// (raw-ws-clients.ts: frame headers only, no JSON parsing, no per-message
// allocation) and counts the messages each receives, so the measuring side
// costs little CPU on a small machine and the relay's server is what limits
// the numbers.
//
// IPC: {type:'ready'} once every handshake is done; {type:'progress', min}
// (the fewest messages any connection has received) every 10 ms; exits on
// {type:'exit'}.
import { openRawWsConnections, type RawWsConnection } from './raw-ws-clients.ts';

const [url, countArg] = process.argv.slice(2);
const send = (msg: object) => process.send?.(msg);

const conns: RawWsConnection[] = [];

const timer = setInterval(() => {
  let min = Number.POSITIVE_INFINITY;
  for (const c of conns) if (c.messages < min) min = c.messages;
  send({ type: 'progress', min });
}, 10);

process.on('message', (m: { type: string }) => {
  if (m.type === 'exit') {
    clearInterval(timer);
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }
});

await openRawWsConnections({
  into: conns,
  url,
  count: Number(countArg),
  userAgent: 'jetstream-bench',
  onFrame(c, opcode) {
    if (opcode <= 2) c.messages++; // text or binary (not ping/close)
  },
  onReady: () => send({ type: 'ready' }),
});
