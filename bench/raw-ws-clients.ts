// WebSocket clients on raw TCP sockets for the benchmarks' consumer
// processes (e2e-consumers.ts, fanout-consumers.ts, jetstream-consumers.ts):
// the handshake, then a walk over the frame headers only, with no decode and
// no per-message allocation, so the measuring side costs little CPU on a
// small machine and the server under test is what limits the numbers. Pings
// get an empty (masked) pong, so a long run is not dropped as dead. What a
// message means is the caller's: `onFrame` sees every frame's opcode and
// length, and the first `peekBytes` of its payload when it needs them.
import { connect, type Socket } from 'node:net';

export interface RawWsConnection {
  sock: Socket;
  /** Caller's count (onFrame increments what it counts as a message). */
  messages: number;
  /** Caller's: the last seq seen, where the payload carries one. */
  lastSeq: number;
  carry: Buffer | undefined;
  skip: number;
  handshaken: boolean;
}

export interface RawWsOptions {
  url: string;
  count: number;
  /** User-Agent of connection i is `${userAgent}/${i}`. */
  userAgent: string;
  /** Payload bytes a data frame of at least this length must show onFrame at once (0: none). */
  peekBytes?: number;
  /**
   * Every frame: its opcode, payload length, and the buffer holding its
   * payload from `at` (at least peekBytes of it when len ≥ peekBytes).
   */
  onFrame(c: RawWsConnection, opcode: number, len: number, buf: Buffer, at: number): void;
  /** Once every handshake has completed. */
  onReady(): void;
  onClose?(c: RawWsConnection): void;
  /** Each connection is pushed here as it is opened (the caller's progress timer sees it at once). */
  into?: RawWsConnection[];
}

/** A client pong frame: FIN + opcode 10, masked, empty payload. */
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);

/** Opens `count` connections (50 at a time, 5 ms apart) and returns them (in `into`, if given); onReady fires when all are upgraded. */
export async function openRawWsConnections(opts: RawWsOptions): Promise<RawWsConnection[]> {
  const { hostname, port, pathname, search } = new URL(opts.url);
  const peek = opts.peekBytes ?? 0;
  const conns = opts.into ?? [];
  let pending = opts.count;

  const onData = (c: RawWsConnection, chunk: Buffer): void => {
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
      if (--pending === 0) opts.onReady();
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
      if (peek > 0 && len >= peek && avail < h + peek) break;
      opts.onFrame(c, opcode, len, buf, p + h);
      if (opcode === 9) c.sock.write(PONG);
      p += h;
      c.skip = len;
    }
    if (p < buf.length) c.carry = Buffer.from(buf.subarray(p));
  };

  for (let i = 0; i < opts.count; i++) {
    const sock = connect(Number(port), hostname);
    const c: RawWsConnection = {
      sock,
      carry: undefined,
      skip: 0,
      messages: 0,
      lastSeq: 0,
      handshaken: false,
    };
    conns.push(c);
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => onData(c, d));
    sock.on('error', () => {});
    sock.on('close', () => opts.onClose?.(c));
    sock.write(
      `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nUser-Agent: ${opts.userAgent}/${i}\r\n\r\n`,
    );
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
  return conns;
}
