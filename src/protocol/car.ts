// CAR v1 (content-addressed archive) reading and writing, as carried in the
// `blocks` field of #commit and #sync events. Every event goes through
// readCar, so it is a single pass over the buffer with no copies: blocks are
// subarray views of the input, each hash is checked as the block is read,
// and blocks are kept in a Map keyed by 30 bits of the CID's digest (no
// string per block or per lookup; BlockMap). Anything off the narrow
// atproto profile fails with a CarError: CIDs must be CIDv1 sha2-256 (32 byte
// digest) with codec dag-cbor or raw, varints minimal, the header exactly
// `{version: 1, roots: [...]}`, no truncation, and the input within size and
// block-count limits (both checked while reading, before memory grows; the
// block-count default is what the default size can hold, so a caller that
// raises the byte limit still gets a bounded block count unless it raises
// that too).
//
// Whole repositories (com.atproto.sync.getRepo, up to tens of MB) go through
// `indexCar` instead: the same checks, but the blocks are kept as offsets
// in a typed-array hash table over the input (16–32 bytes per block)
// rather than as objects in a Map (about 400 bytes of heap per block), so a
// CAR of a million tiny blocks costs megabytes, not gigabytes.
import { decodeCbor, encodeCbor } from './cbor.ts';
import {
  type Cid,
  CidLinkWrapper,
  CODEC_DCBOR,
  CODEC_RAW,
  digestEquals,
  isCid,
  sha256Latin1,
} from './cid.ts';

export type CarErrorReason =
  | 'too-large'
  | 'too-many-blocks'
  | 'bad-varint'
  | 'truncated'
  | 'bad-header'
  | 'bad-cid'
  | 'hash-mismatch';

export class CarError extends Error {
  constructor(
    readonly reason: CarErrorReason,
    message: string,
  ) {
    super(`invalid CAR (${reason}): ${message}`);
    this.name = 'CarError';
  }
}

const CID_LENGTH = 36;

