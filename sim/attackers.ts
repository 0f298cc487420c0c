// Client-side attackers for a relay's public port (issue 12), on raw loopback
// sockets so they behave as no well-written client would:
//
// - `slowConsumer`: a subscribeRepos consumer that completes the WebSocket
//   handshake and then never reads (or reads a byte every so often), never
//   answers a ping, and never closes: TCP back-pressure fills the kernel
//   buffers, then the relay's outbox for it.
// - `trickleHeaders`: an HTTP client that sends its request head a byte at a
//   time and never finishes it (slowloris), holding a connection slot.
//
// Each attacker only attacks: it keeps no data beyond counters, and `close()`
// destroys its socket. Addresses are loopback only (`localAddress` may pick
// another 127.0.0.0/8 address, to look like another client).
import { connect, type Socket } from 'node:net';

export interface SlowConsumerOptions {
  /** Bytes read per second after the handshake (default 0: never read). */
  bytesPerSecond?: number;
  /** Source address, e.g. 127.0.0.2 (default: the system's choice). */
  localAddress?: string;
}

export interface SlowConsumer {
  socket: Socket;
  /** The status line of the handshake answer (e.g. "HTTP/1.1 101 Switching Protocols"). */
  status: string;
  /** Bytes read after the handshake. */
  bytesRead(): number;
  /** True once the relay (or anyone) closed the connection. */
  closed(): boolean;
  close(): void;
}

/**
 * Opens a subscribeRepos connection to `url` (ws://127.0.0.1:PORT/xrpc/…,
 * cursor in the query if wanted) and stops reading once the handshake is
 * answered. Resolves after the answer's head has arrived, whatever it is.
 */
export function slowConsumer(url: string, opts: SlowConsumerOptions = {}): Promise<SlowConsumer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: u.hostname, port: Number(u.port), localAddress: opts.localAddress });
    let head = '';
    let read = 0;
    let isClosed = false;
    let trickle: NodeJS.Timeout | undefined;
    socket.on('error', () => {});
    socket.on('close', () => {
      isClosed = true;
      if (trickle) clearInterval(trickle);
    });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: Upgrade\r\n` +
          'Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
    });
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16 * 1024) socket.destroy();
        return;
      }
      // The handshake is answered: from here on, read nothing (or a trickle).
      socket.off('data', onData);
      socket.pause();
      read = head.length - end - 4;
      const rate = opts.bytesPerSecond ?? 0;
      if (rate > 0) {
        trickle = setInterval(() => {
          if (socket.read(1) !== null) read++;
        }, 1000 / rate);
        trickle.unref();
      }
      resolve({
        socket,
        status: head.slice(0, head.indexOf('\r\n')),
        bytesRead: () => read,
        closed: () => isClosed,
        close: () => socket.destroy(),
      });
    };
    socket.on('data', onData);
  });
}

export interface HeaderTrickler {
  socket: Socket;
  /** Bytes of the request head sent so far. */
  sent(): number;
  /** What the server answered, if anything (e.g. "HTTP/1.1 408 …"). */
  received(): string;
  closed(): boolean;
  close(): void;
}

export interface TrickleOptions {
  /** The request target (default /xrpc/com.atproto.sync.listRepos). */
  path?: string;
  /** One byte every this many ms (default 1,000). */
  intervalMs?: number;
  localAddress?: string;
}

/** Connects to 127.0.0.1:`port` and sends a request head one byte per interval, never ending it. */
export function trickleHeaders(port: number, opts: TrickleOptions = {}): Promise<HeaderTrickler> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, localAddress: opts.localAddress });
    const chunks: Buffer[] = [];
    let sent = 0;
    let isClosed = false;
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (c: Buffer) => {
      if (chunks.length < 16) chunks.push(c);
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      isClosed = true;
      if (timer) clearInterval(timer);
    });
    socket.once('error', reject);
    socket.once('connect', () => {
      const start = `GET ${opts.path ?? '/xrpc/com.atproto.sync.listRepos'} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `;
      socket.write(start);
      sent = start.length;
      timer = setInterval(() => {
        if (!socket.destroyed) {
          socket.write('a');
          sent++;
        }
      }, opts.intervalMs ?? 1000);
      timer.unref();
      resolve({
        socket,
        sent: () => sent,
        received: () => Buffer.concat(chunks).toString('latin1'),
        closed: () => isClosed,
        close: () => socket.destroy(),
      });
    });
  });
}

export interface TricklerPool {
  /** Tricklers opened so far (the first `count` and every replacement). */
  opened(): number;
  /** Tricklers the server cut off, and how many of those were answered 408. */
  cutOff(): { closed: number; timedOut: number };
  /** Connections open now. */
  open(): number;
  /** Stops replacing tricklers and closes every open one. */
  stop(): void;
}

/**
 * Keeps `count` header tricklers open against 127.0.0.1:`port`: each one the
 * server cuts off is replaced by a new one (a sustained slowloris), until
 * stop(). Resolves once the first `count` are connected. `localAddress(i)`
 * spreads them over loopback addresses.
 */
export async function tricklerPool(
  port: number,
  count: number,
  opts: Omit<TrickleOptions, 'localAddress'> & { localAddress?: (i: number) => string } = {},
): Promise<TricklerPool> {
  const live = new Set<HeaderTrickler>();
  let opened = 0;
  let closed = 0;
  let timedOut = 0;
  let stopped = false;
  const openOne = async (): Promise<void> => {
    const i = opened++;
    const t = await trickleHeaders(port, { ...opts, localAddress: opts.localAddress?.(i) });
    live.add(t);
    t.socket.once('close', () => {
      live.delete(t);
      if (stopped) return;
      closed++;
      if (t.received().startsWith('HTTP/1.1 408')) timedOut++;
      openOne().catch(() => {});
    });
  };
  for (let i = 0; i < count; i++) await openOne();
  return {
    opened: () => opened,
    cutOff: () => ({ closed, timedOut }),
    open: () => live.size,
    stop() {
      stopped = true;
      for (const t of live) t.close();
      live.clear();
    },
  };
}
