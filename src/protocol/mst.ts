// The atproto Merkle Search Tree (repository spec): the sorted key → record
// CID map under every repo commit. A key's layer is the number of leading
// zero bits of sha-256(key) counted in 2-bit chunks (fanout 4); a node holds
// the keys of one layer in order, with subtrees of the layer below between
// them. Nodes are DAG-CBOR `{l, e: [{p, k, v, t}]}` with keys prefix-compressed
// against the previous entry, so the root CID commits to the whole map and
// the same map always yields the same tree.
//
// The tree here is mutable and in memory: a write marks only the nodes on its
// path dirty, and `rootCid()` re-encodes and re-hashes just those, which is
// what lets the simulator apply hundreds of thousands of writes. A tree can
// also be opened over a block map (`Mst.load`) with nodes decoded only when an
// operation reaches them; reaching one whose block is absent throws
// `MissingBlockError`. That is how a sync 1.1 proof is checked: the partial
// tree a `#commit` carries is enough for the operations, or the proof fails.
// Loaded nodes are validated (shape, key syntax, order, canonical prefix,
// layer, key range) so a hostile block cannot produce an inconsistent tree.
// Proof checks run for every commit a relay sees, so loading has fast paths
// that never change what is accepted: canonical nodes are read by a
// purpose-built decoder (anything else goes through the generic DAG-CBOR
// path), key heights are hashed in plain JS, and a loaded node whose only
// change is a child CID is re-encoded by patching its original block.
import { utf8Decode, utf8Encode } from './bytes.ts';
import { decodeCbor } from './cbor.ts';
import type { Cid } from './cid.ts';
import { CidLinkWrapper, cidForCbor, isCid, sha256 } from './cid.ts';

/** Anything that hands out blocks by CID (the CAR module's BlockMap fits). */
export interface BlockSource {
  get(cid: Cid): Uint8Array | undefined;
}

export class MissingBlockError extends Error {
  constructor(readonly cid: Cid) {
    super(`missing MST block ${cid.$link}`);
    this.name = 'MissingBlockError';
  }
}

export class InvalidMstError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidMstError';
  }
}

export class InvalidMstKeyError extends Error {
  constructor(readonly key: string) {
    super(`invalid MST key: ${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}`);
    this.name = 'InvalidMstKeyError';
  }
}

export const MAX_MST_KEY_LENGTH = 1024;
const KEY_SYNTAX = /^[a-zA-Z0-9_~\-:.]+\/[a-zA-Z0-9_~\-:.]+$/;

/** Repository keys are `collection/rkey`: one slash, both sides non-empty, a restricted ASCII set. */
export function isValidMstKey(key: string): boolean {
  return key.length <= MAX_MST_KEY_LENGTH && KEY_SYNTAX.test(key);
}

/** The key's layer: leading zero bits of sha-256(key), in 2-bit chunks. */
export function keyHeight(key: string | Uint8Array): number {
  return sha256LeadingZeros(typeof key === 'string' ? utf8Encode(key) : key) >> 1;
}

/** keyHeight of a key already checked by isValidMstKey (ASCII, so its characters are its bytes). */
function validKeyHeight(key: string): number {
  const len = key.length;
  const m = shaMessage(len);
  for (let i = 0; i < len; i++) m[i] = key.charCodeAt(i);
  return leadingZeros(sha256Words(len)) >> 1;
}

// Key heights are computed for every key of every node a proof check loads
// (the layer check), i.e. dozens of sha-256s of ~30-byte inputs per commit.
// For inputs that small the fixed cost of a node:crypto call (argument
// checks, a Buffer for the digest) is larger than the hashing itself, so
// this is a plain-JS SHA-256 (FIPS 180-4) that returns only what a height
// needs; the tests check it against node:crypto for every padding boundary.
const SHA256_K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
const MAX_HASHED_HERE = 4 * MAX_MST_KEY_LENGTH;
const shaW = new Int32Array(64);
const shaState = new Int32Array(8);
let shaPad = new Uint8Array(128);

/** The scratch buffer, large enough for a `len`-byte message and its padding; the caller writes the message. */
function shaMessage(len: number): Uint8Array {
  const padded = ((len + 72) >>> 6) << 6;
  if (shaPad.length < padded) shaPad = new Uint8Array(padded);
  return shaPad;
}

