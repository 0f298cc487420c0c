// Consumer process for the end-to-end benchmark (e2e.bench.ts): opens N
// subscribeRepos consumers on raw TCP sockets (raw-ws-clients.ts: frame
// headers only, no decode) and counts their binary messages, so the
// measuring side costs little CPU and the relay is what limits the numbers.
// Talks to the parent over IPC: {type:'ready'} once all are connected; on
// {type:'report'} it answers {type:'stats', messages, bytes, perConsumerMin,
// closed}.
import { openRawWsConnections } from './raw-ws-clients.ts';

const [url, countArg] = process.argv.slice(2);
const send = (msg: object) => process.send?.(msg);

let messages = 0;
let closed = 0;

const conns = await openRawWsConnections({
  url,
  count: Number(countArg),
  userAgent: 'e2e-bench',
  onFrame(c, opcode) {
    if (opcode === 2) {
      c.messages++;
      messages++;
    }
  },
  onReady: () => send({ type: 'ready' }),
  onClose: () => {
    closed++;
  },
});

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'report') {
    let perConsumerMin = Number.POSITIVE_INFINITY;
    let bytes = 0;
    for (const c of conns) {
      perConsumerMin = Math.min(perConsumerMin, c.messages);
      bytes += c.sock.bytesRead;
    }
    send({ type: 'stats', messages, bytes, perConsumerMin, closed });
  } else if (msg.type === 'exit') {
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }
});
