// Event-stream frames (atproto event-stream spec): one WebSocket binary
// message = a DAG-CBOR header `{op, t}` followed by a DAG-CBOR body. op 1 is
// a message of type t (`#commit`, `#identity`, …); op -1 is an error whose
// body is `{error, message?}` and whose header has no t.
//
// The relay re-sequences every event it forwards. Decoding and re-encoding a
// 3 KB commit just to change one integer would dominate the fan-out path, so
// rewriteSeq walks the CBOR structure without building values,
// finds the top-level `seq` entry of the body and splices in the new
// canonical integer; a body without `seq` gets the entry spliced in where
// canonical key order puts it (the firehose needs a seq on every event, and
// a re-encode would not be faithful to floats). Since keys stay in place and
// the input is canonical, the result is byte-identical to a full re-encode
// (property-tested, and fuzzed by test/fuzz). The walk is the bounded,
// non-recursive scanner of cbor-scan.ts, the one CBOR head reader of the
// relay.
import { allocBytes, concatBytes } from './bytes.ts';
import { decodeCborFirst, encodeCbor } from './cbor.ts';
import { CborScanError, CborScanner, MAJOR_UINT, type ScanLimits } from './cbor-scan.ts';
import { MAX_EVENT_DEPTH, MAX_EVENT_ITEMS, MAX_FRAME_BYTES, MAX_FRAME_HEADER_BYTES } from './events.ts';

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

// Limits for walking a frame the relay already holds (decoded once, or
// checked by ingest): the event limits, so a frame that passed those checks
// is never refused here, and a frame that did not costs a bounded walk.
const HEADER_LIMITS: ScanLimits = { maxDepth: 1, maxItems: 5, maxStringBytes: MAX_FRAME_HEADER_BYTES };
const BODY_LIMITS: ScanLimits = {
  maxDepth: MAX_EVENT_DEPTH,
  maxItems: MAX_EVENT_ITEMS,
  maxStringBytes: MAX_FRAME_BYTES,
};

// Module-local copies: under tsx an imported binding is read through a getter
// on every access, and this runs for every event the relay forwards.
const Scanner = CborScanner;
const UINT = MAJOR_UINT;

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

const SEQ_KEY = Uint8Array.of(0x63, 0x73, 0x65, 0x71); // text(3) "seq"

/**
 * Where a frame's top-level `seq` value is encoded (byte offsets into the
 * frame), as ingest's one pass over the frame found it (ingest/frame-check.ts),
 * so rewriteSeq need not walk the frame again.
 */
export interface SeqSpan {
  start: number;
  end: number;
}

/** Bytes of a CBOR unsigned-integer head by its first byte (0 when it is not one). */
function uintHeadBytes(first: number): number {
  if (first >> 5 !== UINT) return 0;
  const info = first & 0x1f;
  return info < 24 ? 1 : info === 24 ? 2 : info === 25 ? 3 : info === 26 ? 5 : info === 27 ? 9 : 0;
}

/**
 * A guard on a span handed in: it must be a whole unsigned integer right
 * after a `seq` key. It came from a scan of these very bytes, so this only
 * catches a span paired with the wrong frame by mistake, which then costs
 * the walk instead of a corrupt frame.
 */
function isSeqSpan(frame: Uint8Array, span: SeqSpan): boolean {
  const { start, end } = span;
  return (
    start >= SEQ_KEY.length &&
    end <= frame.length &&
    end - start === uintHeadBytes(frame[start]) &&
    frame[start - 4] === 0x63 &&
    frame[start - 3] === 0x73 &&
    frame[start - 2] === 0x65 &&
    frame[start - 1] === 0x71
  );
}

/** Bytes of a canonical text-string head for a key of `length` bytes (keys are at most 256 here). */
function keyHeadBytes(length: number): number {
  return length < 24 ? 1 : length < 0x100 ? 2 : 3;
}

/**
 * Finds the top-level `seq` entry of the body with the bounded scanner, or
 * where one belongs in canonical key order when the body has none. Throws
 * CborScanError on a frame it cannot walk (truncated, not DAG-CBOR, over the
 * limits, body not a map).
 */
