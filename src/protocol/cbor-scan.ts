// A bounded, non-recursive scanner over untrusted DAG-CBOR: it walks heads
// without building values, so a peer's bytes cost one linear pass whatever
// their shape. The relay reads a few fields of every upstream frame (header
// `{op, t}`, the body's `seq` and DID) before it decides whether the frame is
// worth a full decode; a recursive decoder spends time and stack in
// proportion to nesting depth, and a 5 MB frame of nested one-byte arrays
// once cost seconds of main-thread time. Every walk this scanner does is
// bounded by the ScanLimits given at construction:
//
// - maxDepth: nesting of arrays, maps and tags (a scalar alone is depth 0, a
//   flat map 1, a map holding an array of maps 3). Checked when a container
//   is entered, with an explicit stack, never with recursion.
// - maxItems: data items read by this scanner (every head counts: map keys,
//   container heads, tags, scalars). An array that announces 2^32 items costs
//   nothing up front; the walk stops at the limit or at the end of the bytes.
// - maxStringBytes: the longest byte or text string.
//
// Heads are strict DAG-CBOR: no indefinite lengths, minimal-length
// arguments, integers within the JS safe range, tag 42 (a CID link, whose
// content must be a byte string) as the only tag, simple values false, true
// and null only, floats 64-bit and finite, map keys text strings. What the
// scanner does not check, because it builds no values: map key order and
// duplicate keys, CID contents, UTF-8 validity of strings it skips. The full
// decoder (cbor.ts) still checks those where a value is decoded.
//
// This is the relay's only CBOR head reader: ingest's frame check, the
// validator's DID peek, rewriteSeq (frames.ts) and the MST node decoder
// (mst-node.ts) all walk bytes with it; full decodes go through cbor.ts.
// API: head() reads one head; skip() passes one whole value; forEachMapEntry()
// visits a map's keys with the scanner positioned at each value; findMapKey()
// walks to one key's value; readText / readTextPrefix / readTextIs /
// readUint / readBytes / readBytesStart / readCidLinkStart / readNull read a
// value at the position.

export const MAJOR_UINT = 0;
export const MAJOR_NEGINT = 1;
export const MAJOR_BYTES = 2;
export const MAJOR_TEXT = 3;
export const MAJOR_ARRAY = 4;
export const MAJOR_MAP = 5;
export const MAJOR_TAG = 6;
export const MAJOR_SIMPLE = 7;

/** DAG-CBOR's only tag: a CID link. */
const CID_TAG = 42;
/** The one-byte encoding of null. */
const SIMPLE_NULL = 0xf6;

export type CborScanErrorReason =
  /** A head or a string runs past the end of the scanned range. */
  | 'truncated'
  /** A head DAG-CBOR forbids (indefinite length, non-minimal, other tag, undefined, half/single float, NaN…). */
  | 'not-dag-cbor'
  | 'too-deep'
  | 'too-many-items'
  /** A string longer than maxStringBytes, or than the caller's own cap. */
  | 'too-long'
  /** The value is not of the type the caller asked for (e.g. a map). */
  | 'unexpected-type'
  | 'bad-utf8';

export class CborScanError extends Error {
  constructor(
    readonly reason: CborScanErrorReason,
    readonly offset: number,
    detail: string,
  ) {
    super(`${detail} (CBOR ${reason} at byte ${offset})`);
    this.name = 'CborScanError';
  }
}

export interface ScanLimits {
  /** Deepest nesting of arrays, maps and tags. */
  maxDepth: number;
  /** Most data items (heads) this scanner reads in all. */
  maxItems: number;
  /** Longest byte or text string, in bytes. */
  maxStringBytes: number;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const LENIENT_UTF8 = new TextDecoder('utf-8');

/** Short ASCII keys are built directly; anything else goes through TextDecoder. */
const FAST_KEY_BYTES = 32;

// skip()'s explicit stack (items left per open container, and whether it is a
// map), shared by every scanner: skip() runs to completion without calling
// out, so it is never re-entered, and sharing saves an allocation per frame.
let stackRemaining = new Float64Array(16);
let stackIsMap = new Uint8Array(16);

export class CborScanner {
  /** Position of the next head. */
  pos: number;
  /** Major type of the last head read. */
  major = 0;
  /**
   * Argument of the last head read: the value of an integer (for a negative
   * integer, -1 - value), the length of a string, the count of an array or
   * map, the tag number; for a simple value its code (20 false, 21 true,
   * 22 null, 27 a float64).
   */
  arg = 0;
  /** Heads read so far (checked against maxItems). */
  items = 0;
  /** Containers the scanner is inside (forEachMapEntry visits), the base of skip()'s depth. */
  depth = 0;
  /** Start and byte length of the current map key during forEachMapEntry. */
  keyStart = 0;
  keyLength = 0;
  readonly end: number;

