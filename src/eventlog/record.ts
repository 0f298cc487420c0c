// On-disk record format of the event log. Each record is a fixed little-endian
// header followed by the frame bytes. Format 2 (segments named `*.seg2`, all
// new writes):
//
//   0  u32 crc32   of bytes 8..48 of the header and of the payload
//   4  u16 flags   (outside the CRC so a flag could be set in place later)
//   6  u16 kind
//   8  u32 len     payload length
//  12  u64 uid
//  20  u64 seq
//  28  u64 time    milliseconds since the epoch
//  36  u32 origin host   metadata-store host id of the upstream event (0: relay-made)
//  40  u64 origin seq    the upstream event's seq on that host
//
// Format 1 (`*.seg`, written before the origin existed) is the first 36 bytes
// of that, CRC over bytes 8..36; it is still read, never written. The origin
// is what makes the log the one record of which upstream events were relayed:
// after a crash, ingest rebuilds from the log's tail which of the frames it
// will receive again are already out (see src/ingest/log-recovery.ts).
//
// Like indigo/zlay diskpersist (header + payload, files of N events) plus a
// CRC, so recovery can tell a complete record from a torn or zero-filled tail
// after `kill -9` or a power cut, instead of trusting the length field.
import { crc32 } from 'node:zlib';

export type RecordFormat = 1 | 2;

/** Header bytes per record format. */
export const HEADER_BYTES: Record<RecordFormat, number> = { 1: 36, 2: 48 };
/** The format new segments are written in. */
export const CURRENT_FORMAT: RecordFormat = 2;
/** Frames above this are refused at append and treated as corruption at read. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export interface RecordHeader {
  flags: number;
  kind: number;
  len: number;
  uid: number;
  seq: number;
  time: number;
  /** Upstream host id (0: the relay made the event, or format 1). */
  originHost: number;
  /** Upstream seq on that host (0 with no origin). */
  originSeq: number;
}

function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
}

function readU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
}

/** Writes a current-format header for `payload` into `out` at `off` (HEADER_BYTES[2] bytes there). */
export function writeHeader(
  out: Buffer,
  off: number,
  h: Omit<RecordHeader, 'len' | 'originHost' | 'originSeq'> & { originHost?: number; originSeq?: number },
  payload: Uint8Array,
): void {
  out.writeUInt16LE(h.flags & 0xffff, off + 4);
  out.writeUInt16LE(h.kind & 0xffff, off + 6);
  out.writeUInt32LE(payload.byteLength, off + 8);
  writeU64(out, off + 12, h.uid);
  writeU64(out, off + 20, h.seq);
  writeU64(out, off + 28, h.time);
  out.writeUInt32LE((h.originHost ?? 0) >>> 0, off + 36);
  writeU64(out, off + 40, h.originSeq ?? 0);
  const crc = crc32(payload, crc32(out.subarray(off + 8, off + HEADER_BYTES[2])));
  out.writeUInt32LE(crc, off);
}

/** Parses a header of `format` at `off`; does not check the CRC (see `recordIsIntact`). */
export function readHeader(buf: Uint8Array, off: number, format: RecordFormat): RecordHeader {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    flags: dv.getUint16(off + 4, true),
    kind: dv.getUint16(off + 6, true),
    len: dv.getUint32(off + 8, true),
    uid: readU64(dv, off + 12),
    seq: readU64(dv, off + 20),
    time: readU64(dv, off + 28),
    originHost: format === 2 ? dv.getUint32(off + 36, true) : 0,
    originSeq: format === 2 ? readU64(dv, off + 40) : 0,
  };
}

/** True when the stored CRC matches header and payload (both fully inside `buf`). */
export function recordIsIntact(buf: Uint8Array, off: number, len: number, format: RecordFormat): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const hb = HEADER_BYTES[format];
  const stored = dv.getUint32(off, true);
  const crc = crc32(buf.subarray(off + hb, off + hb + len), crc32(buf.subarray(off + 8, off + hb)));
  return crc === stored;
}
