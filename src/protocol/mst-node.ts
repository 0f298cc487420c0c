// The MST node codec: MST nodes (atproto repository spec) are DAG-CBOR
// `{e: [{k, p, t, v}…], l}` with each key prefix-compressed against the
// previous entry's (`p` bytes shared, `k` the rest). This file turns a node
// block into checked entries and entries back into the one canonical block;
// the tree that uses it (layers, stubs, operations) is mst.ts.
//
// Decoding has two paths that accept exactly the same set and give the same
// result (differentially tested). Every node a proof check reaches is
// decoded, so the common case, a node in its one canonical byte layout, is
// read straight from the block with the bounded scanner (cbor-scan.ts), the
// relay's one CBOR head reader; anything that reader does not recognise,
// however legal, goes to the generic path: a full DAG-CBOR decode (cbor.ts)
// and shape checks, which names the first defect. Both check key syntax,
// canonical prefixes, order and the key range the node's place allows; the
// layer check needs the tree and is done there.
//
// Encoding writes the fixed shape directly (tested byte-for-byte against the
// generic encoder), and a node that the fast path read and whose only change
// since is child CIDs is re-encoded by patching its old block (patchedBlock).
import { allocPooled, utf8Decode } from './bytes.ts';
import { decodeCbor } from './cbor.ts';
import { CborScanError, CborScanner, type ScanLimits } from './cbor-scan.ts';
import { cborHeadLength, cidLinkLength, writeCborHead, writeCidLink } from './cbor-write.ts';
import { type Cid, CidLinkWrapper, isCid } from './cid.ts';
import {
  commonKeyPrefixLength,
  commonPrefixLength,
  isValidMstKey,
  MAX_MST_KEY_LENGTH,
  MST_KEY_BYTE,
} from './mst-key.ts';

export class InvalidMstError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidMstError';
  }
}

/** One entry of a node; `Child` is whatever the tree hangs below it (decoders leave it null). */
export interface NodeEntry<Child> {
  /** Always a valid key, so ASCII: its UTF-8 bytes are its character codes. */
  readonly key: string;
  /** Readonly so that an unchanged entry object means an unchanged entry (see patchedBlock). */
  readonly value: Cid;
  right: Child | null;
}

/** A child as the encoder sees it: its CID, computed before its parent is encoded. */
export interface EncodedChild {
  cid: Cid | null;
}

/** What encodeNode needs of a node. */
export interface EncodableNode {
  left: EncodedChild | null;
  entries: readonly NodeEntry<EncodedChild>[];
}

/** A node block's content, checked except for layers (which need the node's place in the tree). */
export interface DecodedNode<Child> {
  l: Cid | null;
  entries: NodeEntry<Child>[];
  rights: (Cid | null)[];
  /** From the fast decoder only: where the links' CID bytes are (see NodeSource). */
  linkAt?: number[];
}

/**
 * Decodes and checks a node block: shape, key syntax, canonical prefixes,
 * order and range (lo < key < hi). Throws InvalidMstError naming the first
 * defect.
 */
export function decodeNode<Child>(
  bytes: Uint8Array,
  cid: Cid,
  lo: string | null,
  hi: string | null,
): DecodedNode<Child> {
  return decodeNodeFast<Child>(bytes, lo, hi) ?? decodeNodeGeneric<Child>(bytes, cid, lo, hi);
}

/** Throws InvalidMstError for the node `cid`. */
export function invalidNode(cid: Cid, why: string): never {
  throw new InvalidMstError(`MST node ${cid.$link}: ${why}`);
}

// --- generic decoding ----------------------------------------------------------

/**
 * Decodes a node through the generic DAG-CBOR decoder and checks its shape,
 * key syntax, canonical prefixes, order and range (lo < key < hi); throws
 * InvalidMstError naming the first defect.
 */