  constructor(
    readonly buf: Uint8Array,
    readonly limits: ScanLimits,
    start = 0,
    end = buf.length,
  ) {
    this.pos = start;
    this.end = Math.min(end, buf.length);
  }

  atEnd(): boolean {
    return this.pos >= this.end;
  }

  /** The major type of the next head without reading it. */
  peekMajor(): number {
    if (this.pos >= this.end) this.fail('truncated', 'unexpected end of input');
    return this.buf[this.pos] >> 5;
  }

  /** Reads one head (strict DAG-CBOR), counts it as an item; returns its major type (argument in `arg`). */
  head(): number {
    const b = this.buf;
    let p = this.pos;
    if (p >= this.end) this.fail('truncated', 'unexpected end of input');
    if (++this.items > this.limits.maxItems)
      this.fail('too-many-items', `more than ${this.limits.maxItems} items`);
    const initial = b[p++];
    const major = initial >> 5;
    const info = initial & 0x1f;
    let arg: number;
    if (info < 24) {
      arg = info;
      if (major === MAJOR_SIMPLE && (info < 20 || info > 22)) {
        this.fail('not-dag-cbor', `simple value ${info}`);
      }
    } else if (major === MAJOR_SIMPLE) {
      if (info !== 27) this.fail('not-dag-cbor', info === 24 ? 'simple value' : 'float other than 64-bit');
      if (p + 8 > this.end) this.fail('truncated', 'float runs past the end');
      // exponent all ones: NaN or an infinity, which DAG-CBOR forbids
      if ((b[p] & 0x7f) === 0x7f && (b[p + 1] & 0xf0) === 0xf0) this.fail('not-dag-cbor', 'NaN or infinity');
      arg = 27;
      p += 8;
    } else if (info === 24) {
      if (p + 1 > this.end) this.fail('truncated', 'head runs past the end');
      arg = b[p];
      p += 1;
      if (arg < 24) this.fail('not-dag-cbor', 'non-minimal head');
    } else if (info === 25) {
      if (p + 2 > this.end) this.fail('truncated', 'head runs past the end');
      arg = (b[p] << 8) | b[p + 1];
      p += 2;
      if (arg < 0x100) this.fail('not-dag-cbor', 'non-minimal head');
    } else if (info === 26) {
      if (p + 4 > this.end) this.fail('truncated', 'head runs past the end');
      arg = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
      p += 4;
      if (arg < 0x10000) this.fail('not-dag-cbor', 'non-minimal head');
    } else if (info === 27) {
      if (p + 8 > this.end) this.fail('truncated', 'head runs past the end');
      const hi = ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
      const lo = ((b[p + 4] << 24) | (b[p + 5] << 16) | (b[p + 6] << 8) | b[p + 7]) >>> 0;
      p += 8;
      if (hi === 0) this.fail('not-dag-cbor', 'non-minimal head');
      if (hi > 0x1fffff) this.fail('not-dag-cbor', 'argument beyond the safe integer range');
      arg = hi * 0x1_0000_0000 + lo;
    } else {
      this.fail('not-dag-cbor', info === 31 ? 'indefinite length' : 'reserved additional information');
    }
    if (major === MAJOR_TAG && arg !== CID_TAG) this.fail('not-dag-cbor', `tag ${arg}`);
    this.pos = p;
    this.major = major;
    this.arg = arg;
    return major;
  }