/** sha-256 of the `len`-byte message in the scratch buffer, into `shaState` (eight big-endian words). */
function sha256Words(len: number): Int32Array {
  const padded = ((len + 72) >>> 6) << 6; // message + 0x80 + 64-bit length, in whole blocks
  const m = shaPad;
  m[len] = 0x80;
  m.fill(0, len + 1, padded - 4);
  const bits = len * 8; // keys are far below 2^29 bytes, so the high length word is 0
  m[padded - 4] = bits >>> 24;
  m[padded - 3] = bits >>> 16;
  m[padded - 2] = bits >>> 8;
  m[padded - 1] = bits;
  const w = shaW;
  const k = SHA256_K;
  let h0 = 0x6a09e667;
  let h1 = 0xbb67ae85 | 0;
  let h2 = 0x3c6ef372;
  let h3 = 0xa54ff53a | 0;
  let h4 = 0x510e527f;
  let h5 = 0x9b05688c | 0;
  let h6 = 0x1f83d9ab;
  let h7 = 0x5be0cd19;
  for (let q = 0; q < padded; q += 64) {
    let a = h0;
    let b = h1;
    let c = h2;
    let d = h3;
    let e = h4;
    let f = h5;
    let g = h6;
    let h = h7;
    // One loop for the message schedule and the rounds (measured ~15% faster than two).
    for (let i = 0; i < 64; i++) {
      let wi: number;
      if (i < 16) {
        const j = q + (i << 2);
        wi = (m[j] << 24) | (m[j + 1] << 16) | (m[j + 2] << 8) | m[j + 3];
      } else {
        const x = w[i - 15];
        const y = w[i - 2];
        const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        wi = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
      }
      w[i] = wi;
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + (g ^ (e & (f ^ g))) + k[i] + wi) | 0; // ch(e, f, g)
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) | (c & (a | b)))) | 0; // maj(a, b, c)
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
    h5 = (h5 + f) | 0;
    h6 = (h6 + g) | 0;
    h7 = (h7 + h) | 0;
  }
  const out = shaState;
  out[0] = h0;
  out[1] = h1;
  out[2] = h2;
  out[3] = h3;
  out[4] = h4;
  out[5] = h5;
  out[6] = h6;
  out[7] = h7;
  return out;
}

/** Leading zero bits of sha-256(data) (0..256). */
function sha256LeadingZeros(data: Uint8Array): number {
  if (data.length > MAX_HASHED_HERE) {
    // Not a valid key anyway; node:crypto, so the scratch buffer stays key-sized.
    const digest = sha256(data);
    let zeros = 0;
    for (let i = 0; i < digest.length; i++) {
      const z = Math.clz32(digest[i]) - 24;
      zeros += z;
      if (z < 8) break;
    }
    return zeros;
  }
  shaMessage(data.length).set(data, 0);
  return leadingZeros(sha256Words(data.length));
}

function leadingZeros(words: Int32Array): number {
  let zeros = 0;
  for (let i = 0; i < 8; i++) {
    const z = Math.clz32(words[i]);
    zeros += z;
    if (z < 32) break;
  }
  return zeros;
}

/** The full sha-256 digest computed by the key-height hasher (for its tests). */
export function keyHashForTests(data: Uint8Array): Uint8Array {
  shaMessage(data.length).set(data, 0);
  const words = sha256Words(data.length);
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    out[i * 4] = words[i] >>> 24;
    out[i * 4 + 1] = words[i] >>> 16;
    out[i * 4 + 2] = words[i] >>> 8;
    out[i * 4 + 3] = words[i];
  }
  return out;
}