function cidKey(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

/**
 * A BlockMap key: 30 bits of the CID's digest mixed with its codec byte. A
 * digest is uniform, so these collide only by chance (or on purpose, which
 * the overflow map absorbs); an entry found by it is compared in full.
 */
function cidHash(bytes: Uint8Array, at: number): number {
  return (
    (bytes[at + 4] | (bytes[at + 5] << 8) | (bytes[at + 6] << 16) | ((bytes[at + 7] & 0x3f) << 24)) ^
    bytes[at + 1]
  );
}

function equalCids(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  for (let i = n - 1; i >= 0; i--) if (a[i] !== b[i]) return false;
  return true;
}

type BlockEntry = [Cid, Uint8Array];

/**
 * Blocks by CID. Every event's blocks go through one (readCar fills it, the
 * MST proof reads it), so the key is a small integer taken from the digest
 * bytes (cidHash) rather than a string built per lookup; a CID whose key is
 * taken by another CID goes to an overflow map keyed by its binary form (as
 * a latin1 string), which stays empty in practice.
 */
export class BlockMap implements Iterable<BlockEntry> {
  private readonly map = new Map<number, BlockEntry>();
  private overflow: Map<string, BlockEntry> | undefined;
  private bytesTotal = 0;

  private entry(cid: Cid): BlockEntry | undefined {
    const bytes = cid.bytes;
    const e = this.map.get(cidHash(bytes, 0));
    if (e !== undefined && equalCids(e[0].bytes, bytes)) return e;
    return this.overflow?.get(cidKey(bytes));
  }

  get(cid: Cid): Uint8Array | undefined {
    return this.entry(cid)?.[1];
  }

  has(cid: Cid): boolean {
    return this.entry(cid) !== undefined;
  }

  set(cid: Cid, bytes: Uint8Array): this {
    const key = cidHash(cid.bytes, 0);
    const e = this.map.get(key);
    if (e === undefined || equalCids(e[0].bytes, cid.bytes)) {
      if (e !== undefined) this.bytesTotal -= e[1].byteLength;
      else if (this.overflow !== undefined) this.dropOverflow(cidKey(cid.bytes)); // its slot came free
      this.map.set(key, [cid, bytes]);
    } else {
      this.overflow ??= new Map();
      const k = cidKey(cid.bytes);
      const old = this.overflow.get(k);
      if (old !== undefined) this.bytesTotal -= old[1].byteLength;
      this.overflow.set(k, [cid, bytes]);
    }
    this.bytesTotal += bytes.byteLength;
    return this;
  }

  delete(cid: Cid): boolean {
    const key = cidHash(cid.bytes, 0);
    const e = this.map.get(key);
    if (e !== undefined && equalCids(e[0].bytes, cid.bytes)) {
      this.bytesTotal -= e[1].byteLength;
      return this.map.delete(key);
    }
    return this.overflow !== undefined && this.dropOverflow(cidKey(cid.bytes));
  }

  private dropOverflow(k: string): boolean {
    const old = this.overflow?.get(k);
    if (old === undefined) return false;
    this.bytesTotal -= old[1].byteLength;
    return (this.overflow as Map<string, BlockEntry>).delete(k);
  }

  get size(): number {
    return this.map.size + (this.overflow?.size ?? 0);
  }

  /** Total size of the block data held (CIDs not counted). */
  get byteLength(): number {
    return this.bytesTotal;
  }

  /** Blocks in insertion order (a CID that went to the overflow map comes after the others). */
  *entries(): IterableIterator<BlockEntry> {
    yield* this.map.values();
    if (this.overflow) yield* this.overflow.values();
  }

  [Symbol.iterator](): IterableIterator<BlockEntry> {
    return this.entries();
  }
}

export interface ReadCarOptions {
  /** Largest accepted CAR, in bytes (default 2,000,000, the `blocks` field limit). */
  maxBytes?: number;
  /** Largest accepted number of blocks (default DEFAULT_MAX_CAR_BLOCKS, whatever maxBytes is). */
  maxBlocks?: number;
}

export const DEFAULT_MAX_CAR_BYTES = 2_000_000;

/** The smallest block section: a one-byte length, a 36-byte CID, no data. */
const MIN_SECTION_BYTES = 1 + 36;

/**
 * Default block limit: the most blocks DEFAULT_MAX_CAR_BYTES can hold, so
 * event CARs keep exactly the limits they had; a caller reading something
 * larger must choose its block limit.
 */
export const DEFAULT_MAX_CAR_BLOCKS = Math.floor(DEFAULT_MAX_CAR_BYTES / MIN_SECTION_BYTES);

export interface Car {
  roots: Cid[];
  blocks: BlockMap;
}

// Unsigned LEB128, minimal encoding only, up to 2^53 - 1. Returns the value and
// writes the position after it to pos[0].
function readVarint(buf: Uint8Array, pos: number[], end: number): number {
  let p = pos[0];
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (p >= end) throw new CarError('truncated', 'input ends inside a varint');
    const b = buf[p++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) {
      if (b === 0 && i > 0) throw new CarError('bad-varint', 'non-minimal varint');
      if (value > Number.MAX_SAFE_INTEGER) throw new CarError('bad-varint', 'varint too large');
      pos[0] = p;
      return value;
    }
    scale *= 128;
  }
  throw new CarError('bad-varint', 'varint too long');
}