  /**
   * Skips one complete value at the position and returns the position after
   * it. Depth counts from `this.depth` (the containers the caller is inside).
   */
  skip(): number {
    const maxDepth = this.limits.maxDepth;
    const maxString = this.limits.maxStringBytes;
    const stackSize = Math.max(0, maxDepth - this.depth) + 1;
    if (stackRemaining.length < stackSize) {
      stackRemaining = new Float64Array(stackSize);
      stackIsMap = new Uint8Array(stackSize);
    }
    const remaining = stackRemaining;
    const isMap = stackIsMap;
    // level 0 is the value itself: one item left; levels 1.. are open containers
    let top = 0;
    remaining[0] = 1;
    isMap[0] = 0;
    const b = this.buf;
    const end = this.end;
    const maxItems = this.limits.maxItems;
    for (;;) {
      // (x & 1) is the parity of any safe integer x: ToInt32 keeps the low bits exactly.
      const keyPosition = isMap[top] === 1 && (remaining[top] & 1) === 0;
      remaining[top]--;
      // Fast path, same checks as head() + stringBody(): a one-byte head
      // (always minimal) of an integer or a short string. Most heads of an
      // event are these (map keys, small integers, short strings).
      const p = this.pos;
      const initial = p < end ? b[p] : 0xff;
      if ((initial & 0x1f) < 24 && initial < 0x80) {
        if (++this.items > maxItems) this.fail('too-many-items', `more than ${maxItems} items`);
        const major = initial >> 5;
        if (keyPosition && major !== MAJOR_TEXT) this.fail('not-dag-cbor', 'map key is not a text string');
        this.major = major;
        this.arg = initial & 0x1f;
        this.pos = p + 1;
        if (major >= MAJOR_BYTES) this.stringBody(initial & 0x1f, maxString);
        while (remaining[top] === 0) {
          if (top === 0) return this.pos;
          top--;
        }
        continue;
      }
      const major = this.head();
      if (keyPosition && major !== MAJOR_TEXT) this.fail('not-dag-cbor', 'map key is not a text string');
      const arg = this.arg;
      if (major === MAJOR_BYTES || major === MAJOR_TEXT) {
        this.stringBody(arg, maxString);
      } else if (major === MAJOR_ARRAY || major === MAJOR_MAP || major === MAJOR_TAG) {
        if (this.depth + top + 1 > maxDepth) this.fail('too-deep', `nested deeper than ${maxDepth}`);
        if (major === MAJOR_TAG) {
          // a CID link: the tag's content must be a byte string
          if (this.head() !== MAJOR_BYTES) this.fail('not-dag-cbor', 'tag 42 content is not a byte string');
          this.stringBody(this.arg, maxString);
        } else if (arg > 0) {
          top++;
          remaining[top] = major === MAJOR_MAP ? arg * 2 : arg;
          isMap[top] = major === MAJOR_MAP ? 1 : 0;
        }
      }
      while (remaining[top] === 0) {
        if (top === 0) return this.pos;
        top--;
      }
    }
  }

  /** Reads a map head; returns its entry count. */
  readMapHead(): number {
    if (this.head() !== MAJOR_MAP) this.fail('unexpected-type', 'expected a map');
    return this.arg;
  }

  /** Reads an array head; returns its item count. */
  readArrayHead(): number {
    if (this.head() !== MAJOR_ARRAY) this.fail('unexpected-type', 'expected an array');
    return this.arg;
  }

  /** Reads an unsigned integer. */
  readUint(): number {
    if (this.head() !== MAJOR_UINT) this.fail('unexpected-type', 'expected an unsigned integer');
    return this.arg;
  }

  /** Reads a byte string of at most `maxBytes` (a view into the buffer, not a copy). */
  readBytes(maxBytes = this.limits.maxStringBytes): Uint8Array {
    if (this.head() !== MAJOR_BYTES) this.fail('unexpected-type', 'expected a byte string');
    const start = this.pos;
    this.stringBody(this.arg, Math.min(maxBytes, this.limits.maxStringBytes));
    return this.buf.subarray(start, this.pos);
  }

  /** Reads a text string of at most `maxBytes` bytes (longer: too-long); invalid UTF-8 throws. */
  readText(maxBytes = this.limits.maxStringBytes): string {
    if (this.head() !== MAJOR_TEXT) this.fail('unexpected-type', 'expected a text string');
    const start = this.pos;
    this.stringBody(this.arg, Math.min(maxBytes, this.limits.maxStringBytes));
    return decodeText(this.buf, start, this.pos, this);
  }

