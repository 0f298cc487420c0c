// The WebSocket a host subscriber reads from, behind one small interface, so
// the socket can live on the main thread or on a socket thread
// (socket-threads.ts) without the subscriber knowing which.
//
// Whoever owns the socket also does the per-frame work that needs nothing but
// the connection: `ws`'s parse, the structural check (classifyFrame, with the
// connection's last seq) and the copy of an event's bytes out of the socket
// chunk into a buffer of its own. The subscriber receives each frame already
// classified, with its owned bytes, and keeps every decision that needs state
// (cursor, limits, budget, bad-frame allowance).
//
// Back-pressure: `pause()` and `resume()` say whether the subscriber wants
// more frames now. On the main thread they pause and resume the socket. On a
// socket thread they withhold or grant credit: the thread reads on until the
// frames and bytes granted so far are spent, so at most one window of frames
// (plus the one frame being received) arrives after a pause.
import WebSocket from 'ws';
import { ownedCopy, SEQ_HEADROOM } from '../protocol/bytes.ts';
import { MAX_FRAME_BYTES } from '../protocol/events.ts';
import { classifyFrame, type FrameVerdict } from './frame-check.ts';
import type { NodeLookup } from './host-checks.ts';

/** What a socket tells its subscriber. Nothing is called after `close`. */
export interface UpstreamHandlers {
  open(): void;
  /**
   * One WebSocket message, classified. `frame` is the message's bytes in a
   * buffer of its own (with SEQ_HEADROOM free bytes before it) for an event,
   * undefined otherwise; `bytes` is the message's size either way.
   * `inPlace`: what the socket thread's in-place work made of an event
   * (socket-wire.ts InPlaceWork), passed on unread.
   */
  frame(verdict: FrameVerdict, frame: Uint8Array | undefined, bytes: number, inPlace?: unknown): void;
  pong(): void;
  /** `code` is ws's or node's error code (`WS_ERR_UNSUPPORTED_MESSAGE_LENGTH`: the message was over the limit). */
  error(code: string | undefined, message: string): void;
  close(code: number): void;
}

export interface DialOptions {
  /** The subscribeRepos URL; its host name is what the SSRF lookup resolves. */
  url: string;
  handshakeTimeoutMs: number;
  /** The SSRF-checking lookup (host-checks.ts guardedLookup). */
  lookup: NodeLookup;
}

export interface UpstreamSocket {
  /** WebSocket.CONNECTING / OPEN / CLOSING / CLOSED. */
  readonly readyState: number;
  /** Not reading: paused by the subscriber, or (socket thread) out of credit. */
  readonly isPaused: boolean;
  pause(): void;
  resume(): void;
  ping(): void;
  /** Closes at once; `close` follows. */
  terminate(): void;
  /** Where the thread reading this socket learns what its in-place work needs (absent on this thread). */
  readonly learner?: InPlaceLearner;
}

/** Teaches a socket thread's in-place work (socket-wire.ts InPlaceWork.learn). */
export interface InPlaceLearner {
  learn(did: string, payload: unknown): void;
}

/** Opens a socket; never calls a handler before it has returned. */
export type UpstreamDialer = (opts: DialOptions, handlers: UpstreamHandlers) => UpstreamSocket;

/** The options every upstream WebSocket is made with. */
function upstreamWsOptions(handshakeTimeoutMs: number, lookup: NodeLookup): WebSocket.ClientOptions {
  return {
    perMessageDeflate: false,
    maxPayload: MAX_FRAME_BYTES,
    skipUTF8Validation: true,
    handshakeTimeout: handshakeTimeoutMs,
    followRedirects: false,
    lookup,
    headers: { 'user-agent': 'atrelay' },
  } as WebSocket.ClientOptions;
}

/**
 * Reads one connection's messages: classifies each against the connection's
 * last seq and copies an event's bytes out of the socket chunk (`ws` hands
 * out small messages as views into it; an owned copy frees the chunk, keeps
 * the frame budget's count honest, and leaves SEQ_HEADROOM bytes before the
 * frame so the relay seq can be written in place: frames.ts seqWriter).
 */
class FrameReader {
  private lastSeq = -1;

  read(data: Buffer, isBinary: boolean, deliver: UpstreamHandlers['frame']): void {
    const verdict = classifyFrame(data, isBinary, this.lastSeq);
    if (verdict.kind !== 'event') {
      deliver(verdict, undefined, data.length);
      return;
    }
    this.lastSeq = verdict.seq;
    const frame = data.byteLength === data.buffer.byteLength ? data : ownedCopy(data, SEQ_HEADROOM);
    deliver(verdict, frame, data.length);
  }
}

/** Wires a `ws` client's events to the handlers. */
function attachHandlers(ws: WebSocket, handlers: UpstreamHandlers): void {
  const reader = new FrameReader();
  let closed = false;
  const frame = handlers.frame.bind(handlers);
  ws.on('open', () => handlers.open());
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    // after terminate() `ws` may still deliver the rest of the socket chunk it is parsing
    if (ws.readyState !== WebSocket.OPEN) return;
    reader.read(data, isBinary, frame);
  });
  ws.on('pong', () => handlers.pong());
  ws.on('error', (err: Error & { code?: string }) => {
    if (!closed) handlers.error(err.code, err.message.slice(0, 200));
  });
  ws.on('close', (code: number) => {
    if (closed) return;
    closed = true;
    handlers.close(code);
  });
}

/**
 * A `ws` client on the calling thread: the main-thread owner, and what a
 * socket thread runs for each connection main assigns it (socket-thread.ts).
 */
export const dialOnThisThread: UpstreamDialer = (opts, handlers) => {
  const ws = new WebSocket(opts.url, upstreamWsOptions(opts.handshakeTimeoutMs, opts.lookup));
  attachHandlers(ws, handlers);
  return {
    get readyState() {
      return ws.readyState;
    },
    get isPaused() {
      return ws.isPaused;
    },
    pause: () => ws.pause(),
    resume: () => ws.resume(),
    ping: () => {
      try {
        ws.ping();
      } catch {
        // closing already
      }
    },
    terminate: () => ws.terminate(),
  };
};
