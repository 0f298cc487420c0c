// WebSocket framing (RFC 6455 §5.2) for server-to-client binary messages,
// built by hand so that many messages can be laid out back to back in one
// buffer and handed to the socket in a single write. Each event still travels
// as its own WebSocket message (consumers parse one event per message); only
// the socket writes are merged. Server frames are never masked.

/** Bytes of the frame header for a payload of `len` bytes. */
export function wsHeaderSize(len: number): number {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

/** Writes a FIN + opcode header for `len` bytes at `off`; returns the offset after it. */
export function writeWsHeader(buf: Buffer, off: number, len: number, opcode = 0x2): number {
  buf[off] = 0x80 | opcode;
  if (len < 126) {
    buf[off + 1] = len;
    return off + 2;
  }
  if (len < 65536) {
    buf[off + 1] = 126;
    buf.writeUInt16BE(len, off + 2);
    return off + 4;
  }
  buf[off + 1] = 127;
  buf.writeUInt32BE(Math.floor(len / 0x1_0000_0000), off + 2);
  buf.writeUInt32BE(len >>> 0, off + 6);
  return off + 10;
}

export interface FramedBatch {
  /** All messages, back to back, each with its WebSocket header. */
  buf: Buffer;
  /** offsets[i] is where message i starts in buf; offsets[n] === buf.length. */
  offsets: number[];
}

/** Lays out one binary WebSocket message per payload in a single buffer. */
export function frameMessages(payloads: readonly Uint8Array[]): FramedBatch {
  let total = 0;
  for (const p of payloads) total += wsHeaderSize(p.byteLength) + p.byteLength;
  const buf = Buffer.allocUnsafe(total);
  const offsets = new Array<number>(payloads.length + 1);
  let off = 0;
  for (let i = 0; i < payloads.length; i++) {
    const p = payloads[i];
    offsets[i] = off;
    off = writeWsHeader(buf, off, p.byteLength);
    buf.set(p, off);
    off += p.byteLength;
  }
  offsets[payloads.length] = off;
  return { buf, offsets };
}
