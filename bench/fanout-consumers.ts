// Consumer process for the firehose benchmarks: opens N WebSocket consumers
// on raw TCP sockets and counts messages by walking frame headers only (no
// per-message allocation), so that on a small machine the measuring side costs
// as little CPU as possible and the server under test is what limits the
// numbers. Bench payloads start with float64 append time (ms, wall clock from
// performance.timeOrigin) and float64 seq; every `sampleEvery`-th message of
// each consumer gives an append-to-delivery latency sample.
//
// Talks to the parent over IPC: sends {type:'ready'} once all are connected,
// {type:'progress', minSeq, messages} every 5 ms, and {type:'stats', ...} on
// a {type:'report'} request (counters reset after each report).
import { connect, type Socket } from 'node:net';

const [url, countArg, sampleArg] = process.argv.slice(2);
const count = Number(countArg);
const sampleEvery = Number(sampleArg ?? 1);
const { hostname, port, pathname, search } = new URL(url);
const send = (msg: object) => process.send?.(msg);
const now = () => performance.timeOrigin + performance.now();

interface Conn {
  sock: Socket;
  carry: Buffer | undefined;
  skip: number;
  lastSeq: number;
  messages: number;
  handshaken: boolean;
}

const conns: Conn[] = [];
let messages = 0;
let bytes = 0;
let closedEarly = 0;
let latencies: number[] = [];

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
    pending--;
    if (pending === 0) send({ type: 'ready' });
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
    if (opcode === 2 && len >= 16) {
      if (avail < h + 16) break;
      const seq = buf.readDoubleLE(p + h + 8);
      c.lastSeq = seq;
      c.messages++;
      messages++;
      if (c.messages % sampleEvery === 0) latencies.push(now() - buf.readDoubleLE(p + h));
    }
    p += h;
    c.skip = len;
  }
  if (p < buf.length) c.carry = Buffer.from(buf.subarray(p));
}

let pending = count;

async function open(): Promise<void> {
  for (let i = 0; i < count; i++) {
    const sock = connect(Number(port), hostname);
    const c: Conn = { sock, carry: undefined, skip: 0, lastSeq: 0, messages: 0, handshaken: false };
    conns.push(c);
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => onData(c, d));
    sock.on('error', () => {});
    sock.on('close', () => {
      closedEarly++;
    });
    sock.write(
      `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUser-Agent: fanout-bench/${i}\r\n\r\n`,
    );
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
}

setInterval(() => {
  let minSeq = Number.POSITIVE_INFINITY;
  for (const c of conns) if (c.lastSeq < minSeq) minSeq = c.lastSeq;
  send({ type: 'progress', minSeq, messages, closed: closedEarly });
}, 5);

process.on('message', (msg: { type: string }) => {
  if (msg.type === 'report') {
    send({ type: 'stats', messages, bytes, latencies, closed: closedEarly });
    messages = 0;
    bytes = 0;
    latencies = [];
  } else if (msg.type === 'exit') {
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }
});

await open();