  /**
   * Reads a text string of any length (within maxStringBytes) but decodes at
   * most its first `keepBytes` bytes, cut at a character boundary; for log
   * lines and messages built from a peer's text.
   */
  readTextPrefix(keepBytes: number): { text: string; truncated: boolean } {
    if (this.head() !== MAJOR_TEXT) this.fail('unexpected-type', 'expected a text string');
    const start = this.pos;
    this.stringBody(this.arg, this.limits.maxStringBytes);
    if (this.pos - start <= keepBytes)
      return { text: LENIENT_UTF8.decode(this.buf.subarray(start, this.pos)), truncated: false };
    let cut = start + keepBytes;
    while (cut > start && (this.buf[cut] & 0xc0) === 0x80) cut--; // back to the start of a character
    return { text: LENIENT_UTF8.decode(this.buf.subarray(start, cut)), truncated: true };
  }

  /**
   * Walks the map at the position: for each entry, reads its key (a text
   * string, at most `maxKeyBytes`) and calls `visit` with the scanner at the
   * entry's value; `keyIs(name)` and `keyText()` tell the key. A value the
   * visitor leaves unread is skipped. `visit` returning false stops the walk
   * with the scanner just after that entry's value. Returns the entry count.
   */
  forEachMapEntry(visit: (s: CborScanner) => unknown, maxKeyBytes = 256): number {
    const entries = this.readMapHead();
    if (this.depth + 1 > this.limits.maxDepth)
      this.fail('too-deep', `nested deeper than ${this.limits.maxDepth}`);
    this.depth++;
    try {
      for (let i = 0; i < entries; i++) {
        if (this.head() !== MAJOR_TEXT) this.fail('not-dag-cbor', 'map key is not a text string');
        this.keyStart = this.pos;
        this.keyLength = this.arg;
        this.stringBody(this.arg, Math.min(maxKeyBytes, this.limits.maxStringBytes));
        const valueStart = this.pos;
        const more = visit(this);
        if (this.pos === valueStart) this.skip();
        if (more === false) break;
      }
    } finally {
      this.depth--;
    }
    return entries;
  }

  /**
   * Walks the map at the position to the entry whose key is the ASCII
   * `name` and returns true with the scanner at that entry's value, still
   * inside the map (`depth` counts it, so skipping the value is bounded as
   * part of the map). Returns false when the map has no such key; the
   * position is then unspecified. With `canonicalOrder` the walk stops at
   * the first key that sorts after `name` in DAG-CBOR order (shorter keys
   * first, then bytewise), which is only right for canonical input.
   */
  findMapKey(name: string, canonicalOrder = false, maxKeyBytes = 256): boolean {
    const entries = this.readMapHead();
    if (this.depth + 1 > this.limits.maxDepth)
      this.fail('too-deep', `nested deeper than ${this.limits.maxDepth}`);
    this.depth++;
    for (let i = 0; i < entries; i++) {
      if (this.head() !== MAJOR_TEXT) this.fail('not-dag-cbor', 'map key is not a text string');
      this.keyStart = this.pos;
      this.keyLength = this.arg;
      this.stringBody(this.arg, Math.min(maxKeyBytes, this.limits.maxStringBytes));
      const order = canonicalOrder ? this.compareKey(name) : this.keyIs(name) ? 0 : -1;
      if (order === 0) return true;
      if (order > 0) break;
      this.skip();
    }
    this.depth--;
    return false;
  }

  /** DAG-CBOR order of the current map key against the ASCII `name`: <0 before, 0 equal, >0 after. */
  private compareKey(name: string): number {
    if (this.keyLength !== name.length) return this.keyLength - name.length;
    const b = this.buf;
    const s = this.keyStart;
    for (let i = 0; i < name.length; i++) {
      const d = b[s + i] - name.charCodeAt(i);
      if (d !== 0) return d;
    }
    return 0;
  }

  /**
   * Reads a text string and tells whether it is exactly the ASCII `name`
   * (for fixed-shape maps whose keys are known in advance).
   */
  readTextIs(name: string): boolean {
    const b = this.buf;
    const len = name.length;
    let p = this.pos;
    // A short string's head is its one byte, which is always minimal: compare in place.
    if (len < 24 && p + 1 + len <= this.end && b[p] === (0x60 | len)) {
      if (++this.items > this.limits.maxItems)
        this.fail('too-many-items', `more than ${this.limits.maxItems} items`);
      p++;
      this.pos = p + len;
      this.major = MAJOR_TEXT;
      this.arg = len;
      for (let i = 0; i < len; i++) if (b[p + i] !== name.charCodeAt(i)) return false;
      return true;
    }
    if (this.head() !== MAJOR_TEXT) this.fail('unexpected-type', 'expected a text string');
    const start = this.pos;
    this.stringBody(this.arg, this.limits.maxStringBytes);
    if (this.pos - start !== len) return false;
    for (let i = 0; i < len; i++) if (b[start + i] !== name.charCodeAt(i)) return false;
    return true;
  }