function locateSeq(frame: Uint8Array): SeqLocation {
  const header = new Scanner(frame, HEADER_LIMITS, 0, Math.min(frame.length, MAX_FRAME_HEADER_BYTES));
  const bodyStart = header.skip();
  const body = new Scanner(frame, BODY_LIMITS, bodyStart);
  // Canonical key order sorts by length first, so the walk stops at the first key that sorts after "seq".
  if (body.findMapKey('seq', true)) {
    const start = body.pos;
    if (body.peekMajor() === UINT) return { start, value: body.readUint(), end: body.pos };
    return { start, end: body.skip(), value: undefined };
  }
  // No seq. findMapKey stopped either just after a key that sorts after
  // "seq" (the scanner sits at the end of that key's bytes: the entry goes
  // before the key's head) or at the end of the map (after a value).
  const stoppedAtKey = body.keyLength > 0 && body.pos === body.keyStart + body.keyLength;
  const insertAt = stoppedAtKey ? body.keyStart - keyHeadBytes(body.keyLength) : body.pos;
  const head = new Scanner(frame, BODY_LIMITS, bodyStart);
  const entries = head.readMapHead();
  return {
    start: insertAt,
    end: insertAt,
    value: undefined,
    missing: { bodyStart, headEnd: head.pos, entries },
  };
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
 * `known`: where the seq value is, when a scan of these bytes already found
 * it (checked, and walked for again when it does not fit).
 */
export function rewriteSeq(frame: Uint8Array, seq: number, known?: SeqSpan): Uint8Array {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`invalid seq ${seq}`);
  let loc: SeqLocation;
  if (known !== undefined && isSeqSpan(frame, known)) {
    loc = { start: known.start, end: known.end, value: undefined };
  } else {
    try {
      loc = locateSeq(frame);
    } catch (err) {
      if (err instanceof CborScanError) throw new FrameError('bad-body', err.message);
      throw err;
    }
  }
  if (loc.missing) {
    decodeFrame(frame); // refuses a frame that is not whole and canonical
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
  // every byte is written below (allocBytes does not zero)
  const out = allocBytes(frame.length - (loc.end - loc.start) + value.length);
  out.set(frame.subarray(0, loc.start), 0);
  out.set(value, loc.start);
  out.set(frame.subarray(loc.end), loc.start + value.length);
  return out;
}

/**
 * A frame's re-sequencing for the event log (AppendEvent.frame): each call
 * returns the frame with `seq` as its body's seq, like rewriteSeq. With
 * `inPlace`, the caller promises nobody else holds the frame's buffer (a
 * frame moved to a worker thread and back: the view it had is detached), and
 * the seq is written into the buffer itself: when the new seq's encoding is
 * longer or shorter than the old one, the bytes before it (header, `ops`,
 * `rev`: a few hundred bytes) move by the difference into the free bytes
 * ingest left before the frame (SEQ_HEADROOM), and the rest (the CAR) stays
 * where it is. That saves an allocation and a ~3 KB copy per event on the
 * main thread. Where the room is missing (a frame `ws` allocated itself) or
 * the body has no seq, it copies, as rewriteSeq does. An append that is
 * refused and retried calls again with another seq: the writer works on
 * what its last call returned, so a repeated call is as good as the first,
 * and the view an earlier call returned is not to be used after a later one.
 */
export function seqWriter(
  frame: Uint8Array,
  known: SeqSpan | undefined,
  inPlace: boolean,
): (seq: number) => Uint8Array {
  if (!inPlace) return (seq) => rewriteSeq(frame, seq, known);
  let current = frame;
  let span = known;
  return (seq) => {
    const written =
      span !== undefined && isSeqSpan(current, span) ? writeSeqInPlace(current, span, seq) : undefined;
    if (written === undefined) {
      // no room before the frame, a span that does not fit, or an invalid seq (rewriteSeq throws)
      current = rewriteSeq(current, seq, span);
      span = undefined;
    } else {
      current = written.frame;
      span = written.span;
    }
    return current;
  };
}

/**
 * Writes `seq` over the seq value at `span` inside the frame's own buffer,
 * moving the bytes before it by the change in width (seqWriter). Undefined,
 * with nothing written, when the seq is not a safe unsigned integer or there
 * are fewer free bytes before the frame than the new encoding needs.
 */
function writeSeqInPlace(
  frame: Uint8Array,
  span: SeqSpan,
  seq: number,
): { frame: Uint8Array; span: SeqSpan } | undefined {
  if (!Number.isSafeInteger(seq) || seq < 0) return undefined;
  const { start, end } = span;
  const value = encodeUint(seq);
  const delta = value.length - (end - start);
  const offset = frame.byteOffset;
  if (delta > offset) return undefined;
  const whole = new Uint8Array(frame.buffer, 0, offset + frame.byteLength);
  const moved = offset - delta;
  if (delta !== 0) whole.copyWithin(moved, offset, offset + start);
  whole.set(value, moved + start);
  return { frame: whole.subarray(moved), span: { start, end: start + value.length } };
}

/** The body's top-level `seq` if it is an unsigned integer; undefined otherwise or on malformed input. */
export function readFrameSeq(frame: Uint8Array): number | undefined {
  try {
    return locateSeq(frame).value;
  } catch {
    return undefined;
  }
}