function decodeNodeGeneric<Child>(
  bytes: Uint8Array,
  cid: Cid,
  lo: string | null,
  hi: string | null,
): DecodedNode<Child> {
  let data: unknown;
  try {
    data = decodeCbor(bytes);
  } catch (err) {
    throw new InvalidMstError(`MST node ${cid.$link} is not DAG-CBOR: ${(err as Error).message}`);
  }
  if (!isPlainObject(data) || !hasExactKeys(data, NODE_KEYS)) invalidNode(cid, 'not an MST node');
  const obj = data as Record<string, unknown>;
  const l = obj.l;
  const e = obj.e;
  if (l !== null && !isCid(l)) invalidNode(cid, 'l is not a CID or null');
  if (!Array.isArray(e)) invalidNode(cid, 'e is not an array');
  const rawEntries = e as unknown[];

  const entries: NodeEntry<Child>[] = [];
  const rights: (Cid | null)[] = [];
  let prevBytes: Uint8Array = new Uint8Array(0);
  let prevKey: string | null = null;
  for (let i = 0; i < rawEntries.length; i++) {
    const re = rawEntries[i];
    if (!isPlainObject(re) || !hasExactKeys(re, ENTRY_KEYS))
      invalidNode(cid, `entry ${i} is not an MST entry`);
    const r = re as Record<string, unknown>;
    const { p, k, v, t } = r;
    if (typeof p !== 'number' || !Number.isInteger(p) || p < 0) invalidNode(cid, `entry ${i}: bad p`);
    if (!(k instanceof Uint8Array)) invalidNode(cid, `entry ${i}: k is not bytes`);
    if (!isCid(v)) invalidNode(cid, `entry ${i}: v is not a CID`);
    if (t !== null && !isCid(t)) invalidNode(cid, `entry ${i}: t is not a CID or null`);
    const pn = p as number;
    const kb = k as Uint8Array;
    if (pn > prevBytes.length) invalidNode(cid, `entry ${i}: prefix longer than previous key`);
    const keyBytes = new Uint8Array(pn + kb.length);
    keyBytes.set(prevBytes.subarray(0, pn), 0);
    keyBytes.set(kb, pn);
    if (i > 0 && commonPrefixLength(prevBytes, keyBytes) !== pn)
      invalidNode(cid, `entry ${i}: non-canonical prefix`);
    if (i === 0 && pn !== 0) invalidNode(cid, 'first entry has a prefix');
    let key: string;
    try {
      key = utf8Decode(keyBytes);
    } catch {
      invalidNode(cid, `entry ${i}: key is not UTF-8`);
    }
    if (!isValidMstKey(key)) invalidNode(cid, `entry ${i}: invalid key ${JSON.stringify(key.slice(0, 80))}`);
    if (prevKey !== null && !(prevKey < key)) invalidNode(cid, `entry ${i}: keys out of order`);
    if ((lo !== null && !(key > lo)) || (hi !== null && !(key < hi))) {
      invalidNode(cid, `entry ${i}: key outside the subtree's range`);
    }
    entries.push({ key, value: v as Cid, right: null });
    rights.push(t as Cid | null);
    prevBytes = keyBytes;
    prevKey = key;
  }
  return { l: l as Cid | null, entries, rights };
}

const NODE_KEYS = ['e', 'l'];
const ENTRY_KEYS = ['k', 'p', 't', 'v'];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && (v as object).constructor === Object;
}

function hasExactKeys(obj: Record<string, unknown>, keys: readonly string[]): boolean {
  let n = 0;
  for (const k in obj) {
    if (!keys.includes(k)) return false;
    n++;
  }
  return n === keys.length;
}

// --- fast decoding ---------------------------------------------------------------
//
// MST nodes have one canonical byte layout: a2 "e" [entries…] "l" link, each
// entry a4 "k" bytes "p" uint "t" link|null "v" link, every head minimal,
// every link a CIDv1 sha2-256 dag-cbor/raw. The scanner reads the heads
// (strict DAG-CBOR, every length checked against the bytes left); key bytes
// are checked against the key syntax without building a UTF-8 string first.
// Whatever is not this layout returns null (a scanner error included) and
// the generic path decides, so every input accepted here is canonical
// DAG-CBOR of the node shape, which the generic decoder reads to the same
// values.

