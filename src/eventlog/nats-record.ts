// The JetStream event log's message format (nats-log.ts): what is stored per
// event and the message id that deduplicates it. Kept apart from the log's
// mechanics so the format is in one place.
//
// Stored payload: a 36-byte little-endian prefix, then the wire frame (built
// with a provisional seq; readers rewrite it to the stream sequence).
//   0 u8 version (1) · 1 u8 0 · 2 u16 kind · 4 u16 flags · 6 u16 0 ·
//   8 u64 uid · 16 u32 origin host · 20 u64 origin seq · 28 u32 writer id ·
//   32 u32 writer counter
import { rewriteSeq } from '../protocol/frames.ts';
import type { AppendEvent, LogRecord } from './types.ts';

const PREFIX_BYTES = 36;
const PREFIX_VERSION = 1;

/** The message id that makes a publish idempotent (see the file comment). */
export function messageId(event: AppendEvent, indexInOrigin: number): string | undefined {
  const m = event.meta;
  if (m && (m.type === '#commit' || m.type === '#sync') && m.rev) return `${m.type}:${m.did}:${m.rev}`;
  const o = event.origin;
  if (o) return `o:${o.hostId}:${o.seq}:${indexInOrigin}`;
  return undefined;
}

export function encodePayload(
  event: AppendEvent,
  frame: Uint8Array,
  writerId: number,
  counter: number,
): Uint8Array {
  const out = Buffer.allocUnsafe(PREFIX_BYTES + frame.byteLength);
  out.fill(0, 0, PREFIX_BYTES);
  out.writeUInt8(PREFIX_VERSION, 0);
  out.writeUInt16LE(event.kind, 2);
  out.writeUInt16LE(event.flags ?? 0, 4);
  out.writeBigUInt64LE(BigInt(event.uid), 8);
  if (event.origin) {
    out.writeUInt32LE(event.origin.hostId, 16);
    out.writeBigUInt64LE(BigInt(event.origin.seq), 20);
  }
  out.writeUInt32LE(writerId, 28);
  out.writeUInt32LE(counter, 32);
  out.set(frame, PREFIX_BYTES);
  return out;
}

/** The log record of a stream message, its frame's seq set to the stream sequence; undefined if malformed. */
export function decodeRecord(data: Uint8Array, seq: number, time: number): LogRecord | undefined {
  if (data.byteLength <= PREFIX_BYTES || data[0] !== PREFIX_VERSION) return undefined;
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const uid = Number(b.readBigUInt64LE(8));
  const originHost = b.readUInt32LE(16);
  const originSeq = Number(b.readBigUInt64LE(20));
  let frame: Uint8Array;
  try {
    frame = rewriteSeq(data.subarray(PREFIX_BYTES), seq);
  } catch {
    // not a frame with a seq (tests store opaque bytes): kept as written
    frame = data.slice(PREFIX_BYTES);
  }
  const rec: LogRecord = { seq, kind: b.readUInt16LE(2), uid, flags: b.readUInt16LE(4), time, frame };
  if (originHost > 0) rec.origin = { hostId: originHost, seq: originSeq };
  return rec;
}

export function readU32(b: Uint8Array, at: number): number {
  return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
}
