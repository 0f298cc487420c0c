// Event-stream frames (atproto event-stream spec): one WebSocket binary
// message = a DAG-CBOR header `{op, t}` followed by a DAG-CBOR body. op 1 is
// a message of type t (`#commit`, `#identity`, …); op -1 is an error whose
// body is `{error, message?}` and whose header has no t.
//
// The relay re-sequences every event it forwards. Decoding and re-encoding a
// 3 KB commit just to change one integer would dominate the fan-out path, so
// rewriteSeq walks the CBOR structure without building values (skipValue),
// finds the top-level `seq` entry of the body and splices in the new
// canonical integer; a body without `seq` gets the entry spliced in where
// canonical key order puts it (the firehose needs a seq on every event, and
// a re-encode would not be faithful to floats). Since keys stay in place and
// the input is canonical, the result is byte-identical to a full re-encode
// (property-tested, and fuzzed by test/fuzz).
import { concatBytes } from './bytes.ts';
import { decodeCborFirst, encodeCbor } from './cbor.ts';

export type FrameErrorReason = 'bad-header' | 'bad-body' | 'trailing-bytes';

export class FrameError extends Error {
  constructor(
    readonly reason: FrameErrorReason,
    message: string,
  ) {
    super(`invalid frame (${reason}): ${message}`);
    this.name = 'FrameError';
  }
}

export type FrameHeader = { op: 1; t: string } | { op: -1 };

