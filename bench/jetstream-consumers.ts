// Consumer process for the Jetstream benchmark (bench/jetstream.bench.ts):
// opens N WebSocket connections on raw TCP sockets to one URL and counts the
// messages each receives by walking frame headers only (no JSON parsing, no
// per-message allocation), so the measuring side costs little CPU on a small
// machine and the relay's server is what limits the numbers.
//
// IPC: {type:'ready'} once every handshake is done; {type:'progress', min}
// (the fewest messages any connection has received) every 10 ms; exits on
// {type:'exit'}.
import { connect, type Socket } from 'node:net';

const [url, countArg] = process.argv.slice(2);
const count = Number(countArg);
const { hostname, port, pathname, search } = new URL(url);
const send = (msg: object) => process.send?.(msg);

interface Conn {
  sock: Socket;
  carry?: Buffer;
  skip: number;
  messages: number;
  handshaken: boolean;
}

const conns: Conn[] = [];
let pending = count;

function onData(c: Conn, chunk: Buffer): void {
  let buf = c.carry ? Buffer.concat([c.carry, chunk]) : chunk;
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
    }
    const avail = buf.length - p;
    if (avail < 2) break;
    const b1 = buf[p + 1] & 0x7f;
    const hdr = b1 < 126 ? 2 : b1 === 126 ? 4 : 10;
    if (avail < hdr) break;
    const len = b1 < 126 ? b1 : b1 === 126 ? buf.readUInt16BE(p + 2) : buf.readUInt32BE(p + 6);
    if ((buf[p] & 0x0f) <= 2) c.messages++; // text or binary (not ping/close)
    p += hdr;
    c.skip = len;
  }
  if (p < buf.length) c.carry = buf.subarray(p);
  buf = Buffer.alloc(0);
}

for (let i = 0; i < count; i++) {
  const sock = connect(Number(port), hostname);
  const c: Conn = { sock, skip: 0, messages: 0, handshaken: false };
  conns.push(c);
  sock.on('connect', () => {
    sock.write(
      `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
  });
  sock.on('data', (d: Buffer) => onData(c, d));
  sock.on('error', () => {});
}

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
