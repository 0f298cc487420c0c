// Decides from a commit's own blocks whether an account still has a record
// in a collection after deleting one (zlay defers this; we decide it).
//
// Repo keys are `collection/rkey`, so the keys of one collection are a
// contiguous run in key order. After deleting key k of collection C, some key
// of C remains iff k's nearest remaining neighbour on the left or on the
// right starts with `C/` (any C key below k would make the left neighbour a C
// key, by contiguity; likewise above). An absent key's neighbours are found
// on a single root-to-bottom path: at each node, the entries either side of
// the gap where k would sit bound everything below that gap, and the search
// ends at an empty gap, so the closest left entry seen on the path is the
// predecessor and the closest right one the successor.
//
// That path is exactly the covering proof of k (atproto getCoveringProof;
// for an absent key its left and right walks coincide), and inverting the
// delete during proof verification re-inserts k, which reaches every node of
// it — so for a commit that passed verifyCommitProof the answer is always
// decidable. The walk still returns 'unknown' on a missing block (a commit
// taken without a proof, e.g. a legacy one), and answers `true` as soon as
// an adjacent entry on the path is a C key, even if deeper blocks are absent.
//
// The walker is separate from Mst (whose nodes are private) and trusts the
// blocks' shape only as far as a verified commit guarantees it; anything
// malformed is treated like a missing block.
import { utf8Decode } from './bytes.ts';
import { decodeCbor } from './cbor.ts';
import { type Cid, isCid } from './cid.ts';
import type { BlockSource } from './mst.ts';

export type Presence = boolean | 'unknown';

export interface Neighbours {
  /** the greatest remaining key below, or null if there is none */
  left: string | null;
  /** the smallest remaining key above, or null if there is none */
  right: string | null;
}

interface NodeView {
  left: Cid | null;
  keys: string[];
  rights: (Cid | null)[];
}

function readNode(blocks: BlockSource, cid: Cid): NodeView | null {
  const bytes = blocks.get(cid);
  if (!bytes) return null;
  let data: unknown;
  try {
    data = decodeCbor(bytes);
  } catch {
    return null;
  }
  const node = data as { l?: unknown; e?: unknown };
  if (typeof node !== 'object' || node === null || !Array.isArray(node.e)) return null;
  if (node.l !== null && !isCid(node.l)) return null;
  const keys: string[] = [];
  const rights: (Cid | null)[] = [];
  let prev = new Uint8Array(0);
  for (const raw of node.e as unknown[]) {
    const e = raw as { p?: unknown; k?: unknown; t?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.p !== 'number' || !(e.k instanceof Uint8Array))
      return null;
    if (e.t !== null && !isCid(e.t)) return null;
    if (e.p > prev.length) return null;
    const kb = new Uint8Array(e.p + e.k.length);
    // copied by hand: subarray() of a small typed array (kept on V8's heap)
    // would first move it to a malloc'd buffer of its own
    for (let i = 0; i < e.p; i++) kb[i] = prev[i];
    kb.set(e.k, e.p);
    try {
      keys.push(utf8Decode(kb));
    } catch {
      return null;
    }
    rights.push(e.t as Cid | null);
    prev = kb;
  }
  return { left: node.l as Cid | null, keys, rights };
}

/**
 * Walks the search path of `key` (absent from the tree) and calls `visit`
 * with the entries either side of the gap at each node, top down. Returns
 * false if a block on the path is missing or malformed.
 */
function walkGap(
  blocks: BlockSource,
  root: Cid,
  key: string,
  visit: (left: string | null, right: string | null) => boolean | undefined,
): boolean {
  let cid: Cid | null = root;
  while (cid) {
    const node = readNode(blocks, cid);
    if (!node) return false;
    let i = 0;
    while (i < node.keys.length && node.keys[i] < key) i++;
    const left = i > 0 ? node.keys[i - 1] : null;
    const right = i < node.keys.length ? node.keys[i] : null;
    if (right === key) return false; // not absent: the tree is not the post-delete tree
    if (visit(left, right) === true) return true;
    cid = i === 0 ? node.left : node.rights[i - 1];
  }
  return true;
}

/** The nearest keys around an absent `key`, or 'unknown' if a block on its path is missing. */
export function neighboursOf(blocks: BlockSource, root: Cid, key: string): Neighbours | 'unknown' {
  const out: Neighbours = { left: null, right: null };
  const ok = walkGap(blocks, root, key, (left, right) => {
    // Deeper nodes lie strictly inside the gap, so their entries are closer.
    if (left !== null) out.left = left;
    if (right !== null) out.right = right;
    return undefined;
  });
  return ok ? out : 'unknown';
}

/**
 * Whether any key `collection/…` remains in the tree rooted at `root`, given
 * that `deletedKey` (a key of that collection) is absent from it.
 */
export function collectionStillPresent(
  blocks: BlockSource,
  root: Cid,
  collection: string,
  deletedKey: string,
): Presence {
  const prefix = `${collection}/`;
  if (!deletedKey.startsWith(prefix)) throw new Error(`${deletedKey} is not a key of ${collection}`);
  let found = false;
  const ok = walkGap(blocks, root, deletedKey, (left, right) => {
    if (left?.startsWith(prefix) || right?.startsWith(prefix)) found = true;
    return found;
  });
  if (found) return true;
  return ok ? false : 'unknown';
}
