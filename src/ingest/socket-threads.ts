// Host sockets on worker threads: the main-thread side.
//
// Why. The main thread is the one a relay process cannot scale past: it
// decides order, limits and the log for every event. Reading host sockets was
// its largest single block of work per event (`ws`'s parse, the frame check,
// the copy out of the socket chunk: docs/ingest.md). A socket thread
// (socket-thread.ts, hosted by the verify pool's workers) now does that and
// sends main each event already classified, in a buffer of its own, moved.
// Main keeps every decision that needs state: the subscriber state machine,
// seq order, cursors, rate limits, the frame budget, bad-frame allowances.
//
// How. `dial` is an UpstreamDialer (upstream-socket.ts): the subscriber gets
// a RemoteSocket that behaves like its own WebSocket. The SSRF policy stays
// here: main resolves and checks the host's address with the subscriber's
// lookup, then the least-loaded thread dials exactly that address. Commands
// and events cross as flat arrays, one message per event-loop turn and
// direction (socket-wire.ts).
//
// Back-pressure is credit: a connection starts with a window of frames and
// bytes; the thread pauses its socket when either is spent. Main grants back
// what it took once half a window is owed and the subscriber wants more
// (`resume`/not paused), so a paused subscriber stops its host within one
// window plus the frame being received, and a stalled main thread holds at
// most one window per connection in its message queue.
//
// A thread that exits takes its connections with it: each gets an error and a
// close (1006), the subscriber reconnects from its saved cursor, and frames
// it had not finished were never finished. With no thread attached (all
// restarting), dials happen on the main thread.
import { isIP } from 'node:net';
import type { MessagePort } from 'node:worker_threads';
import WebSocket from 'ws';
import type { FrameVerdict } from './frame-check.ts';
import type { NodeLookup } from './host-checks.ts';
import {
  CMD_CREDIT,
  CMD_DIAL,
  CMD_LEARN,
  CMD_PING,
  CMD_TERMINATE,
  EV_CLOSE,
  EV_ERROR,
  EV_EVENT,
  EV_FIELDS,
  EV_OPEN,
  EV_OTHER,
  EV_PONG,
} from './socket-wire.ts';
import {
  type DialOptions,
  dialOnThisThread,
  type InPlaceLearner,
  type UpstreamDialer,
  type UpstreamHandlers,
  type UpstreamSocket,
} from './upstream-socket.ts';

export interface SocketThreadsOptions {
  /** Frames a connection may hand over before main grants more (default 64). */
  windowFrames?: number;
  /** Bytes likewise (default 256 KiB; the frame that crosses it is still sent). */
  windowBytes?: number;
}

/** One attached thread: its port, its connections and the commands not yet sent. */
class ThreadLink implements InPlaceLearner {
  connections = 0;
  private pending: unknown[] = [];
  private flushScheduled = false;

  constructor(
    readonly port: MessagePort,
    owner: SocketThreads,
  ) {
    port.on('message', (events: unknown[]) => owner.receive(events));
  }

  send(...record: unknown[]): void {
    for (const v of record) this.pending.push(v);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  learn(did: string, payload: unknown): void {
    this.send(CMD_LEARN, 0, did, payload);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0) return;
    const cmds = this.pending;
    this.pending = [];
    try {
      this.port.postMessage(cmds);
    } catch {
      // the port closed with its thread: detach() closes its connections
    }
  }
}

export class SocketThreads {
  readonly windowFrames: number;
  readonly windowBytes: number;
  private readonly threads: ThreadLink[] = [];
  private readonly conns = new Map<number, RemoteSocket>();
  private nextId = 1;

  constructor(opts: SocketThreadsOptions = {}) {
    this.windowFrames = opts.windowFrames ?? 64;
    this.windowBytes = opts.windowBytes ?? 256 * 1024;
  }

  /** Connections on threads now. */
  get connections(): number {
    return this.conns.size;
  }

  /** A thread's port arrived (the pool started a worker); returns what to call when the thread ends. */
  attach(port: MessagePort): () => void {
    const link = new ThreadLink(port, this);
    this.threads.push(link);
    return () => this.detach(link);
  }

  /** Dials on the least-loaded thread, or on this thread when none is attached. */
  readonly dial: UpstreamDialer = (opts, handlers) => {
    if (this.threads.length === 0) return dialOnThisThread(opts, handlers);
    const sock = new RemoteSocket(this, this.nextId++, handlers);
    this.conns.set(sock.id, sock);
    sock.start(opts);
    return sock;
  };

  /** The least-loaded attached thread (undefined: none). */
  pickThread(): ThreadLink | undefined {
    let best: ThreadLink | undefined;
    for (const t of this.threads) if (best === undefined || t.connections < best.connections) best = t;
    return best;
  }

  forget(id: number): void {
    this.conns.delete(id);
  }

  /** One message from a thread: its records in order. */
  receive(events: unknown[]): void {
    for (let i = 0; i < events.length; ) {
      const op = events[i] as number;
      const sock = this.conns.get(events[i + 1] as number);
      if (sock !== undefined) {
        if (op === EV_EVENT) {
          sock.onEvent(
            {
              kind: 'event',
              type: events[i + 3] as string,
              seq: events[i + 4] as number,
              seqSpan: { start: events[i + 5] as number, end: events[i + 6] as number },
              did: events[i + 7] as string,
              label: events[i + 3] as string,
            },
            events[i + 2] as Uint8Array,
            events[i + 8] as number,
            events[i + 9] ?? undefined,
          );
        } else if (op === EV_OTHER) {
          sock.onEvent(events[i + 2] as FrameVerdict, undefined, events[i + 3] as number);
        } else if (op === EV_OPEN) {
          sock.onOpen();
        } else if (op === EV_PONG) {
          sock.handlers.pong();
        } else if (op === EV_ERROR) {
          sock.handlers.error((events[i + 2] as string | null) ?? undefined, events[i + 3] as string);
        } else if (op === EV_CLOSE) {
          sock.onClose(events[i + 2] as number);
        }
      }
      i += 1 + EV_FIELDS[op as 0 | 1 | 2 | 3 | 4 | 5];
    }
  }

