// The messages between the main thread and a socket thread
// (socket-threads.ts on main, socket-thread.ts in the worker). Each message
// is one flat array of records, a record being an opcode, a connection id and
// the opcode's fixed number of fields: one array per event-loop turn and
// direction, with no object per record, so a structured clone writes no
// property names and the receiver allocates nothing it does not keep.
import type { MessagePort } from 'node:worker_threads';

/** Main → thread. */
export const CMD_DIAL = 0; // id, url, address, family, handshakeTimeoutMs, frames, bytes
export const CMD_CREDIT = 1; // id, frames, bytes
export const CMD_PING = 2; // id
export const CMD_TERMINATE = 3; // id
/** Something the thread's in-place work learns (InPlaceWork.learn): 0, did, payload. */
export const CMD_LEARN = 4;

/** Fields after the opcode, by command. */
export const CMD_FIELDS = [7, 3, 1, 1, 3] as const;

/** Thread → main. */
export const EV_OPEN = 0; // id
/**
 * An event frame: id, frame (moved), type, seq, seqSpan start, seqSpan end,
 * did, wire bytes, what the in-place work made of it (or null). (Its metrics
 * label is its type: only the current types are events.)
 */
export const EV_EVENT = 1;
/** Any other message (info, error frame, bad): id, verdict (a small object), wire bytes. */
export const EV_OTHER = 2;
export const EV_PONG = 3; // id
export const EV_ERROR = 4; // id, code (string or null), message
export const EV_CLOSE = 5; // id, close code

/** Fields after the opcode, by event. */
export const EV_FIELDS = [1, 9, 3, 1, 3, 2] as const;

/**
 * Work the thread hosting the sockets does on each event frame before it
 * goes to main (the verify workers: signature and proof checks,
 * validate/in-place.ts). Ingest passes its results through without reading
 * them.
 */
export interface InPlaceWork {
  /** A CMD_LEARN from main (an account's signing key). */
  learn(did: string, payload: unknown): void;
  /** What to send with this event frame (null: nothing). Must not throw. */
  onEvent(type: string, did: string, frame: Uint8Array): unknown;
}

/** The first message a socket thread receives: the port its sockets are driven through. */
export interface SocketPortMessage {
  socketPort: MessagePort;
  /** The maximum rev skew for in-place verification (validate/in-place.ts). */
  maxRevSkewMs: number;
}

export function isSocketPortMessage(msg: unknown): msg is SocketPortMessage {
  return typeof msg === 'object' && msg !== null && 'socketPort' in msg;
}
