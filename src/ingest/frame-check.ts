// The structural check ingest makes on every upstream frame before anything
// else sees it, in one linear pass with the bounded scanner
// (protocol/cbor-scan.ts), building no values:
//
// 1. Header first, within its first MAX_FRAME_HEADER_BYTES (1 KB): a map of
//    `op` (1 or -1) and `t` (text, at most 64 bytes; required for op 1,
//    absent for op -1) and nothing else. A megabyte of nesting where the
//    header should be costs a few heads, not a recursive decode.
// 2. Size by type: #identity, #account, #sync, #info and error frames are
//    small by nature (MAX_SMALL_FRAME_BYTES, 64 KB); #commit may use the
//    whole 5 MB.
// 3. Body: exactly one map of strict DAG-CBOR heads, nothing after it,
//    nested at most MAX_EVENT_DEPTH deep and at most MAX_EVENT_ITEMS items
//    (the scan stops at either limit, so a hostile body costs at most that
//    many heads whatever its size), every top-level key at most
//    MAX_FRAME_KEY_BYTES (256) bytes. A body with a longer top-level key is
//    valid DAG-CBOR but is dropped here (`key-too-long`): no lexicon field
//    comes near that length, and the limit keeps key comparison and logging
//    bounded. Keys inside nested values are bounded only by the item and
//    depth limits. On the way it reads the top-level `seq` and, for the four
//    event types, the account DID (`repo` of #commit, `did` otherwise), which
//    must be DID syntax of at most 2 KB.
//
// Only frames that pass reach the worker pool or the main-thread decode of
// #identity/#account, so both decode bounded input. The check matters for
// correctness too: a frame cut short still carries its real seq near the
// front, and handing it on would advance the connection's seq so that the
// intact copy that follows is dropped as a duplicate.
//
// readControlBody reads the `error`/`name` and `message` of an error or #info
// frame with the same scanner, keeping at most a short prefix of each.
// classifyFrame puts the rules together: what a subscriber is to do with one
// WebSocket message (hand on an event, log an #info, obey an error frame, or
// drop it as bad with a reason).
import { CborScanError, CborScanner, MAJOR_NEGINT, MAJOR_TEXT, MAJOR_UINT } from '../protocol/cbor-scan.ts';
import {
  MAX_DID_LENGTH,
  MAX_EVENT_DEPTH,
  MAX_EVENT_ITEMS,
  MAX_FRAME_BYTES,
  MAX_FRAME_HEADER_BYTES,
  MAX_FRAME_KEY_BYTES,
  MAX_FRAME_TYPE_BYTES,
  MAX_INFO_MESSAGE_LENGTH,
  MAX_INFO_NAME_LENGTH,
  MAX_SMALL_FRAME_BYTES,
} from '../protocol/events.ts';
import type { SeqSpan } from '../protocol/frames.ts';
import { isValidDid } from '../protocol/syntax.ts';

/** The event types handed on to validation. */
export const CURRENT_TYPES: ReadonlySet<string> = new Set(['#commit', '#sync', '#identity', '#account']);
/** Types no longer emitted; relays drop them. */
export const DEPRECATED_TYPES: ReadonlySet<string> = new Set(['#handle', '#migrate', '#tombstone']);

/** Why a frame failed the check (each is a drop reason in the ingest metrics). */
export type FrameCheckFailure =
  | 'bad-header'
  | 'too-large'
  | 'malformed'
  | 'too-deep'
  | 'too-many-items'
  /** A top-level body key longer than MAX_FRAME_KEY_BYTES (valid CBOR, over the relay's limit). */
  | 'key-too-long';

export type FrameCheck =
  | {
      ok: true;
      op: 1;
      t: string;
      /** The body's top-level `seq` if it is an unsigned integer. */
      seq: number | undefined;
      /** Where that seq's encoding is, for rewriteSeq (protocol/frames.ts). */
      seqSpan: SeqSpan | undefined;
      /**
       * For #commit/#sync/#identity/#account: the account DID when it is a
       * text string of valid DID syntax (at most 2 KB); undefined otherwise.
       */
      did: string | undefined;
      bodyStart: number;
    }
  | { ok: true; op: -1; bodyStart: number }
  | { ok: false; reason: FrameCheckFailure; detail: string };