  private detach(link: ThreadLink): void {
    const i = this.threads.indexOf(link);
    if (i < 0) return;
    this.threads.splice(i, 1);
    link.port.close();
    for (const sock of [...this.conns.values()]) {
      if (sock.thread !== link) continue;
      sock.handlers.error(undefined, 'socket thread exited');
      sock.onClose(1006);
    }
  }
}

/** A WebSocket on a socket thread, as its subscriber sees it. */
class RemoteSocket implements UpstreamSocket {
  readyState: number = WebSocket.CONNECTING;
  thread: ThreadLink | undefined;
  get learner(): InPlaceLearner | undefined {
    return this.thread;
  }
  /** The subscriber asked for no more frames. */
  private held = false;
  /**
   * Frames and bytes taken since the last grant. What the thread may still
   * send, as main knows it, is the window less these.
   */
  private owedFrames = 0;
  private owedBytes = 0;

  constructor(
    private readonly threads: SocketThreads,
    readonly id: number,
    readonly handlers: UpstreamHandlers,
  ) {}

  get isPaused(): boolean {
    return (
      this.held || this.owedFrames >= this.threads.windowFrames || this.owedBytes >= this.threads.windowBytes
    );
  }

  /** Resolves and checks the address here, then has a thread dial it. */
  start(opts: DialOptions): void {
    const fail = (err: Error & { code?: string }): void => {
      if (this.readyState === WebSocket.CLOSED) return;
      this.handlers.error(err.code, err.message.slice(0, 200));
      this.onClose(1006);
    };
    let host: string;
    try {
      host = new URL(opts.url).hostname.replace(/^\[(.*)\]$/, '$1');
    } catch (err) {
      setImmediate(() => fail(err as Error));
      return;
    }
    const literal = isIP(host);
    if (literal !== 0) {
      setImmediate(() => this.dialAddress(opts, host, literal));
      return;
    }
    // the handshake timeout covers the lookup too, as it does for a `ws` client's own
    const timer = setTimeout(
      () => fail(new Error(`no address for ${host} within ${opts.handshakeTimeoutMs} ms`)),
      opts.handshakeTimeoutMs,
    );
    timer.unref();
    const lookup: NodeLookup = opts.lookup;
    lookup(host, {}, (err, address, family) => {
      clearTimeout(timer);
      // never before dial() has returned (UpstreamDialer), whatever the lookup does
      setImmediate(() => {
        if (err) fail(err);
        else if (typeof address !== 'string') fail(new Error(`no address for ${host}`));
        else this.dialAddress(opts, address, family ?? (isIP(address) || 4));
      });
    });
  }

  private dialAddress(opts: DialOptions, address: string, family: number): void {
    if (this.readyState !== WebSocket.CONNECTING) return; // terminated while resolving
    const thread = this.threads.pickThread();
    if (thread === undefined) {
      this.handlers.error(undefined, 'no socket thread');
      this.onClose(1006);
      return;
    }
    this.thread = thread;
    thread.connections++;
    thread.send(
      CMD_DIAL,
      this.id,
      opts.url,
      address,
      family,
      opts.handshakeTimeoutMs,
      this.threads.windowFrames,
      this.threads.windowBytes,
    );
  }

  onOpen(): void {
    if (this.readyState !== WebSocket.CONNECTING) return;
    this.readyState = WebSocket.OPEN;
    this.handlers.open();
  }

  onEvent(verdict: FrameVerdict, frame: Uint8Array | undefined, bytes: number, inPlace?: unknown): void {
    this.owedFrames++;
    if (frame !== undefined) this.owedBytes += bytes;
    if (this.readyState !== WebSocket.OPEN) return;
    this.handlers.frame(verdict, frame, bytes, inPlace);
    if (!this.held) this.grant();
  }

  onClose(code: number): void {
    if (this.readyState === WebSocket.CLOSED) return;
    this.readyState = WebSocket.CLOSED;
    this.threads.forget(this.id);
    if (this.thread !== undefined) this.thread.connections--;
    this.handlers.close(code);
  }

  pause(): void {
    this.held = true;
  }

  resume(): void {
    this.held = false;
    this.grant();
  }

  ping(): void {
    if (this.readyState === WebSocket.OPEN) this.thread?.send(CMD_PING, this.id);
  }

  terminate(): void {
    if (this.readyState === WebSocket.CLOSED || this.readyState === WebSocket.CLOSING) return;
    const dialed = this.thread !== undefined;
    this.readyState = WebSocket.CLOSING;
    if (dialed) {
      this.thread?.send(CMD_TERMINATE, this.id);
    } else {
      // still resolving: nothing to close on a thread
      setImmediate(() => this.onClose(1006));
    }
  }

  /** Gives the thread back what was taken once half a window of frames or bytes is owed. */
  private grant(): void {
    if (this.readyState !== WebSocket.OPEN || this.thread === undefined) return;
    if (this.owedFrames * 2 < this.threads.windowFrames && this.owedBytes * 2 < this.threads.windowBytes)
      return;
    this.thread.send(CMD_CREDIT, this.id, this.owedFrames, this.owedBytes);
    this.owedFrames = 0;
    this.owedBytes = 0;
  }
}
