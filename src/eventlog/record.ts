// On-disk record format of the event log. Each record is a fixed 36-byte
// little-endian header followed by the frame bytes:
//
//   0  u32 crc32   of bytes 8..36 of the header and of the payload
//   4  u16 flags   (outside the CRC so a flag could be set in place later)
//   6  u16 kind
//   8  u32 len     payload length
//  12  u64 uid
//  20  u64 seq
//  28  u64 time    milliseconds since the epoch
//
// Like indigo/zlay diskpersist (header + payload, files of N events) plus a
// CRC, so recovery can tell a complete record from a torn or zero-filled tail
// after `kill -9` or a power cut, instead of trusting the length field.
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 36;
/** Frames above this are refused at append and treated as corruption at read. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

export interface RecordHeader {
  flags: number;
  kind: number;
  len: number;
  uid: number;
  seq: number;
  time: number;
}

function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
}

function readU64(buf: Uint8Array, off: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 0x1_0000_0000;
}

/** Writes the header for `payload` into `out` at `off` (out must have 36 bytes there). */
export function writeHeader(
  out: Buffer,
  off: number,
  h: Omit<RecordHeader, 'len'>,
  payload: Uint8Array,
): void {
  out.writeUInt16LE(h.flags & 0xffff, off + 4);
  out.writeUInt16LE(h.kind & 0xffff, off + 6);
  out.writeUInt32LE(payload.byteLength, off + 8);
  writeU64(out, off + 12, h.uid);
  writeU64(out, off + 20, h.seq);
  writeU64(out, off + 28, h.time);
  const crc = crc32(payload, crc32(out.subarray(off + 8, off + HEADER_BYTES)));
  out.writeUInt32LE(crc, off);
}

/** Parses a header at `off`; does not check the CRC (see `recordIsIntact`). */
export function readHeader(buf: Uint8Array, off: number): RecordHeader {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return {
    flags: dv.getUint16(off + 4, true),
    kind: dv.getUint16(off + 6, true),
    len: dv.getUint32(off + 8, true),
    uid: readU64(buf, off + 12),
    seq: readU64(buf, off + 20),
    time: readU64(buf, off + 28),
  };
}

/** True when the stored CRC matches header and payload (both fully inside `buf`). */
export function recordIsIntact(buf: Uint8Array, off: number, len: number): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const stored = dv.getUint32(off, true);
  const crc = crc32(
    buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len),
    crc32(buf.subarray(off + 8, off + HEADER_BYTES)),
  );
  return crc === stored;
}