/**
 * Limits for the fast path: a node is at most 3 deep (map, array, map; the
 * scanner's head reads do not nest further), and no string it accepts is
 * longer than a key. maxItems cannot bind before the end of the block (a
 * head is at least one byte, and blocks are far below 2^30 bytes: the CAR
 * reader bounds them); it is a small integer like every other limit so that
 * all ScanLimits objects keep one shape for the scanner's property loads.
 */
const NODE_SCAN_LIMITS: ScanLimits = {
  maxDepth: 3,
  maxItems: 2 ** 30,
  maxStringBytes: MAX_MST_KEY_LENGTH,
};

// Module-local copies of imported bindings read per entry or per byte: under
// tsx (how the relay runs) an imported binding is read through a getter on
// every access (two for CidLinkWrapper, re-exported from @atcute/cid), which
// profiled at ~20% of this decoder.
const LinkWrapper = CidLinkWrapper;
const KEY_BYTE = MST_KEY_BYTE;
const MAX_KEY_LENGTH = MAX_MST_KEY_LENGTH;
const SLASH = 0x2f;
/** Binary CID bytes of a CIDv1 sha2-256: version, codec, hash code, hash length, 32 bytes. */
const CID_V1_SHA256_BYTES = 36;

/** A Buffer view of a block, for its one-call latin1 string decoding (the fastest for short ASCII runs). */
function bufferView(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** Reads a CID link that is a CIDv1 sha2-256 dag-cbor/raw, or returns null (any other link, position unspecified). */
function readLink(s: CborScanner): Cid | null {
  const start = s.readCidLinkStart();
  const b = s.buf;
  if (s.pos - start !== CID_V1_SHA256_BYTES) return null;
  const codec = b[start + 1];
  if (
    b[start] !== 0x01 ||
    (codec !== 0x71 && codec !== 0x55) ||
    b[start + 2] !== 0x12 ||
    b[start + 3] !== 0x20
  ) {
    return null;
  }
  // (a view by constructor: subarray's species lookup costs more, twice per entry)
  return new LinkWrapper(new Uint8Array(b.buffer, b.byteOffset + start, CID_V1_SHA256_BYTES));
}

const NOT_A_LINK = false;

/** Reads a CID link (as readLink) or null; returns NOT_A_LINK for anything else. */
function readLinkOrNull(s: CborScanner): Cid | null | typeof NOT_A_LINK {
  if (s.readNull()) return null;
  const c = readLink(s);
  return c === null ? NOT_A_LINK : c;
}

/** The canonical, valid node in `b`, or null to defer to the generic path. */
function decodeNodeFast<Child>(
  b: Uint8Array,
  lo: string | null,
  hi: string | null,
): DecodedNode<Child> | null {
  try {
    return readCanonicalNode<Child>(new CborScanner(b, NODE_SCAN_LIMITS), lo, hi);
  } catch (err) {
    if (err instanceof CborScanError) return null;
    throw err;
  }
}

function readCanonicalNode<Child>(
  s: CborScanner,
  lo: string | null,
  hi: string | null,
): DecodedNode<Child> | null {
  const b = s.buf;
  if (s.readMapHead() !== 2 || !s.readTextIs('e')) return null;
  const count = s.readArrayHead();
  const entries: NodeEntry<Child>[] = [];
  const rights: (Cid | null)[] = [];
  let prevKey: string | null = null;
  let prevSlash = 0x7fffffff;
  let text: Buffer | null = null;
  const linkAt: number[] = [-1];
  for (let i = 0; i < count; i++) {
    if (s.readMapHead() !== 4 || !s.readTextIs('k')) return null;
    const suffixStart = s.readBytesStart(MAX_KEY_LENGTH);
    const suffixLength = s.pos - suffixStart;
    if (!s.readTextIs('p')) return null;
    const p = s.readUint();
    if (!s.readTextIs('t')) return null;
    const t = readLinkOrNull(s);
    if (t === NOT_A_LINK) return null;
    linkAt.push(t === null ? -1 : s.pos - CID_V1_SHA256_BYTES);
    if (!s.readTextIs('v')) return null;
    const v = readLink(s);
    if (v === null) return null;

    // Key: prefix of the previous key + suffix, with a canonical prefix
    // length, checked as isValidMstKey would check it: every byte from the
    // key alphabet, exactly one '/' (the previous key's, if within the
    // prefix), neither first nor last, at most MAX_MST_KEY_LENGTH long.
    const keyLength = p + suffixLength;
    if (keyLength > MAX_KEY_LENGTH) return null;
    let slash = p > prevSlash ? prevSlash : -1;
    if (prevKey === null) {
      if (p !== 0) return null;
    } else {
      if (p > prevKey.length) return null;
      // The prefix is canonical when the key differs from the previous one at p (or one ends there).
      if (p < prevKey.length && suffixLength > 0 && b[suffixStart] === prevKey.charCodeAt(p)) return null;
    }
    for (let j = 0; j < suffixLength; j++) {
      const c = b[suffixStart + j];
      if (c === SLASH) {
        if (slash !== -1) return null;
        slash = p + j;
      } else if (c >= 0x80 || KEY_BYTE[c] === 0) {
        return null;
      }
    }
    if (slash <= 0 || slash >= keyLength - 1) return null;
    text ??= bufferView(b);
    const suffix = text.toString('latin1', suffixStart, suffixStart + suffixLength);
    const key: string = p === 0 ? suffix : (prevKey as string).slice(0, p) + suffix;
    if (prevKey !== null && !(prevKey < key)) return null;
    if ((lo !== null && !(key > lo)) || (hi !== null && !(key < hi))) return null;
    entries.push({ key, value: v, right: null });
    rights.push(t);
    prevKey = key;
    prevSlash = slash;
  }
  if (!s.readTextIs('l')) return null;
  const l = readLinkOrNull(s);
  if (l === NOT_A_LINK || !s.atEnd()) return null;
  if (l !== null) linkAt[0] = s.pos - CID_V1_SHA256_BYTES;
  return { l, entries, rights, linkAt };
}

// --- node encoding -----------------------------------------------------------
//
// MST nodes have a fixed shape, so they are written directly as canonical
// DAG-CBOR (map keys in length-then-bytewise order: `e` before `l`; `k`, `p`,
// `t`, `v`) instead of going through the generic encoder; the test suite
// checks the output byte-for-byte against encodeCbor.

// the shared writers, copied into module-local constants like the other hot
// imports above (under tsx an imported binding is read through a getter)
const headLength = cborHeadLength;
const cidLength = cidLinkLength;
const writeHead = writeCborHead;
const writeCid = writeCidLink;

function writeKey1(buf: Uint8Array, pos: number, ch: number): number {
  buf[pos] = 0x61; // text(1)
  buf[pos + 1] = ch;
  return pos + 2;
}

/** The canonical block of a node whose children's CIDs are known. */
export function encodeNode(n: EncodableNode): Uint8Array {
  const es = n.entries;
  // Sizing pass, so the block is written into one exact allocation.
  const prefixes = new Array<number>(es.length);
  let size = 1 + 2 + headLength(es.length) + 2 + cidLength(n.left ? n.left.cid : null);
  for (let i = 0; i < es.length; i++) {
    const e = es[i];
    const p = i === 0 ? 0 : commonKeyPrefixLength(es[i - 1].key, e.key);
    prefixes[i] = p;
    const suffix = e.key.length - p;
    size += 1 + 2 + headLength(suffix) + suffix + 2 + headLength(p) + 2;
    size += cidLength(e.right ? e.right.cid : null) + 2 + cidLength(e.value);
  }
  const buf = allocPooled(size);
  let pos = writeHead(buf, 0, 5, 2);
  pos = writeKey1(buf, pos, 0x65); // "e"
  pos = writeHead(buf, pos, 4, es.length);
  for (let i = 0; i < es.length; i++) {
    const e = es[i];
    const p = prefixes[i];
    pos = writeHead(buf, pos, 5, 4);
    pos = writeKey1(buf, pos, 0x6b); // "k"
    const key = e.key;
    pos = writeHead(buf, pos, 2, key.length - p);
    for (let j = p; j < key.length; j++) buf[pos++] = key.charCodeAt(j);
    pos = writeKey1(buf, pos, 0x70); // "p"
    pos = writeHead(buf, pos, 0, p);
    pos = writeKey1(buf, pos, 0x74); // "t"
    pos = writeCid(buf, pos, e.right ? e.right.cid : null);
    pos = writeKey1(buf, pos, 0x76); // "v"
    pos = writeCid(buf, pos, e.value);
  }
  pos = writeKey1(buf, pos, 0x6c); // "l"
  pos = writeCid(buf, pos, n.left ? n.left.cid : null);
  if (pos !== size) throw new Error(`MST node encoder size mismatch (${pos} != ${size})`);
  return buf;
}

// --- re-encoding by patching ---------------------------------------------------
//
// Undoing a commit's operations changes one node per key structurally and,
// above it, only child links: every ancestor on the path gets a new child CID
// and nothing else. A node the fast decoder read was in the one canonical
// layout, where each link is 41 bytes at a fixed offset (tag, head, 0x00,
// then the 36 CID bytes), so while it still has the same entries (the same
// entry objects, whose key and value are readonly, with the same child slots
// present) its canonical encoding is its old block with the child CIDs
// written over the old ones. That is what encodeNode would produce, without
// walking the keys again.

/** The block a node was fast-decoded from and what it held then. */
export interface NodeSource<Child> {
  bytes: Uint8Array;
  entries: NodeEntry<Child>[];
  /** Offsets of the 36 CID bytes of `l`, then of each entry's `t` (-1 where null). */
  linkAt: number[];
}

/** The node's block from its source with the current child CIDs, or null if it changed otherwise. */
export function patchedBlock<Child extends EncodedChild>(
  n: { left: Child | null; entries: readonly NodeEntry<Child>[] },
  src: NodeSource<Child>,
): Uint8Array | null {
  const es = n.entries;
  const linkAt = src.linkAt;
  if (es.length !== src.entries.length) return null;
  if ((n.left === null) !== linkAt[0] < 0 || (n.left && n.left.cid!.bytes.length !== 36)) return null;
  for (let i = 0; i < es.length; i++) {
    const e = es[i];
    if (e !== src.entries[i]) return null;
    if ((e.right === null) !== linkAt[i + 1] < 0 || (e.right && e.right.cid!.bytes.length !== 36))
      return null;
  }
  const out = allocPooled(src.bytes.length);
  out.set(src.bytes);
  if (n.left) out.set(n.left.cid!.bytes, linkAt[0]);
  for (let i = 0; i < es.length; i++) {
    const r = es[i].right;
    if (r) out.set(r.cid!.bytes, linkAt[i + 1]);
  }
  return out;
}

/** The node as the generic data model sees it (for tests and debugging). */
export function mstNodeData(bytes: Uint8Array): {
  l: Cid | null;
  e: { p: number; k: Uint8Array; v: Cid; t: Cid | null }[];
} {
  return decodeCbor(bytes) as { l: Cid | null; e: { p: number; k: Uint8Array; v: Cid; t: Cid | null }[] };
}

/** Both node decoders, for the differential tests (the fast one must agree with the generic one). */
export const nodeDecodersForTests = {
  fast: (bytes: Uint8Array, lo: string | null, hi: string | null): DecodedNode<never> | null =>
    decodeNodeFast<never>(bytes, lo, hi),
  generic: (bytes: Uint8Array, cid: Cid, lo: string | null, hi: string | null): DecodedNode<never> =>
    decodeNodeGeneric<never>(bytes, cid, lo, hi),
};