/** Length of the shared byte prefix (the `p` of a node entry). */
export function commonPrefixLength(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

interface MstEntry {
  /** Always a valid key, so ASCII: its UTF-8 bytes are its character codes. */
  readonly key: string;
  /** Readonly so that an unchanged entry object means an unchanged entry (see patchedBlock). */
  readonly value: Cid;
  right: MstNode | null;
}

/** One tree node. A stub (`loaded` false) only knows its CID until an operation reaches it. */
class MstNode {
  left: MstNode | null = null;
  entries: MstEntry[] = [];
  /** null while dirty; set by encoding (or known up front for stubs). */
  cid: Cid | null;
  bytes: Uint8Array | null = null;
  loaded: boolean;
  // For stubs: the open key range the subtree must stay within (null = unbounded).
  lo: string | null = null;
  hi: string | null = null;
  /** For nodes read by the fast decoder: the block they came from, to re-encode by patching. */
  source: NodeSource | null = null;

  constructor(
    public layer: number,
    cid: Cid | null,
    loaded: boolean,
  ) {
    this.cid = cid;
    this.loaded = loaded;
  }

  isEmpty(): boolean {
    return this.entries.length === 0 && this.left === null;
  }

  slot(i: number): MstNode | null {
    return i === 0 ? this.left : this.entries[i - 1].right;
  }

  setSlot(i: number, n: MstNode | null): void {
    if (i === 0) this.left = n;
    else this.entries[i - 1].right = n;
  }

  markDirty(): void {
    this.cid = null;
    this.bytes = null;
  }

  /** Index of the first entry whose key is >= key (entries.length if none). */
  lowerBound(key: string): number {
    const es = this.entries;
    let lo = 0;
    let hi = es.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (es[mid].key < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export class Mst {
  private root: MstNode;
  private readonly blocks: BlockSource | null;

  private constructor(root: MstNode, blocks: BlockSource | null) {
    this.root = root;
    this.blocks = blocks;
  }

  static empty(): Mst {
    return new Mst(new MstNode(0, null, true), null);
  }

  /** Builds a tree from key → value pairs (any order). */
  static fromEntries(entries: Iterable<readonly [string, Cid]>): Mst {
    const t = Mst.empty();
    for (const [k, v] of entries) t.add(k, v);
    return t;
  }

  /** Opens the tree rooted at `root` over `blocks`, decoding nodes only as operations reach them. */
  static load(blocks: BlockSource, root: Cid): Mst {
    return new Mst(new MstNode(-1, root, false), blocks);
  }

  /** The record CID at `key`, or null. */
  get(key: string): Cid | null {
    checkKey(key);
    let node: MstNode | null = this.root;
    while (node) {
      this.ensure(node);
      const i = node.lowerBound(key);
      if (i < node.entries.length && node.entries[i].key === key) return node.entries[i].value;
      node = node.slot(i);
    }
    return null;
  }

  /**
   * The smallest key >= `bound` (any string, not necessarily a valid key), or
   * null. Loads only the nodes on one path down, so listing what lies between
   * far-apart keys (e.g. a repo's collections) reads a few nodes per answer.
   */
  firstKeyAtOrAfter(bound: string): string | null {
    let best: string | null = null;
    let node: MstNode | null = this.root;
    while (node) {
      this.ensure(node);
      const i = node.lowerBound(bound);
      if (i < node.entries.length) {
        if (node.entries[i].key === bound) return bound;
        best = node.entries[i].key; // the subtree below slot i holds only keys smaller than this one
      }
      node = node.slot(i);
    }
    return best;
  }

  /** Adds a new key; throws if it is already present. */
  add(key: string, value: Cid): void {
    if (this.get(key) !== null) throw new Error(`MST key already present: ${key}`);
    this.put(key, value);
  }

  /** Changes an existing key's value and returns the old one; throws if absent. */
  update(key: string, value: Cid): Cid {
    if (this.get(key) === null) throw new Error(`MST key not present: ${key}`);
    return this.put(key, value) as Cid;
  }

  /** Inserts or replaces `key`; returns the previous value (null if it was absent). */
  put(key: string, value: Cid): Cid | null {
    checkKey(key);
    const h = validKeyHeight(key);
    const root = this.root;
    this.ensure(root);
    if (root.isEmpty()) {
      root.layer = h;
      root.entries.push({ key, value, right: null });
      root.markDirty();
      return null;
    }
    if (h > root.layer) {
      // A key above the current top (so certainly absent): split the tree
      // around it and raise the root, adding single-child levels in between.
      let [lo, hi] = this.split(root, key);
      for (let layer = root.layer + 1; layer < h; layer++) {
        if (lo) lo = parentOf(lo, layer);
        if (hi) hi = parentOf(hi, layer);
      }
      const top = new MstNode(h, null, true);
      top.left = lo;
      top.entries.push({ key, value, right: hi });
      this.root = top;
      return null;
    }
    return this.insertAt(root, key, h, value);
  }

  /** Removes `key` and returns its value; throws if absent. */
  delete(key: string): Cid {
    checkKey(key);
    const prev = this.deleteAt(this.root, key);
    if (prev === null) throw new Error(`MST key not present: ${key}`);
    // A root left with no entries of its own is replaced by its only child.
    let root = this.root;
    this.ensure(root);
    while (root.entries.length === 0 && root.left !== null) {
      root = root.left;
      this.ensure(root);
    }
    if (root.isEmpty()) root.layer = 0;
    this.root = root;
    return prev;
  }

  /**
   * The root CID. Re-encodes only dirty nodes; each newly encoded node is
   * reported to `onNewBlock` (these are the blocks a commit adds).
   */
  rootCid(onNewBlock?: (cid: Cid, bytes: Uint8Array) => void): Cid {
    return this.encode(this.root, onNewBlock);
  }

  /** The root node's block (encoding dirty nodes first). */
  rootBlock(): [Cid, Uint8Array] {
    const cid = this.rootCid();
    return [cid, this.bytesOf(this.root)];
  }

  /** The layer of the root node (0 for an empty tree). */
  rootLayer(): number {
    this.ensure(this.root);
    return this.root.layer;
  }

  /** All key/value pairs in key order (loads every node). */
  *entries(): Generator<[string, Cid]> {
    yield* this.walkEntries(this.root);
  }

  /** Every node block of the tree (encodes dirty nodes first; loads every node). */
  *nodeBlocks(): Generator<[Cid, Uint8Array]> {
    this.rootCid();
    const stack: MstNode[] = [this.root];
    while (stack.length > 0) {
      const n = stack.pop()!;
      this.ensure(n);
      yield [n.cid!, this.bytesOf(n)];
      if (n.left) stack.push(n.left);
      for (const e of n.entries) if (e.right) stack.push(e.right);
    }
  }

  /**
   * The blocks of the sync 1.1 covering proof for `key` (atproto's
   * getCoveringProof): the nodes on the search path to the key, down the
   * subtree just left of it and the one just right of it. Over the tree
   * after a commit, for every key the commit touched, these are the nodes a
   * verifier needs to invert the commit's operations.
   */
  coveringProof(key: string, out: (cid: Cid, bytes: Uint8Array) => void): void {
    checkKey(key);
    this.rootCid();
    const seen = new Set<MstNode>();
    const emit = (n: MstNode) => {
      if (seen.has(n)) return;
      seen.add(n);
      out(n.cid!, this.bytesOf(n));
    };
    // Left side: every node on the way down through the slot where the key
    // is (or would be); within a found key's left subtree that is its right spine.
    for (let n: MstNode | null = this.root; n; ) {
      this.ensure(n);
      emit(n);
      n = n.slot(n.lowerBound(key));
    }
    // Right side: at each node, the subtree after the key if the key is
    // here, else the subtree where the key would be (as the reference does).
    for (let n: MstNode | null = this.root; n; ) {
      this.ensure(n);
      emit(n);
      const i = n.lowerBound(key);
      if (i < n.entries.length) n = n.entries[i].key === key ? n.entries[i].right : n.slot(i);
      else n = n.slot(i);
    }
  }

  // --- internals ---------------------------------------------------------

  private ensure(n: MstNode): void {
    if (!n.loaded) this.loadNode(n);
  }

  private bytesOf(n: MstNode): Uint8Array {
    if (n.bytes) return n.bytes;
    // A loaded node keeps its block; a stub's block is fetched here.
    const b = this.blocks?.get(n.cid!);
    if (!b) throw new MissingBlockError(n.cid!);
    return b;
  }

  private insertAt(node: MstNode, key: string, h: number, value: Cid): Cid | null {
    this.ensure(node);
    const i = node.lowerBound(key);
    if (i < node.entries.length && node.entries[i].key === key) {
      const e = node.entries[i];
      const prev = e.value;
      node.entries[i] = { key, value, right: e.right }; // a new entry: entries are immutable but for `right`
      node.markDirty();
      return prev;
    }
    if (h === node.layer) {
      const child = node.slot(i);
      const [lo, hi] = child ? this.split(child, key) : [null, null];
      node.setSlot(i, lo);
      node.entries.splice(i, 0, { key, value, right: hi });
      node.markDirty();
      return null;
    }
    let child = node.slot(i);
    if (!child) {
      child = new MstNode(node.layer - 1, null, true);
      node.setSlot(i, child);
    }
    const prev = this.insertAt(child, key, h, value);
    node.markDirty();
    return prev;
  }

  /** Splits `node` (which does not contain `key`) into the parts below and above `key`. */
  private split(node: MstNode, key: string): [MstNode | null, MstNode | null] {
    this.ensure(node);
    const i = node.lowerBound(key);
    const child = node.slot(i);
    const [lo, hi] = child ? this.split(child, key) : [null, null];
    const right = new MstNode(node.layer, null, true);
    right.entries = node.entries.splice(i);
    right.left = hi;
    node.setSlot(i, lo);
    node.markDirty();
    return [node.isEmpty() ? null : node, right.isEmpty() ? null : right];
  }

  private deleteAt(node: MstNode, key: string): Cid | null {
    this.ensure(node);
    const i = node.lowerBound(key);
    if (i < node.entries.length && node.entries[i].key === key) {
      const e = node.entries[i];
      const merged = this.merge(node.slot(i), e.right);
      node.entries.splice(i, 1);
      node.setSlot(i, merged);
      node.markDirty();
      return e.value;
    }
    const child = node.slot(i);
    if (!child) return null;
    const prev = this.deleteAt(child, key);
    if (prev === null) return null;
    if (child.isEmpty()) node.setSlot(i, null);
    node.markDirty();
    return prev;
  }

  /** Joins two adjacent same-layer subtrees (every key of `a` below every key of `b`). */
  private merge(a: MstNode | null, b: MstNode | null): MstNode | null {
    if (!a) return b;
    if (!b) return a;
    this.ensure(a);
    this.ensure(b);
    const n = a.entries.length;
    const inner = this.merge(a.slot(n), b.left);
    a.setSlot(n, inner);
    for (const e of b.entries) a.entries.push(e);
    a.markDirty();
    return a;
  }

  private encode(n: MstNode, onNewBlock?: (cid: Cid, bytes: Uint8Array) => void): Cid {
    if (n.cid) return n.cid;
    if (n.left) this.encode(n.left, onNewBlock);
    for (const e of n.entries) if (e.right) this.encode(e.right, onNewBlock);
    const bytes = (n.source && patchedBlock(n, n.source)) || encodeNode(n);
    const cid = cidForCbor(bytes);
    n.cid = cid;
    n.bytes = bytes;
    onNewBlock?.(cid, bytes);
    return cid;
  }

  private *walkEntries(n: MstNode): Generator<[string, Cid]> {
    this.ensure(n);
    if (n.left) yield* this.walkEntries(n.left);
    for (const e of n.entries) {
      yield [e.key, e.value];
      if (e.right) yield* this.walkEntries(e.right);
    }
  }

  /** Decodes and validates a stub's block in place. */
  private loadNode(n: MstNode): void {
    const cid = n.cid!;
    const bytes = this.blocks?.get(cid);
    if (!bytes) throw new MissingBlockError(cid);
    // The fast decoder accepts only canonical, valid nodes and yields exactly
    // what the generic path would; on anything else the generic path decides
    // (and names the defect).
    const { l, entries, rights, linkAt } =
      decodeNodeFast(bytes, n.lo, n.hi) ?? decodeNodeGeneric(bytes, cid, n.lo, n.hi);

    const heights = new Array<number>(entries.length);
    for (let i = 0; i < entries.length; i++) heights[i] = validKeyHeight(entries[i].key);
    if (n.layer === -1) {
      if (entries.length > 0) n.layer = heights[0];
      else if (l === null) n.layer = 0;
      else invalidNode(cid, 'root node has a subtree but no entries');
    } else if (entries.length === 0 && l === null) {
      invalidNode(cid, 'empty non-root node');
    }
    for (let i = 0; i < entries.length; i++) {
      if (heights[i] !== n.layer) invalidNode(cid, `key ${entries[i].key} is not on layer ${n.layer}`);
    }
    let hasChildren = l !== null;
    for (const t of rights) if (t !== null) hasChildren = true;
    if (hasChildren && n.layer === 0) invalidNode(cid, 'layer-0 node has subtrees');

    // Replace child CIDs by stubs one layer down, each bounded by its neighbours.
    n.left = stubNode(n.layer - 1, l, n.lo, entries.length > 0 ? entries[0].key : n.hi);
    for (let i = 0; i < entries.length; i++) {
      const hi = i + 1 < entries.length ? entries[i + 1].key : n.hi;
      entries[i].right = stubNode(n.layer - 1, rights[i], entries[i].key, hi);
    }
    n.entries = entries;
    n.bytes = bytes;
    n.loaded = true;
    if (linkAt) n.source = { bytes, entries: entries.slice(), linkAt };
  }
}

// --- re-encoding by patching ---------------------------------------------------
//
// Undoing a commit's operations changes one node per key structurally and,
// above it, only child links: every ancestor on the path gets a new child CID
// and nothing else. A node the fast decoder read was in the one canonical
// layout, where each link is 41 bytes at a fixed offset (tag, head, 0x00,
// then the 36 CID bytes), so while it still has the same entries (the same
// entry objects, whose key and value are readonly, with the same child slots
// present) its canonical encoding is
// its old block with the child CIDs written over the old ones. That is what
// encodeNode would produce, without walking the keys again.

/** The block a node was fast-decoded from and what it held then. */
interface NodeSource {
  bytes: Uint8Array;
  entries: MstEntry[];
  /** Offsets of the 36 CID bytes of `l`, then of each entry's `t` (-1 where null). */
  linkAt: number[];
}

/** The node's block from its source with the current child CIDs, or null if it changed otherwise. */
function patchedBlock(n: MstNode, src: NodeSource): Uint8Array | null {
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
  const out = src.bytes.slice();
  if (n.left) out.set(n.left.cid!.bytes, linkAt[0]);
  for (let i = 0; i < es.length; i++) {
    const r = es[i].right;
    if (r) out.set(r.cid!.bytes, linkAt[i + 1]);
  }
  return out;
}

/** A node block's content, checked except for layers (which need the node's place in the tree). */
interface DecodedNode {
  l: Cid | null;
  entries: MstEntry[];
  rights: (Cid | null)[];
  /** From the fast decoder only: where the links' CID bytes are (see NodeSource). */
  linkAt?: number[];
}

/**
 * Decodes a node through the generic DAG-CBOR decoder and checks its shape,
 * key syntax, canonical prefixes, order and range (lo < key < hi); throws
 * InvalidMstError naming the first defect.
 */
function decodeNodeGeneric(bytes: Uint8Array, cid: Cid, lo: string | null, hi: string | null): DecodedNode {
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

  const entries: MstEntry[] = [];
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

// --- fast node decoding --------------------------------------------------------
//
// Every node a proof check reaches is decoded, and through the generic path
// that is a full DAG-CBOR decode into objects, an unwrap walk, then the shape
// checks. MST nodes have one canonical byte layout, so the common case is
// read here straight from the block: a2 "e" [entries…] "l" link, each entry
// a4 "k" bytes "p" uint "t" link|null "v" link, every length minimal, every
// link a CIDv1 sha2-256 dag-cbor/raw (tag 42, 0x00 prefix), key bytes checked
// against the key syntax without building a UTF-8 string first. Anything
// this reader does not recognise, however legal, returns null and the
// generic path decides, so the accepted set and the result are exactly the
// generic path's: every input accepted here is canonical DAG-CBOR of the
// node shape, which the generic decoder reads to the same values.

/** Bytes allowed in a key besides the one '/' ([a-zA-Z0-9_~\-:.]). */
const KEY_BYTE = (() => {
  const t = new Uint8Array(128);
  const allowed = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_~-:.';
  for (let i = 0; i < allowed.length; i++) t[allowed.charCodeAt(i)] = 1;
  return t;
})();
const SLASH = 0x2f;

/** A Buffer view of a block, for its one-call latin1 string decoding (the fastest for short ASCII runs). */
function bufferView(b: Uint8Array): Buffer {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * Reads a minimally encoded CBOR head of major type `major` at `pos` (values
 * below 2^16 only). Returns the value and sets `fastPos` past the head, or
 * returns -1.
 */
let fastPos = 0;
function readHead(b: Uint8Array, pos: number, major: number): number {
  if (pos >= b.length) return -1;
  const ib = b[pos];
  if (ib >> 5 !== major) return -1;
  const info = ib & 0x1f;
  if (info < 24) {
    fastPos = pos + 1;
    return info;
  }
  if (info === 24) {
    if (pos + 2 > b.length) return -1;
    const v = b[pos + 1];
    if (v < 24) return -1;
    fastPos = pos + 2;
    return v;
  }
  if (info === 25) {
    if (pos + 3 > b.length) return -1;
    const v = (b[pos + 1] << 8) | b[pos + 2];
    if (v < 0x100) return -1;
    fastPos = pos + 3;
    return v;
  }
  return -1;
}

/** Reads a CID link (tag 42, bytes(37), 0x00, CIDv1 sha2-256 dag-cbor/raw) at `pos`, or returns null. */
function readLink(b: Uint8Array, pos: number): Cid | null {
  if (pos + 41 > b.length) return null;
  if (b[pos] !== 0xd8 || b[pos + 1] !== 42 || b[pos + 2] !== 0x58 || b[pos + 3] !== 37 || b[pos + 4] !== 0) {
    return null;
  }
  const codec = b[pos + 6];
  if (
    b[pos + 5] !== 0x01 ||
    (codec !== 0x71 && codec !== 0x55) ||
    b[pos + 7] !== 0x12 ||
    b[pos + 8] !== 0x20
  ) {
    return null;
  }
  fastPos = pos + 41;
  return new CidLinkWrapper(new Uint8Array(b.buffer, b.byteOffset + pos + 5, 36));
}

const NULL_LINK = 0xf6;
const NOT_A_LINK = false;

/** Reads a CID link or null at `pos`; returns false if it is neither. */
function readLinkOrNull(b: Uint8Array, pos: number): Cid | null | typeof NOT_A_LINK {
  if (pos < b.length && b[pos] === NULL_LINK) {
    fastPos = pos + 1;
    return null;
  }
  const c = readLink(b, pos);
  return c === null ? NOT_A_LINK : c;
}

function isKey1(b: Uint8Array, pos: number, ch: number): boolean {
  return pos + 2 <= b.length && b[pos] === 0x61 && b[pos + 1] === ch;
}

/** The canonical, valid node in `b`, or null to defer to the generic path. */
function decodeNodeFast(b: Uint8Array, lo: string | null, hi: string | null): DecodedNode | null {
  if (b.length < 4 || b[0] !== 0xa2 || !isKey1(b, 1, CH_E)) return null;
  const count = readHead(b, 3, 4);
  if (count < 0) return null;
  let pos = fastPos;
  const entries: MstEntry[] = [];
  const rights: (Cid | null)[] = [];
  let prevKey: string | null = null;
  let prevSlash = 0x7fffffff;
  let text: Buffer | null = null;
  const linkAt: number[] = [-1];
  for (let i = 0; i < count; i++) {
    if (pos >= b.length || b[pos] !== 0xa4 || !isKey1(b, pos + 1, CH_K)) return null;
    const suffixLength = readHead(b, pos + 3, 2);
    if (suffixLength < 0) return null;
    pos = fastPos;
    if (pos + suffixLength > b.length) return null;
    const suffixStart = pos;
    pos += suffixLength;
    if (!isKey1(b, pos, CH_P)) return null;
    const p = readHead(b, pos + 2, 0);
    if (p < 0) return null;
    pos = fastPos;
    if (!isKey1(b, pos, CH_T)) return null;
    const t = readLinkOrNull(b, pos + 2);
    if (t === NOT_A_LINK) return null;
    pos = fastPos;
    linkAt.push(t === null ? -1 : pos - 36);
    if (!isKey1(b, pos, CH_V)) return null;
    const v = readLink(b, pos + 2);
    if (v === null) return null;
    pos = fastPos;

    // Key: prefix of the previous key + suffix, with a canonical prefix
    // length, checked as isValidMstKey would check it: every byte from the
    // key alphabet, exactly one '/' (the previous key's, if within the
    // prefix), neither first nor last, at most MAX_MST_KEY_LENGTH long.
    const keyLength = p + suffixLength;
    if (keyLength > MAX_MST_KEY_LENGTH) return null;
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
  if (!isKey1(b, pos, CH_L)) return null;
  const l = readLinkOrNull(b, pos + 2);
  if (l === NOT_A_LINK || fastPos !== b.length) return null;
  if (l !== null) linkAt[0] = fastPos - 36;
  return { l, entries, rights, linkAt };
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

/** A not-yet-loaded child on `layer`, whose keys must lie strictly between lo and hi. */
function stubNode(layer: number, cid: Cid | null, lo: string | null, hi: string | null): MstNode | null {
  if (cid === null) return null;
  const s = new MstNode(layer, cid, false);
  s.lo = lo;
  s.hi = hi;
  return s;
}

function invalidNode(cid: Cid, why: string): never {
  throw new InvalidMstError(`MST node ${cid.$link}: ${why}`);
}

function checkKey(key: string): void {
  if (!isValidMstKey(key)) throw new InvalidMstKeyError(key);
}

function parentOf(child: MstNode, layer: number): MstNode {
  const p = new MstNode(layer, null, true);
  p.left = child;
  return p;
}

// --- node encoding -----------------------------------------------------------
//
// MST nodes have a fixed shape, so they are written directly as canonical
// DAG-CBOR (map keys in length-then-bytewise order: `e` before `l`; `k`, `p`,
// `t`, `v`) instead of going through the generic encoder; the test suite
// checks the output byte-for-byte against encodeCbor.

function headLength(n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function cidLength(c: Cid | null): number {
  if (!c) return 1;
  const n = c.bytes.length + 1;
  return 2 + headLength(n) + n;
}

function writeHead(buf: Uint8Array, pos: number, major: number, n: number): number {
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

function writeCid(buf: Uint8Array, pos: number, c: Cid | null): number {
  if (!c) {
    buf[pos] = 0xf6; // null
    return pos + 1;
  }
  buf[pos] = 0xd8; // tag(42)
  buf[pos + 1] = 42;
  pos = writeHead(buf, pos + 2, 2, c.bytes.length + 1);
  buf[pos] = 0; // multibase identity prefix
  buf.set(c.bytes, pos + 1);
  return pos + 1 + c.bytes.length;
}

function writeKey1(buf: Uint8Array, pos: number, ch: number): number {
  buf[pos] = 0x61; // text(1)
  buf[pos + 1] = ch;
  return pos + 2;
}

const CH_E = 0x65;
const CH_L = 0x6c;
const CH_K = 0x6b;
const CH_P = 0x70;
const CH_T = 0x74;
const CH_V = 0x76;

/** commonPrefixLength of two valid (so ASCII) keys' bytes. */
function commonKeyPrefixLength(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

function encodeNode(n: MstNode): Uint8Array {
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
  const buf = new Uint8Array(size);
  let pos = writeHead(buf, 0, 5, 2);
  pos = writeKey1(buf, pos, CH_E);
  pos = writeHead(buf, pos, 4, es.length);
  for (let i = 0; i < es.length; i++) {
    const e = es[i];
    const p = prefixes[i];
    pos = writeHead(buf, pos, 5, 4);
    pos = writeKey1(buf, pos, CH_K);
    const key = e.key;
    pos = writeHead(buf, pos, 2, key.length - p);
    for (let j = p; j < key.length; j++) buf[pos++] = key.charCodeAt(j);
    pos = writeKey1(buf, pos, CH_P);
    pos = writeHead(buf, pos, 0, p);
    pos = writeKey1(buf, pos, CH_T);
    pos = writeCid(buf, pos, e.right ? e.right.cid : null);
    pos = writeKey1(buf, pos, CH_V);
    pos = writeCid(buf, pos, e.value);
  }
  pos = writeKey1(buf, pos, CH_L);
  pos = writeCid(buf, pos, n.left ? n.left.cid : null);
  if (pos !== size) throw new Error(`MST node encoder size mismatch (${pos} != ${size})`);
  return buf;
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
  fast: (bytes: Uint8Array, lo: string | null, hi: string | null): DecodedNode | null =>
    decodeNodeFast(bytes, lo, hi),
  generic: (bytes: Uint8Array, cid: Cid, lo: string | null, hi: string | null): DecodedNode =>
    decodeNodeGeneric(bytes, cid, lo, hi),
};
