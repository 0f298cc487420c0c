// Event frames with the sequence number filled in at send time. A PDS only
// learns an event's `seq` when it emits it, but encoding a #commit body (with
// its CAR of blocks) is the expensive part, and the simulator wants to encode
// bodies ahead of time (pre-generation is how one process sustains tens of
// thousands of events per second). DAG-CBOR orders map keys canonically
// (length, then bytes), so a body is encoded once as "everything before the
// `seq` entry" and "everything after it"; sealing a frame is then one copy
// with the varint-sized seq in between. The result is byte-identical to
// encoding the whole body with the seq included.

import { concatBytes } from '../src/protocol/bytes.ts';
import { encodeCbor } from '../src/protocol/cbor.ts';

export type EventType = '#commit' | '#sync' | '#identity' | '#account';

export interface PreparedFrame {
  t: EventType;
  did: string;
  /** frame header + body map header + body entries whose keys sort before "seq" */
  before: Uint8Array;
  /** body entries whose keys sort after "seq" */
  after: Uint8Array;
  /** The whole frame, sealed ahead for `seq` (presealFrame). */
  sealed?: { seq: number; bytes: Uint8Array };
}

function compareKeys(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** CBOR head (major type + argument), minimal length as DAG-CBOR requires. */
export function cborHead(major: number, n: number): Uint8Array {
  const m = major << 5;
  if (n < 24) return Uint8Array.of(m | n);
  if (n < 0x100) return Uint8Array.of(m | 24, n);
  if (n < 0x10000) return Uint8Array.of(m | 25, n >> 8, n & 0xff);
  if (n < 0x100000000) return Uint8Array.of(m | 26, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  const hi = Math.floor(n / 0x100000000);
  const lo = n >>> 0;
  return Uint8Array.of(
    m | 27,
    hi >>> 24,
    (hi >> 16) & 0xff,
    (hi >> 8) & 0xff,
    hi & 0xff,
    lo >>> 24,
    (lo >> 16) & 0xff,
    (lo >> 8) & 0xff,
    lo & 0xff,
  );
}

const SEQ_KEY = encodeCbor('seq');

/** Encodes a message frame (`{op: 1, t}` + body) leaving the body's `seq` to be filled in by sealFrame. */
export function prepareFrame(t: EventType, did: string, body: Record<string, unknown>): PreparedFrame {
  const keys = Object.keys(body)
    .filter((k) => k !== 'seq' && body[k] !== undefined)
    .sort(compareKeys);
  const before: Uint8Array[] = [encodeCbor({ op: 1, t }), cborHead(5, keys.length + 1)];
  const after: Uint8Array[] = [];
  for (const k of keys) {
    const out = compareKeys(k, 'seq') < 0 ? before : after;
    out.push(encodeCbor(k), encodeCbor(body[k]));
  }
  return { t, did, before: concatBytes(before), after: concatBytes(after) };
}

/**
 * The frame bytes for a prepared event at sequence number `seq`: the bytes
 * presealFrame made when it was sealed ahead for this very seq, or a fresh
 * copy with the seq in place.
 */
export function sealFrame(p: PreparedFrame, seq: number): Uint8Array {
  if (p.sealed !== undefined && p.sealed.seq === seq) return p.sealed.bytes;
  const seqBytes = cborHead(0, seq);
  const out = new Uint8Array(p.before.length + SEQ_KEY.length + seqBytes.length + p.after.length);
  out.set(p.before, 0);
  let off = p.before.length;
  out.set(SEQ_KEY, off);
  off += SEQ_KEY.length;
  out.set(seqBytes, off);
  off += seqBytes.length;
  out.set(p.after, off);
  return out;
}

/**
 * Seals a queued frame ahead of time for the seq it is expected to get
 * (queued events leave in order, so a PDS knows it), so publishing it later
 * copies and allocates nothing: at tens of thousands of events per second the
 * simulator's own allocation and GC competed with the relay for the same
 * cores. `before`/`after` become views of the sealed bytes (no second copy
 * kept), so if the guess turns out wrong sealFrame still builds the right one.
 */
export function presealFrame(p: PreparedFrame, seq: number): void {
  const bytes = sealFrame(p, seq);
  p.before = bytes.subarray(0, p.before.length);
  p.after = bytes.subarray(bytes.length - p.after.length);
  p.sealed = { seq, bytes };
}
