// The cheap structural check ingest makes on every upstream frame before it
// is handed on: the header decodes to `{op, t}`, and the body is exactly one
// well-formed CBOR map (definite lengths, every length inside the buffer,
// nothing after it) whose top-level `seq` is read on the way. It builds no
// values, so it costs a linear scan, not a decode; full validation is the
// next stage's job. It matters for correctness, not just hygiene: a frame
// cut short still carries its real seq near the front, and handing it on
// would advance the connection's seq so that the intact copy that follows
// is dropped as a duplicate.
import { decodeCborFirst } from '../protocol/cbor.ts';

export type FrameCheck =
  | { ok: true; op: 1; t: string; seq: number | undefined; bodyStart: number }
  | { ok: true; op: -1; bodyStart: number }
  | { ok: false };

class Truncated extends Error {}

/** Reads a CBOR head at pos; returns [major, argument, next position]. Throws on indefinite/reserved. */
function head(buf: Uint8Array, pos: number): [number, number, number] {
  if (pos >= buf.length) throw new Truncated();
  const initial = buf[pos++];
  const major = initial >> 5;
  const info = initial & 0x1f;
  if (info < 24) return [major, info, pos];
  const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
  if (n === 0) throw new Truncated(); // indefinite length or reserved: not DAG-CBOR
  if (pos + n > buf.length) throw new Truncated();
  let arg = 0;
  for (let i = 0; i < n; i++) arg = arg * 256 + buf[pos + i];
  return [major, arg, pos + n];
}

/** Skips one complete value; returns the position after it. */
function skip(buf: Uint8Array, start: number): number {
  let pos = start;
  let remaining = 1;
  while (remaining > 0) {
    remaining--;
    const [major, arg, next] = head(buf, pos);
    pos = next;
    if (major === 2 || major === 3) {
      if (arg > buf.length - pos) throw new Truncated();
      pos += arg;
    } else if (major === 4) remaining += arg;
    else if (major === 5) remaining += arg * 2;
    else if (major === 6) remaining += 1;
    if (remaining > buf.length) throw new Truncated(); // more items announced than bytes left
  }
  return pos;
}

export function checkFrame(frame: Uint8Array): FrameCheck {
  let header: unknown;
  let rest: Uint8Array;
  try {
    [header, rest] = decodeCborFirst(frame);
  } catch {
    return { ok: false };
  }
  const h = header as { op?: unknown; t?: unknown } | null;
  if (!h || typeof h !== 'object') return { ok: false };
  const bodyStart = frame.length - rest.length;
  try {
    const [major, entries, afterHead] = head(frame, bodyStart);
    if (major !== 5) return { ok: false };
    let pos = afterHead;
    let seq: number | undefined;
    for (let i = 0; i < entries; i++) {
      const [kMajor, kLen, kPos] = head(frame, pos);
      if (kMajor !== 3 || kLen > frame.length - kPos) return { ok: false };
      const isSeq =
        kLen === 3 && frame[kPos] === 0x73 && frame[kPos + 1] === 0x65 && frame[kPos + 2] === 0x71;
      pos = kPos + kLen;
      if (isSeq && frame[pos] >> 5 === 0) {
        const [, value, next] = head(frame, pos);
        seq = Number.isSafeInteger(value) ? value : undefined;
        pos = next;
      } else {
        pos = skip(frame, pos);
      }
    }
    if (pos !== frame.length) return { ok: false };
    if (h.op === -1) return { ok: true, op: -1, bodyStart };
    if (h.op !== 1 || typeof h.t !== 'string') return { ok: false };
    return { ok: true, op: 1, t: h.t, seq, bodyStart };
  } catch {
    return { ok: false };
  }
}