function readHeader(bytes: Uint8Array): Cid[] {
  let header: unknown;
  try {
    header = decodeCbor(bytes);
  } catch (e) {
    throw new CarError('bad-header', `header is not valid DAG-CBOR: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Object.getPrototypeOf(header) !== Object.prototype) {
    throw new CarError('bad-header', 'header is not a map');
  }
  const h = header as Record<string, unknown>;
  if (h.version !== 1) throw new CarError('bad-header', 'version must be 1');
  const roots = h.roots;
  if (!Array.isArray(roots) || !roots.every(isCid)) {
    throw new CarError('bad-header', 'roots must be an array of CIDs');
  }
  if (Object.keys(h).length !== 2) throw new CarError('bad-header', 'unexpected header fields');
  return roots as Cid[];
}

/** Parses a CAR v1 file and checks every block against its CID. */
export function readCar(bytes: Uint8Array, opts?: ReadCarOptions): Car {
  const maxBytes = opts?.maxBytes ?? DEFAULT_MAX_CAR_BYTES;
  const maxBlocks = opts?.maxBlocks ?? DEFAULT_MAX_CAR_BLOCKS;
  const end = bytes.length;
  if (end > maxBytes) throw new CarError('too-large', `${end} bytes exceeds the ${maxBytes} byte limit`);
  if (end === 0) throw new CarError('truncated', 'empty input');

  const pos = [0];
  const headerLength = readVarint(bytes, pos, end);
  if (headerLength === 0) throw new CarError('bad-header', 'empty header');
  const headerStart = pos[0];
  if (headerLength > end - headerStart) throw new CarError('truncated', 'input ends inside the header');
  const roots = readHeader(bytes.subarray(headerStart, headerStart + headerLength));

  const blocks = new BlockMap();
  let p = headerStart + headerLength;
  let count = 0;
  while (p < end) {
    pos[0] = p;
    const sectionLength = readVarint(bytes, pos, end);
    p = pos[0];
    if (sectionLength > end - p) throw new CarError('truncated', 'input ends inside a block');
    if (sectionLength < CID_LENGTH) throw new CarError('bad-cid', 'block section shorter than a CID');
    if (++count > maxBlocks) throw new CarError('too-many-blocks', `more than ${maxBlocks} blocks`);
    if (
      bytes[p] !== 0x01 ||
      (bytes[p + 1] !== CODEC_DCBOR && bytes[p + 1] !== CODEC_RAW) ||
      bytes[p + 2] !== 0x12 ||
      bytes[p + 3] !== 0x20
    ) {
      throw new CarError('bad-cid', 'block CID is not CIDv1 sha2-256 dag-cbor/raw');
    }
    const cidBytes = bytes.subarray(p, p + CID_LENGTH);
    const data = bytes.subarray(p + CID_LENGTH, p + sectionLength);
    if (!digestEquals(sha256Latin1(data), cidBytes, 4)) {
      throw new CarError('hash-mismatch', 'block does not match its CID');
    }
    blocks.set(new CidLinkWrapper(cidBytes), data);
    p += sectionLength;
  }
  return { roots, blocks };
}

export interface IndexCarOptions {
  /** Largest accepted CAR, in bytes (at most 4 GiB - 1: offsets are 32-bit). */
  maxBytes: number;
  /** Largest accepted number of block sections. */
  maxBlocks: number;
}

const EMPTY_SLOT = 0;

/**
 * The blocks of a CAR by CID, as offsets into the CAR bytes: an open-addressing
 * hash table of two Uint32Arrays (section start + 1, data end), slot chosen by
 * digest bits, so a lookup compares 36 bytes and allocates nothing but the
 * returned subarray view. Fits where a BlockSource (mst.ts) is wanted.
 */
export class CarIndex {
  /** @internal built by indexCar */
  constructor(
    readonly roots: Cid[],
    private readonly bytes: Uint8Array,
    private readonly starts: Uint32Array,
    private readonly ends: Uint32Array,
    /** Distinct blocks. */
    readonly size: number,
  ) {}

  get(cid: Cid): Uint8Array | undefined {
    const slot = this.find(cid.bytes);
    return slot < 0 ? undefined : this.bytes.subarray(this.starts[slot] - 1 + CID_LENGTH, this.ends[slot]);
  }

  has(cid: Cid): boolean {
    return this.find(cid.bytes) >= 0;
  }

  private find(cid: Uint8Array): number {
    if (cid.length !== CID_LENGTH) return -1;
    const mask = this.starts.length - 1;
    for (let slot = slotOf(cid, 0) & mask; ; slot = (slot + 1) & mask) {
      const start = this.starts[slot];
      if (start === EMPTY_SLOT) return -1;
      if (sameCid(this.bytes, start - 1, cid, 0)) return slot;
    }
  }
}

/** Table slot from digest bytes 4..7 of a CID at `p` (the digest is uniform: every block was hash-checked). */
function slotOf(b: Uint8Array, p: number): number {
  return (b[p + 4] | (b[p + 5] << 8) | (b[p + 6] << 16) | (b[p + 7] << 24)) >>> 0;
}

function sameCid(a: Uint8Array, pa: number, b: Uint8Array, pb: number): boolean {
  for (let i = 0; i < CID_LENGTH; i++) if (a[pa + i] !== b[pb + i]) return false;
  return true;
}

/**
 * Reads a CAR v1 file like readCar (same profile, every block hash-checked,
 * both limits enforced — the block count by a first pass that only reads the
 * section lengths, so a CAR over it costs no hashing) into a CarIndex instead of a BlockMap:
 * for whole repositories, where the block count can be large. The index
 * refers to `bytes`, which must not change while it is used.
 */
export function indexCar(bytes: Uint8Array, opts: IndexCarOptions): CarIndex {
  const maxBytes = Math.min(opts.maxBytes, 0xffff_ffff);
  const end = bytes.length;
  if (end > maxBytes) throw new CarError('too-large', `${end} bytes exceeds the ${maxBytes} byte limit`);
  if (end === 0) throw new CarError('truncated', 'empty input');
  const pos = [0];
  const headerLength = readVarint(bytes, pos, end);
  if (headerLength === 0) throw new CarError('bad-header', 'empty header');
  const headerStart = pos[0];
  if (headerLength > end - headerStart) throw new CarError('truncated', 'input ends inside the header');
  const roots = readHeader(bytes.subarray(headerStart, headerStart + headerLength));

  // Count the sections first (a varint read each, no hashing): a CAR over
  // the block limit is refused before any block is hashed or indexed. A
  // malformed section ends the count; the reading below reports it.
  let counted = 0;
  for (let q = headerStart + headerLength; q < end; ) {
    pos[0] = q;
    const sectionLength = readVarint(bytes, pos, end);
    q = pos[0];
    if (sectionLength > end - q) break; // the reading below says what is wrong
    if (++counted > opts.maxBlocks)
      throw new CarError('too-many-blocks', `more than ${opts.maxBlocks} blocks`);
    q += sectionLength;
  }

  let starts = new Uint32Array(1024);
  let ends = new Uint32Array(1024);
  let size = 0;
  const insert = (tStarts: Uint32Array, tEnds: Uint32Array, start: number, dataEnd: number): boolean => {
    const mask = tStarts.length - 1;
    for (let slot = slotOf(bytes, start) & mask; ; slot = (slot + 1) & mask) {
      const at = tStarts[slot];
      if (at === EMPTY_SLOT) {
        tStarts[slot] = start + 1;
        tEnds[slot] = dataEnd;
        return true;
      }
      if (sameCid(bytes, at - 1, bytes, start)) return false; // a repeated block: same bytes, already held
    }
  };
  let p = headerStart + headerLength;
  let count = 0;
  while (p < end) {
    pos[0] = p;
    const sectionLength = readVarint(bytes, pos, end);
    p = pos[0];
    if (sectionLength > end - p) throw new CarError('truncated', 'input ends inside a block');
    if (sectionLength < CID_LENGTH) throw new CarError('bad-cid', 'block section shorter than a CID');
    if (++count > opts.maxBlocks) throw new CarError('too-many-blocks', `more than ${opts.maxBlocks} blocks`);
    if (
      bytes[p] !== 0x01 ||
      (bytes[p + 1] !== CODEC_DCBOR && bytes[p + 1] !== CODEC_RAW) ||
      bytes[p + 2] !== 0x12 ||
      bytes[p + 3] !== 0x20
    ) {
      throw new CarError('bad-cid', 'block CID is not CIDv1 sha2-256 dag-cbor/raw');
    }
    const dataEnd = p + sectionLength;
    if (!digestEquals(sha256Latin1(bytes.subarray(p + CID_LENGTH, dataEnd)), bytes, p + 4)) {
      throw new CarError('hash-mismatch', 'block does not match its CID');
    }
    if ((size + 1) * 2 > starts.length) {
      // keep the load at most 1/2: double the table and re-insert
      const grownStarts = new Uint32Array(starts.length * 2);
      const grownEnds = new Uint32Array(starts.length * 2);
      for (let i = 0; i < starts.length; i++) {
        if (starts[i] !== EMPTY_SLOT) insert(grownStarts, grownEnds, starts[i] - 1, ends[i]);
      }
      starts = grownStarts;
      ends = grownEnds;
    }
    if (insert(starts, ends, p, dataEnd)) size++;
    p = dataEnd;
  }
  return new CarIndex(roots, bytes, starts, ends, size);
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

function writeVarint(out: Uint8Array, p: number, n: number): number {
  while (n >= 0x80) {
    out[p++] = (n % 128) | 0x80;
    n = Math.floor(n / 128);
  }
  out[p++] = n;
  return p;
}

/** Writes a CAR v1 file (blocks in the given order; not re-hashed). */
export function writeCar(roots: Cid[], blocks: Iterable<[Cid, Uint8Array]>): Uint8Array {
  const header = encodeCbor({ version: 1, roots });
  const list: Array<[Cid, Uint8Array]> = [];
  let total = varintLength(header.length) + header.length;
  for (const entry of blocks) {
    const section = entry[0].bytes.length + entry[1].length;
    total += varintLength(section) + section;
    list.push(entry);
  }
  const out = new Uint8Array(total);
  let p = writeVarint(out, 0, header.length);
  out.set(header, p);
  p += header.length;
  for (const [cid, data] of list) {
    p = writeVarint(out, p, cid.bytes.length + data.length);
    out.set(cid.bytes, p);
    p += cid.bytes.length;
    out.set(data, p);
    p += data.length;
  }
  return out;
}
