// The socket side of a socket thread: the WebSocket clients of the hosts the
// main thread assigned to this worker (socket-threads.ts has the main side and
// why). Per message it does what needs nothing but the connection: `ws`'s
// parse, the frame check with the connection's last seq, and the owned copy
// of an event (upstream-socket.ts FrameReader). Everything read in one turn
// of this thread's event loop goes to the main thread as one message, event
// frames moved, not copied.
//
// It dials only the address the main thread resolved and checked (the SSRF
// policy stays on main): the `lookup` handed to `ws` returns that address.
// It reads a connection only while it holds credit: each frame spends one
// frame and its bytes, the socket pauses when either runs out, and the main
// thread grants more as it takes frames on (so what waits in the message
// queue for a busy main thread is bounded by the credit window per host).
import type { MessagePort } from 'node:worker_threads';
import type { FrameVerdict } from './frame-check.ts';
import type { NodeLookup } from './host-checks.ts';
import {
  CMD_CREDIT,
  CMD_DIAL,
  CMD_FIELDS,
  CMD_LEARN,
  CMD_PING,
  CMD_TERMINATE,
  EV_CLOSE,
  EV_ERROR,
  EV_EVENT,
  EV_OPEN,
  EV_OTHER,
  EV_PONG,
  type InPlaceWork,
} from './socket-wire.ts';
import { dialOnThisThread, type UpstreamSocket } from './upstream-socket.ts';

/**
 * What this thread read goes to main at most this long after (or at once at
 * FLUSH_FRAMES frames): a message costs ~10 µs on each side whatever it
 * holds, and a socket read is often a single frame, so a message per read
 * (setImmediate) cost more CPU than reading on main did.
 */
const FLUSH_DELAY_MS = 1;
const FLUSH_FRAMES = 128;

interface Connection {
  /** The `ws` client, as the main-thread owner makes it (upstream-socket.ts); set once dialled. */
  ws: UpstreamSocket | null;
  /** Frames and bytes this connection may still hand to main before pausing. */
  frames: number;
  bytes: number;
}

/**
 * Serves the commands that arrive on `port` until the thread ends; `work`
 * runs on each event frame before it goes to main (socket-wire.ts).
 */
export function serveSockets(port: MessagePort, work?: InPlaceWork): void {
  const conns = new Map<number, Connection>();
  let out: unknown[] = [];
  let moved: ArrayBuffer[] = [];
  let flushScheduled: NodeJS.Timeout | undefined;
  let frames = 0;

  const flush = (): void => {
    if (flushScheduled !== undefined) clearTimeout(flushScheduled);
    flushScheduled = undefined;
    frames = 0;
    if (out.length === 0) return;
    const msg = out;
    const transfer = moved;
    out = [];
    moved = [];
    try {
      port.postMessage(msg, transfer);
    } catch {
      // a buffer that cannot be moved (none is expected: each event has its
      // own): copied instead, rather than losing the frames
      port.postMessage(msg);
    }
  };
  const scheduleFlush = (): void => {
    if (++frames >= FLUSH_FRAMES) flush();
    else flushScheduled ??= setTimeout(flush, FLUSH_DELAY_MS);
  };

  const spend = (conn: Connection, bytes: number): void => {
    conn.frames--;
    conn.bytes -= bytes;
    if ((conn.frames <= 0 || conn.bytes <= 0) && conn.ws !== null && !conn.ws.isPaused) conn.ws.pause();
  };

  const dial = (
    id: number,
    url: string,
    address: string,
    family: number,
    handshakeTimeoutMs: number,
    frames: number,
    bytes: number,
  ): void => {
    // the address main resolved and checked, whatever name the URL has
    const lookup: NodeLookup = (_hostname, options, cb) => {
      if (options?.all) cb(null, [{ address, family }]);
      else cb(null, address, family);
    };
    // the handlers run only after the dial has returned (UpstreamDialer), so `ws` is set by then
    const conn: Connection = { ws: null, frames, bytes };
    try {
      conn.ws = dialOnThisThread(
        { url, handshakeTimeoutMs, lookup },
        {
          open: () => {
            out.push(EV_OPEN, id);
            scheduleFlush();
          },
          frame: (verdict: FrameVerdict, frame: Uint8Array | undefined, wireBytes: number) => {
            if (verdict.kind === 'event' && frame !== undefined) {
              out.push(
                EV_EVENT,
                id,
                frame,
                verdict.type,
                verdict.seq,
                verdict.seqSpan.start,
                verdict.seqSpan.end,
                verdict.did,
                wireBytes,
                work === undefined ? null : work.onEvent(verdict.type, verdict.did, frame),
              );
              moved.push(frame.buffer as ArrayBuffer);
              spend(conn, wireBytes);
            } else {
              out.push(EV_OTHER, id, verdict, wireBytes);
              spend(conn, 0);
            }
            scheduleFlush();
          },
          pong: () => {
            out.push(EV_PONG, id);
            scheduleFlush();
          },
          error: (code, message) => {
            out.push(EV_ERROR, id, code ?? null, message);
            scheduleFlush();
          },
          close: (code) => {
            conns.delete(id);
            out.push(EV_CLOSE, id, code);
            scheduleFlush();
          },
        },
      );
    } catch (err) {
      out.push(EV_ERROR, id, null, (err as Error).message.slice(0, 200), EV_CLOSE, id, 1006);
      scheduleFlush();
      return;
    }
    conns.set(id, conn);
  };

  port.on('message', (cmds: unknown[]) => {
    for (let i = 0; i < cmds.length; ) {
      const op = cmds[i] as number;
      const id = cmds[i + 1] as number;
      if (op === CMD_LEARN) {
        work?.learn(cmds[i + 2] as string, cmds[i + 3]);
      } else if (op === CMD_DIAL) {
        dial(
          id,
          cmds[i + 2] as string,
          cmds[i + 3] as string,
          cmds[i + 4] as number,
          cmds[i + 5] as number,
          cmds[i + 6] as number,
          cmds[i + 7] as number,
        );
      } else {
        const conn = conns.get(id);
        const ws = conn?.ws;
        if (conn !== undefined && ws != null) {
          if (op === CMD_CREDIT) {
            conn.frames += cmds[i + 2] as number;
            conn.bytes += cmds[i + 3] as number;
            if (conn.frames > 0 && conn.bytes > 0 && ws.isPaused) ws.resume();
          } else if (op === CMD_PING) {
            ws.ping();
          } else if (op === CMD_TERMINATE) {
            ws.terminate();
          }
        }
      }
      i += 1 + CMD_FIELDS[op as 0 | 1 | 2 | 3 | 4];
    }
  });
}
