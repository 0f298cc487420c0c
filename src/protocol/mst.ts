// The atproto Merkle Search Tree (repository spec): the sorted key → record
// CID map under every repo commit. Each key lives on the layer its height
// gives (mst-key.ts); a node holds the keys of one layer in order, with
// subtrees of the layer below between them, so the root CID commits to the
// whole map and the same map always yields the same tree. This file is the
// tree and its operations; node blocks are read and written by the node
// codec (mst-node.ts), and sync 1.1 proof checks built on these operations
// are in mst-proof.ts.
//
// The tree here is mutable and in memory: a write marks only the nodes on its
// path dirty, and `rootCid()` re-encodes and re-hashes just those, which is
// what lets the simulator apply hundreds of thousands of writes. A tree can
// also be opened over a block map (`Mst.load`) with nodes decoded only when an
// operation reaches them; reaching one whose block is absent throws
// `MissingBlockError`. That is how a sync 1.1 proof is checked: the partial
// tree a `#commit` carries is enough for the operations, or the proof fails.
// Loaded nodes are validated (the codec checks shape, key syntax, order,
// canonical prefix and key range; this file checks layers) so a hostile block
// cannot produce an inconsistent tree. A loaded node whose only change is a
// child CID is re-encoded by patching its original block.
import type { Cid } from './cid.ts';
import { cidForCbor } from './cid.ts';
import { checkMstKey as checkKey, keyHeight } from './mst-key.ts';
import {
  decodeNode,
  encodeNode,
  invalidNode,
  type NodeEntry,
  type NodeSource,
  patchedBlock,
} from './mst-node.ts';

export { InvalidMstKeyError, isValidMstKey, keyHeight, MAX_MST_KEY_LENGTH } from './mst-key.ts';
export { InvalidMstError } from './mst-node.ts';

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

type MstEntry = NodeEntry<MstNode>;

// A module-local copy of the per-key hot import (under tsx an imported
// binding is read through a getter on every access).
const heightOf = keyHeight;

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
  source: NodeSource<MstNode> | null = null;

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
    const h = heightOf(key);
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
    // The codec checks everything but layers (mst-node.ts).
    const { l, entries, rights, linkAt } = decodeNode<MstNode>(bytes, cid, n.lo, n.hi);

    const heights = new Array<number>(entries.length);
    for (let i = 0; i < entries.length; i++) heights[i] = heightOf(entries[i].key);
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

/** A not-yet-loaded child on `layer`, whose keys must lie strictly between lo and hi. */
function stubNode(layer: number, cid: Cid | null, lo: string | null, hi: string | null): MstNode | null {
  if (cid === null) return null;
  const s = new MstNode(layer, cid, false);
  s.lo = lo;
  s.hi = hi;
  return s;
}

function parentOf(child: MstNode, layer: number): MstNode {
  const p = new MstNode(layer, null, true);
  p.left = child;
  return p;
}
