// The few canonical DAG-CBOR writers that the fixed-shape encoders share:
// MST nodes (mst-node.ts encodeNode) and the signed bytes of a commit
// (commit.ts unsignedCommitBytes). Each encoder sizes its block first, then
// writes it into one exact allocation with these; the generic encoder
// (cbor.ts encodeCbor) is what their tests compare against byte for byte.
import type { Cid } from './cid.ts';

/** Bytes of a CBOR head (major type and argument) for `n`. */
export function cborHeadLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

/** Writes the shortest head of major type `major` (0-7) for `n` at `pos`; returns the position after it. */
export function writeCborHead(buf: Uint8Array, pos: number, major: number, n: number): number {
  const m = major << 5;
  if (n < 24) {
    buf[pos] = m | n;
    return pos + 1;
  }
  if (n < 0x100) {
    buf[pos] = m | 24;
    buf[pos + 1] = n;
    return pos + 2;
  }
  if (n < 0x10000) {
    buf[pos] = m | 25;
    buf[pos + 1] = n >> 8;
    buf[pos + 2] = n & 0xff;
    return pos + 3;
  }
  buf[pos] = m | 26;
  buf[pos + 1] = (n >>> 24) & 0xff;
  buf[pos + 2] = (n >>> 16) & 0xff;
  buf[pos + 3] = (n >>> 8) & 0xff;
  buf[pos + 4] = n & 0xff;
  return pos + 5;
}

/** Bytes of a CID link (tag 42, a byte string of 0x00 + the CID) or of null. */
export function cidLinkLength(c: Cid | null): number {
  if (!c) return 1;
  const n = c.bytes.length + 1;
  return 2 + cborHeadLength(n) + n;
}

/** Writes a CID link, or null, at `pos`; returns the position after it. */
export function writeCidLink(buf: Uint8Array, pos: number, c: Cid | null): number {
  if (!c) {
    buf[pos] = 0xf6; // null
    return pos + 1;
  }
  buf[pos] = 0xd8; // tag(42)
  buf[pos + 1] = 42;
  pos = writeCborHead(buf, pos + 2, 2, c.bytes.length + 1);
  buf[pos] = 0; // multibase identity prefix
  buf.set(c.bytes, pos + 1);
  return pos + 1 + c.bytes.length;
}