/** Message types that carry an account DID, and the field it is in. */
const DID_FIELD: ReadonlyMap<string, string> = new Map([
  ['#commit', 'repo'],
  ['#sync', 'did'],
  ['#identity', 'did'],
  ['#account', 'did'],
]);

const HEADER_LIMITS = { maxDepth: 1, maxItems: 5, maxStringBytes: MAX_FRAME_TYPE_BYTES };
const BODY_LIMITS = { maxDepth: MAX_EVENT_DEPTH, maxItems: MAX_EVENT_ITEMS, maxStringBytes: MAX_FRAME_BYTES };

/** Largest frame accepted for a message type (op -1: an error frame). */
export function maxFrameBytes(op: 1 | -1, t: string | undefined): number {
  return op === 1 && t === '#commit' ? MAX_FRAME_BYTES : MAX_SMALL_FRAME_BYTES;
}

function failure(err: unknown, where: 'header' | 'body'): FrameCheck {
  if (!(err instanceof CborScanError)) throw err;
  if (where === 'header') return { ok: false, reason: 'bad-header', detail: err.message };
  const reason: FrameCheckFailure =
    err.reason === 'too-deep' ? 'too-deep' : err.reason === 'too-many-items' ? 'too-many-items' : 'malformed';
  return { ok: false, reason, detail: err.message };
}

export function checkFrame(frame: Uint8Array): FrameCheck {
  // 1. header
  const h = new CborScanner(frame, HEADER_LIMITS, 0, Math.min(frame.length, MAX_FRAME_HEADER_BYTES));
  let op: 1 | -1 | undefined;
  let t: string | undefined;
  let bodyStart: number;
  try {
    let fields = 0;
    h.forEachMapEntry((s) => {
      fields++;
      if (s.keyIs('op') && op === undefined) {
        const major = s.head();
        if (major === MAJOR_UINT && s.arg === 1) op = 1;
        else if (major === MAJOR_NEGINT && s.arg === 0) op = -1;
        else s.fail('unexpected-type', 'op is neither 1 nor -1');
      } else if (s.keyIs('t') && t === undefined) {
        if (s.peekMajor() !== MAJOR_TEXT) s.fail('unexpected-type', 't is not a text string');
        t = s.readText(MAX_FRAME_TYPE_BYTES);
      } else {
        s.fail('unexpected-type', 'header field other than op and t');
      }
    });
    if (op === undefined || fields !== (op === 1 ? 2 : 1) || (op === 1 && !t)) {
      return { ok: false, reason: 'bad-header', detail: 'header is not {op: 1, t} or {op: -1}' };
    }
    bodyStart = h.pos;
  } catch (err) {
    return failure(err, 'header');
  }
  // 2. size by type
  const max = maxFrameBytes(op, t);
  if (frame.length > max) {
    return {
      ok: false,
      reason: 'too-large',
      detail: `${t ?? 'error frame'} of ${frame.length} bytes (max ${max})`,
    };
  }
  // 3. body
  const didField = op === 1 ? DID_FIELD.get(t!) : undefined;
  let seq: number | undefined;
  let seqSpan: SeqSpan | undefined;
  let did: string | undefined;
  let longKey = 0;
  try {
    const s = new CborScanner(frame, BODY_LIMITS, bodyStart);
    // keys of any length are read (within the frame), then refused here by name
    s.forEachMapEntry((v) => {
      if (v.keyLength > MAX_FRAME_KEY_BYTES) {
        longKey = v.keyLength;
        return false;
      }
      if (v.keyIs('seq')) {
        if (v.peekMajor() === MAJOR_UINT) {
          const start = v.pos;
          seq = v.readUint();
          seqSpan = { start, end: v.pos };
        }
      } else if (didField !== undefined && v.keyIs(didField)) {
        if (v.peekMajor() !== MAJOR_TEXT) return;
        const { text, truncated } = v.readTextPrefix(MAX_DID_LENGTH);
        if (!truncated && isValidDid(text)) did = text;
      }
    }, MAX_FRAME_BYTES);
    if (longKey > 0) {
      return {
        ok: false,
        reason: 'key-too-long',
        detail: `top-level key of ${longKey} bytes is longer than ${MAX_FRAME_KEY_BYTES}`,
      };
    }
    if (!s.atEnd()) return { ok: false, reason: 'malformed', detail: 'bytes after the body' };
  } catch (err) {
    return failure(err, 'body');
  }
  if (op === -1) return { ok: true, op: -1, bodyStart };
  return { ok: true, op: 1, t: t!, seq, seqSpan, did, bodyStart };
}

