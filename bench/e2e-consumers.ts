// Consumer process for the end-to-end benchmark (e2e.bench.ts): opens N
// subscribeRepos consumers on raw TCP sockets and only counts messages by
// walking the WebSocket frame headers (no decode, no per-message
// allocation; pings get an empty pong), so the measuring side costs little CPU and the relay is what
// limits the numbers. Talks to the parent over IPC: {type:'ready'} once all
// are connected; on {type:'report'} it answers {type:'stats', messages,
// bytes, perConsumerMin, closed}.
import { connect, type Socket } from 'node:net';

const [url, countArg] = process.argv.slice(2);
const count = Number(countArg);
const { hostname, port, pathname, search } = new URL(url);
const send = (msg: object) => process.send?.(msg);

interface Conn {
  sock: Socket;
  carry: Buffer | undefined;
  skip: number;
  messages: number;
  handshaken: boolean;
}

const conns: Conn[] = [];
/** A client pong frame: FIN + opcode 10, masked, empty payload. */
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);
let messages = 0;
let bytes = 0;
let closed = 0;
let pending = count;

function onData(c: Conn, chunk: Buffer): void {
  bytes += chunk.length;
  const buf = c.carry ? Buffer.concat([c.carry, chunk]) : chunk;
  c.carry = undefined;
  let p = 0;
  if (!c.handshaken) {
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      c.carry = buf;
      return;
    }
    c.handshaken = true;
    p = end + 4;
    if (--pending === 0) send({ type: 'ready' });
  }
  for (;;) {
    if (c.skip > 0) {
      const n = Math.min(c.skip, buf.length - p);
      c.skip -= n;
      p += n;
      if (c.skip > 0) return;
      continue;
    }
    const avail = buf.length - p;
    if (avail < 2) break;
    const opcode = buf[p] & 0x0f;
    let len = buf[p + 1] & 0x7f;
    let h = 2;
    if (len === 126) {
      if (avail < 4) break;
      len = buf.readUInt16BE(p + 2);
      h = 4;
    } else if (len === 127) {
      if (avail < 10) break;
      len = Number(buf.readBigUInt64BE(p + 2));
      h = 10;
    }
    if (opcode === 2) {
      c.messages++;
      messages++;
    }
    // answer pings (masked, empty pong) so a long run is not dropped as dead
    if (opcode === 9) c.sock.write(PONG);
    p += h;
    c.skip = len;
  }
  if (p < buf.length) c.carry = Buffer.from(buf.subarray(p));
}

for (let i = 0; i < count; i++) {
  const sock = connect(Number(port), hostname);
  const c: Conn = { sock, carry: undefined, skip: 0, messages: 0, handshaken: false };
  conns.push(c);
  sock.setNoDelay(true);
  sock.on('data', (d: Buffer) => onData(c, d));
  sock.on('error', () => {});
  sock.on('close', () => {
    closed++;
  });
  sock.write(
    `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUser-Agent: e2e-bench/${i}\r\n\r\n`,
  );
  if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
}

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'report') {
    let perConsumerMin = Number.POSITIVE_INFINITY;
    for (const c of conns) perConsumerMin = Math.min(perConsumerMin, c.messages);
    send({ type: 'stats', messages, bytes, perConsumerMin, closed });
  } else if (msg.type === 'exit') {
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }
});