export interface Frame {
  header: FrameHeader;
  body: Record<string, unknown>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

function checkHeader(h: unknown): FrameHeader {
  if (!isPlainObject(h)) throw new FrameError('bad-header', 'header is not a map');
  const keys = Object.keys(h);
  if (h.op === 1) {
    if (typeof h.t !== 'string' || h.t.length === 0)
      throw new FrameError('bad-header', 'op 1 needs a string t');
    if (keys.length !== 2) throw new FrameError('bad-header', 'unexpected header fields');
    return { op: 1, t: h.t };
  }
  if (h.op === -1) {
    if (keys.length !== 1) throw new FrameError('bad-header', 'unexpected header fields in error frame');
    return { op: -1 };
  }
  throw new FrameError('bad-header', `unknown op ${String(h.op)}`);
}

/** Decodes a frame strictly: canonical DAG-CBOR, known header shape, map body, nothing after the body. */
export function decodeFrame(bytes: Uint8Array): Frame {
  let headerValue: unknown;
  let rest: Uint8Array;
  try {
    [headerValue, rest] = decodeCborFirst(bytes);
  } catch (e) {
    throw new FrameError('bad-header', (e as Error).message);
  }
  const header = checkHeader(headerValue);
  if (rest.length === 0) throw new FrameError('bad-body', 'frame has no body');
  let body: unknown;
  let trailing: Uint8Array;
  try {
    [body, trailing] = decodeCborFirst(rest);
  } catch (e) {
    throw new FrameError('bad-body', (e as Error).message);
  }
  if (trailing.length !== 0)
    throw new FrameError('trailing-bytes', `${trailing.length} bytes after the body`);
  if (!isPlainObject(body)) throw new FrameError('bad-body', 'body is not a map');
  if (header.op === -1 && typeof body.error !== 'string') {
    throw new FrameError('bad-body', 'error frame body needs a string error');
  }
  return { header, body };
}

/** Encodes an op-1 frame of type `t` (e.g. `#commit`). */
export function encodeFrame(t: string, body: object): Uint8Array {
  return concatBytes([encodeCbor({ op: 1, t }), encodeCbor(body)]);
}

const ERROR_HEADER = encodeCbor({ op: -1 });

/** Encodes an error frame (op -1, body `{error, message?}`). */
export function encodeErrorFrame(error: string, message?: string): Uint8Array {
  return concatBytes([ERROR_HEADER, encodeCbor({ error, message })]);
}

/** Encodes an `#info` frame (body `{name, message?}`), e.g. `OutdatedCursor`. */
export function encodeInfoFrame(name: string, message?: string): Uint8Array {
  return encodeFrame('#info', { name, message });
}

// --- structural walking, no values built ---

function truncated(): never {
  throw new FrameError('bad-body', 'truncated CBOR');
}

// Reads a CBOR head at pos[0]; returns its argument and leaves the position
// after the head in pos[0]. Callers read the major type from the first byte.
function readHead(buf: Uint8Array, pos: number[]): number {
  let p = pos[0];
  if (p >= buf.length) truncated();
  const initial = buf[p++];
  const major = initial >> 5;
  const info = initial & 0x1f;
  let arg: number;
  if (info < 24) arg = info;
  else if (info === 24) {
    if (p + 1 > buf.length) truncated();
    arg = buf[p];
    p += 1;
  } else if (info === 25) {
    if (p + 2 > buf.length) truncated();
    arg = (buf[p] << 8) | buf[p + 1];
    p += 2;
  } else if (info === 26) {
    if (p + 4 > buf.length) truncated();
    arg = ((buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]) >>> 0;
    p += 4;
  } else if (info === 27) {
    if (p + 8 > buf.length) truncated();
    const hi = ((buf[p] << 24) | (buf[p + 1] << 16) | (buf[p + 2] << 8) | buf[p + 3]) >>> 0;
    const lo = ((buf[p + 4] << 24) | (buf[p + 5] << 16) | (buf[p + 6] << 8) | buf[p + 7]) >>> 0;
    // float64 (major 7) carries raw bits; only integers must stay in range.
    arg = major === 7 ? 0 : hi * 2 ** 32 + lo;
    if (major !== 7 && hi > 0x1fffff) throw new FrameError('bad-body', 'integer beyond safe range');
    p += 8;
  } else {
    throw new FrameError('bad-body', 'indefinite length or reserved encoding');
  }
  pos[0] = p;
  return arg;
}

/** Skips one complete CBOR value starting at `start`; returns the end position. */
function skipValue(buf: Uint8Array, start: number): number {
  const pos = [start];
  let remaining = 1;
  while (remaining > 0) {
    remaining--;
    const major = buf[pos[0]] >> 5;
    const arg = readHead(buf, pos);
    switch (major) {
      case 2:
      case 3:
        if (arg > buf.length - pos[0]) truncated();
        pos[0] += arg;
        break;
      case 4:
        remaining += arg;
        break;
      case 5:
        remaining += arg * 2;
        break;
      case 6:
        remaining += 1;
        break;
    }
  }
  return pos[0];
}

interface SeqLocation {
  /** Start and end of the seq value's encoding (equal when the body has no seq). */
  start: number;
  end: number;
  /** The value if it is an unsigned integer. */
  value: number | undefined;
  /**
   * Set when the body has no seq: `start` is where a `seq` entry belongs in
   * canonical key order, and the body's map head (bodyStart..headEnd) counts
   * `entries`.
   */
  missing?: { bodyStart: number; headEnd: number; entries: number };
}

// 'seq' sorts after this key in canonical order (length first, then bytes).
function sortsBeforeSeq(frame: Uint8Array, p: number, keyLength: number): boolean {
  if (keyLength !== 3) return keyLength < 3;
  for (let i = 0; i < 3; i++) {
    const d = frame[p + i] - SEQ_KEY[i + 1];
    if (d !== 0) return d < 0;
  }
  return false;
}

const SEQ_KEY = Uint8Array.of(0x63, 0x73, 0x65, 0x71); // text(3) "seq"

// Finds the top-level `seq` entry of the body, or where it belongs if the body has none.
function locateSeq(frame: Uint8Array): SeqLocation {
  const bodyStart = skipValue(frame, 0);
  const pos = [bodyStart];
  const entries = readHead(frame, pos);
  if (frame[bodyStart] >> 5 !== 5) throw new FrameError('bad-body', 'body is not a map');
  const headEnd = pos[0];
  for (let i = 0; i < entries; i++) {
    const keyStart = pos[0];
    const keyLength = readHead(frame, pos);
    const p = pos[0];
    if (frame[keyStart] >> 5 !== 3) throw new FrameError('bad-body', 'map key is not a string');
    if (p + keyLength > frame.length) truncated();
    pos[0] = p + keyLength;
    const isSeq =
      keyLength === 3 &&
      frame[keyStart] === 0x63 &&
      frame[p] === 0x73 &&
      frame[p + 1] === 0x65 &&
      frame[p + 2] === 0x71;
    if (isSeq) {
      const start = pos[0];
      const isUint = frame[start] >> 5 === 0;
      const value = readHead(frame, pos);
      const end = isUint ? pos[0] : skipValue(frame, start);
      return { start, end, value: isUint ? value : undefined };
    }
    // Canonical order: past a key that sorts after 'seq' there is no seq.
    if (!sortsBeforeSeq(frame, p, keyLength)) {
      return { start: keyStart, end: keyStart, value: undefined, missing: { bodyStart, headEnd, entries } };
    }
    pos[0] = skipValue(frame, pos[0]);
  }
  return { start: pos[0], end: pos[0], value: undefined, missing: { bodyStart, headEnd, entries } };
}

function encodeUint(n: number): Uint8Array {
  if (n < 24) return new Uint8Array([n]);
  if (n < 0x100) return new Uint8Array([0x18, n]);
  if (n < 0x10000) return new Uint8Array([0x19, n >> 8, n & 0xff]);
  if (n < 0x100000000) return new Uint8Array([0x1a, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  const hi = Math.floor(n / 2 ** 32);
  const lo = n >>> 0;
  return new Uint8Array([
    0x1b,
    hi >>> 24,
    (hi >>> 16) & 0xff,
    (hi >>> 8) & 0xff,
    hi & 0xff,
    lo >>> 24,
    (lo >>> 16) & 0xff,
    (lo >>> 8) & 0xff,
    lo & 0xff,
  ]);
}

/**
 * Returns a copy of `frame` whose body `seq` is `seq`, byte-identical to
 * decoding, setting seq and re-encoding. The input must be a canonical frame
 * (e.g. one that passed decodeFrame). A body without `seq` gets one inserted
 * in canonical key order (the map head's count grows by one), after a full
 * decode that refuses a frame that is not whole and canonical (FrameError);
 * the other entries are copied, never re-encoded: a re-encode would write a
 * float64 such as 1.0 back as an integer, and throw (RangeError, not
 * FrameError) on one such as 1e300 (found by the fuzz suite, issue 12).
 */
export function rewriteSeq(frame: Uint8Array, seq: number): Uint8Array {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`invalid seq ${seq}`);
  const loc = locateSeq(frame);
  if (loc.missing) {
    decodeFrame(frame);
    const { bodyStart, headEnd, entries } = loc.missing;
    const mapHead = encodeUint(entries + 1);
    mapHead[0] |= 0xa0; // major type 5 (map), same argument encoding
    return concatBytes([
      frame.subarray(0, bodyStart),
      mapHead,
      frame.subarray(headEnd, loc.start),
      SEQ_KEY,
      encodeUint(seq),
      frame.subarray(loc.start),
    ]);
  }
  const value = encodeUint(seq);
  const out = new Uint8Array(frame.length - (loc.end - loc.start) + value.length);
  out.set(frame.subarray(0, loc.start), 0);
  out.set(value, loc.start);
  out.set(frame.subarray(loc.end), loc.start + value.length);
  return out;
}

/** The body's top-level `seq` if it is an unsigned integer; undefined otherwise or on malformed input. */
export function readFrameSeq(frame: Uint8Array): number | undefined {
  try {
    return locateSeq(frame).value;
  } catch {
    return undefined;
  }
}