/** The text an error frame (`error`) or #info frame (`name`) carries, short enough to log. */
export interface ControlBody {
  name: string | undefined;
  message: string | undefined;
}

/**
 * Reads the name (`error` of an error frame, `name` of #info) and `message`
 * of a body that passed checkFrame, keeping at most 128 and 1,024 bytes of
 * them (cut at a character boundary, "…" appended). Never throws.
 */
export function readControlBody(
  frame: Uint8Array,
  bodyStart: number,
  nameField: 'error' | 'name',
): ControlBody {
  const out: ControlBody = { name: undefined, message: undefined };
  try {
    new CborScanner(frame, BODY_LIMITS, bodyStart).forEachMapEntry((v) => {
      const isName = v.keyIs(nameField);
      if ((!isName && !v.keyIs('message')) || v.peekMajor() !== MAJOR_TEXT) return;
      const { text, truncated } = v.readTextPrefix(isName ? MAX_INFO_NAME_LENGTH : MAX_INFO_MESSAGE_LENGTH);
      if (isName) out.name = truncated ? `${text}…` : text;
      else out.message = truncated ? `${text}…` : text;
    });
  } catch {
    // checked already; whatever was read before a surprise is kept
  }
  return out;
}

/** Why a frame is dropped as bad (the ingest drop reasons, error frames aside). */
export type BadFrameReason =
  | FrameCheckFailure
  | 'not-binary'
  | 'bad-did'
  | 'no-seq'
  | 'seq-not-increasing'
  | 'deprecated-type'
  | 'unknown-type';

export type FrameVerdict = (
  | { kind: 'event'; type: string; seq: number; seqSpan: SeqSpan; did: string }
  | { kind: 'info'; info: ControlBody }
  | { kind: 'error'; error: ControlBody }
  | { kind: 'bad'; reason: BadFrameReason }
) & {
  /**
   * The message type as a metrics label when the header was readable: a
   * known type's name, or "other" (upstream chooses `t`, so only known names
   * become label values and a host cannot grow the series).
   */
  label?: string;
};

function typeLabel(t: string): string {
  return CURRENT_TYPES.has(t) || DEPRECATED_TYPES.has(t) || t === '#info' ? t : 'other';
}

/**
 * What to do with one upstream WebSocket message, given the last seq handed
 * on from this connection: an event of a current type with a valid DID and a
 * seq above `lastSeq`, an #info, an error frame, or a bad frame with its
 * reason.
 */
export function classifyFrame(data: Uint8Array, isBinary: boolean, lastSeq: number): FrameVerdict {
  if (!isBinary) return { kind: 'bad', reason: 'not-binary' };
  if (data.length > MAX_FRAME_BYTES) return { kind: 'bad', reason: 'too-large' };
  const checked = checkFrame(data);
  if (!checked.ok) return { kind: 'bad', reason: checked.reason };
  if (checked.op === -1) return { kind: 'error', error: readControlBody(data, checked.bodyStart, 'error') };
  const type = checked.t;
  const label = typeLabel(type);
  if (type === '#info')
    return { kind: 'info', info: readControlBody(data, checked.bodyStart, 'name'), label };
  if (DEPRECATED_TYPES.has(type)) return { kind: 'bad', reason: 'deprecated-type', label };
  if (!CURRENT_TYPES.has(type)) return { kind: 'bad', reason: 'unknown-type', label };
  if (checked.did === undefined) return { kind: 'bad', reason: 'bad-did', label };
  if (checked.seq === undefined || checked.seqSpan === undefined)
    return { kind: 'bad', reason: 'no-seq', label };
  if (checked.seq <= lastSeq) return { kind: 'bad', reason: 'seq-not-increasing', label };
  return { kind: 'event', type, seq: checked.seq, seqSpan: checked.seqSpan, did: checked.did, label };
}
