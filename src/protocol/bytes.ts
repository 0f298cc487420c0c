// Small byte helpers shared by the protocol code (no dependencies).

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lexicographic byte comparison: negative, zero or positive. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/**
 * A Uint8Array over a fresh ArrayBuffer of exactly `length` bytes whose
 * contents are NOT zeroed, for callers that write every byte (a frame copy,
 * a rewritten frame). Its own ArrayBuffer (not Buffer's shared pool), so it
 * can be moved to a worker thread; ~0.6 µs cheaper than `new Uint8Array` at
 * 3 KB, which zeroes first.
 */
export function allocBytes(length: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
}

/**
 * `length` bytes, NOT zeroed, from Buffer's shared 8 KB pool (up to 4 KB;
 * larger ones get their own ArrayBuffer), as a plain Uint8Array. For the
 * small blocks made per commit (MST nodes, the signed bytes), which are
 * written in full and never moved to another thread: `new Uint8Array(n)`
 * above 64 bytes allocates and zeroes an ArrayBuffer of its own, 0.6-2.4 µs
 * at 65-400 bytes against 0.12-0.21 µs for a pool slice (docs/benchmarks.md).
 * Not for bytes posted to a worker: a structured clone copies the whole pool.
 */
export function allocPooled(length: number): Uint8Array {
  const b = Buffer.allocUnsafe(length);
  return new Uint8Array(b.buffer, b.byteOffset, length);
}

/**
 * Free bytes ingest leaves before each frame it copies, so the relay can
 * write its own seq into the frame in place even when that seq's encoding is
 * longer than the upstream one (at most 8 bytes: 1 → 9), instead of copying
 * the whole frame again (frames.ts seqWriter).
 */
export const SEQ_HEADROOM = 8;

/**
 * A copy of `bytes` in an ArrayBuffer of its own (see allocBytes), placed
 * `headroom` bytes from its start (the view covers the rest of the buffer).
 */
export function ownedCopy(bytes: Uint8Array, headroom = 0): Uint8Array {
  const copy = allocBytes(headroom + bytes.byteLength);
  copy.set(bytes, headroom);
  return headroom === 0 ? copy : copy.subarray(headroom);
}

/**
 * Whether `view` is all its ArrayBuffer holds but at most SEQ_HEADROOM free
 * bytes before it: moving the buffer to another thread moves this frame and
 * nothing else.
 */
export function isWholeBuffer(view: Uint8Array): boolean {
  const buf = view.buffer;
  return (
    buf instanceof ArrayBuffer &&
    view.byteOffset <= SEQ_HEADROOM &&
    view.byteOffset + view.byteLength === buf.byteLength
  );
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function utf8Encode(s: string): Uint8Array {
  return encoder.encode(s);
}

export function utf8Decode(b: Uint8Array): string {
  return decoder.decode(b);
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

export function fromBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'base64'));
}