  /**
   * Reads a byte string of at most `maxBytes` and returns the offset where
   * its content starts (it ends at `pos`), building no view.
   */
  readBytesStart(maxBytes = this.limits.maxStringBytes): number {
    if (this.head() !== MAJOR_BYTES) this.fail('unexpected-type', 'expected a byte string');
    const start = this.pos;
    this.stringBody(this.arg, Math.min(maxBytes, this.limits.maxStringBytes));
    return start;
  }

  /**
   * Reads a CID link (tag 42 around a byte string whose first byte is the
   * 0x00 identity multibase prefix) and returns the offset of the CID's
   * binary bytes, which end at `pos`. The CID bytes themselves are not
   * parsed (the caller checks the version, codec and hash it accepts).
   */
  readCidLinkStart(): number {
    const b = this.buf;
    const p = this.pos;
    // The usual shape, d8 2a 58 <24..255> 00 …: both heads minimal, checked in place.
    if (p + 5 <= this.end && b[p] === 0xd8 && b[p + 1] === CID_TAG && b[p + 2] === 0x58 && b[p + 4] === 0) {
      const len = b[p + 3];
      if (len >= 24 && len <= this.limits.maxStringBytes && len <= this.end - p - 4) {
        this.items += 2;
        if (this.items > this.limits.maxItems)
          this.fail('too-many-items', `more than ${this.limits.maxItems} items`);
        this.pos = p + 4 + len;
        this.major = MAJOR_BYTES;
        this.arg = len;
        return p + 5;
      }
    }
    if (this.head() !== MAJOR_TAG) this.fail('unexpected-type', 'expected a CID link');
    if (this.head() !== MAJOR_BYTES) this.fail('not-dag-cbor', 'tag 42 content is not a byte string');
    const start = this.pos;
    this.stringBody(this.arg, this.limits.maxStringBytes);
    if (this.pos === start || this.buf[start] !== 0)
      this.fail('not-dag-cbor', 'CID link without the 0x00 prefix');
    return start + 1;
  }

  /** If the next head is null, reads it and returns true; otherwise reads nothing. */
  readNull(): boolean {
    if (this.pos >= this.end) this.fail('truncated', 'unexpected end of input');
    if (this.buf[this.pos] !== SIMPLE_NULL) return false;
    this.head();
    return true;
  }

  /** True when the current map key (forEachMapEntry) is exactly the ASCII `name`. */
  keyIs(name: string): boolean {
    if (this.keyLength !== name.length) return false;
    const b = this.buf;
    const s = this.keyStart;
    for (let i = 0; i < name.length; i++) if (b[s + i] !== name.charCodeAt(i)) return false;
    return true;
  }

  /** The current map key (forEachMapEntry) as a string. */
  keyText(): string {
    return decodeText(this.buf, this.keyStart, this.keyStart + this.keyLength, this);
  }

  /** Throws a CborScanError at the current position. */
  fail(reason: CborScanErrorReason, detail: string): never {
    throw new CborScanError(reason, this.pos, detail);
  }

  private stringBody(length: number, max: number): void {
    if (length > max) this.fail('too-long', `string of ${length} bytes is longer than ${max}`);
    if (length > this.end - this.pos) this.fail('truncated', 'string runs past the end');
    this.pos += length;
  }
}

function decodeText(b: Uint8Array, start: number, end: number, s: CborScanner): string {
  if (end - start <= FAST_KEY_BYTES) {
    let out = '';
    for (let i = start; i < end; i++) {
      const c = b[i];
      if (c >= 0x80) return strictDecode(b, start, end, s);
      out += String.fromCharCode(c);
    }
    return out;
  }
  return strictDecode(b, start, end, s);
}

function strictDecode(b: Uint8Array, start: number, end: number, s: CborScanner): string {
  try {
    return STRICT_UTF8.decode(b.subarray(start, end));
  } catch {
    return s.fail('bad-utf8', 'text string is not valid UTF-8');
  }
}
