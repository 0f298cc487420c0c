// The sync 1.1 inductive proof for a `#commit` (atproto sync spec, "commit
// validation"): the event carries the new MST root (in the signed commit),
// the operations, `prevData` (the previous commit's root) and a partial tree
// in its blocks. The verifier opens the new tree over just those blocks,
// checks every operation against it, undoes the operations (create → delete
// the key; update → put `prev` back; delete → re-insert `prev`) and requires
// the resulting root to be `prevData`. If the operations were all the commit
// changed, that holds; if the partial tree lacks a node the undo needs, the
// proof fails as 'missing-blocks'. A relay can thus follow a repo's state
// without ever holding the repo.
//
// The producer side (`commitProofBlocks`) gives the blocks a commit must
// carry: for each changed key, the covering proof over the new tree (see
// `Mst.coveringProof`), which is what the interop fixtures call
// `blocksInProof`.
import { BlockMap } from './car.ts';
import { type Cid, cidEquals, isCid } from './cid.ts';
import {
  type BlockSource,
  InvalidMstError,
  InvalidMstKeyError,
  isValidMstKey,
  MissingBlockError,
  Mst,
} from './mst.ts';

export interface ProofOp {
  action: 'create' | 'update' | 'delete';
  path: string;
  cid: Cid | null;
  prev?: Cid | null;
}

export type ProofFailureReason =
  | 'invalid-op'
  | 'duplicate-path'
  | 'missing-blocks'
  | 'invalid-tree'
  | 'op-mismatch'
  | 'prev-data-mismatch';

export type ProofResult = { ok: true } | { ok: false; reason: ProofFailureReason; detail?: string };

export interface CommitProofInput {
  /** The `#commit` blocks (already hash-checked by the CAR reader). */
  blocks: BlockSource;
  /** The MST root from the signed commit (`data`). */
  dataRoot: Cid;
  /** The previous commit's MST root; null skips the final root comparison (first commit). */
  prevData: Cid | null;
  ops: readonly ProofOp[];
}

function fail(reason: ProofFailureReason, detail?: string): ProofResult {
  return detail === undefined ? { ok: false, reason } : { ok: false, reason, detail };
}

/** Checks one op's shape: create {cid}, update {cid, prev}, delete {prev}. */
function opShapeError(op: ProofOp): string | null {
  if (op === null || typeof op !== 'object') return 'op is not an object';
  if (typeof op.path !== 'string' || !isValidMstKey(op.path))
    return `invalid path ${JSON.stringify(op.path)}`;
  const hasCid = isCid(op.cid);
  const hasPrev = isCid(op.prev);
  if (op.cid !== null && !hasCid) return `${op.path}: cid is neither a CID nor null`;
  if (op.prev !== undefined && op.prev !== null && !hasPrev) return `${op.path}: prev is not a CID`;
  switch (op.action) {
    case 'create':
      if (!hasCid || hasPrev) return `${op.path}: create needs cid and no prev`;
      return null;
    case 'update':
      if (!hasCid || !hasPrev) return `${op.path}: update needs cid and prev`;
      return null;
    case 'delete':
      if (hasCid || !hasPrev) return `${op.path}: delete needs prev and a null cid`;
      return null;
    default:
      return `unknown action ${JSON.stringify((op as { action: unknown }).action)}`;
  }
}

/**
 * Verifies a commit's operations against its partial tree by inversion.
 * Never throws: every failure, including hostile blocks, becomes a reason.
 */
export function verifyCommitProof(input: CommitProofInput): ProofResult {
  try {
    const { blocks, dataRoot, prevData, ops } = input;
    if (!isCid(dataRoot)) return fail('invalid-op', 'data root is not a CID');
    if (prevData !== null && !isCid(prevData)) return fail('invalid-op', 'prevData is not a CID');
    if (!Array.isArray(ops)) return fail('invalid-op', 'ops is not an array');
    const paths = new Set<string>();
    for (const op of ops) {
      const err = opShapeError(op);
      if (err) return fail('invalid-op', err);
      if (paths.has(op.path)) return fail('duplicate-path', op.path);
      paths.add(op.path);
    }

    const tree = Mst.load(blocks, dataRoot);
    // Forward check: the new tree holds what each op claims.
    for (const op of ops) {
      const found = tree.get(op.path);
      if (op.action === 'delete') {
        if (found !== null) return fail('op-mismatch', `${op.path}: deleted key is still in the tree`);
      } else if (!cidEquals(found, op.cid)) {
        return fail('op-mismatch', `${op.path}: tree value does not match the op's cid`);
      }
    }
    // Undo, last op first.
    for (let i = ops.length - 1; i >= 0; i--) {
      const op = ops[i];
      if (op.action === 'create') tree.delete(op.path);
      else tree.put(op.path, op.prev as Cid);
    }
    if (prevData === null) return { ok: true };
    const root = tree.rootCid();
    if (!cidEquals(root, prevData)) {
      return fail('prev-data-mismatch', `inverted root ${root.$link} != prevData ${prevData.$link}`);
    }
    return { ok: true };
  } catch (err) {
    if (err instanceof MissingBlockError) return fail('missing-blocks', err.cid.$link);
    if (err instanceof InvalidMstError || err instanceof InvalidMstKeyError)
      return fail('invalid-tree', err.message);
    return fail('invalid-tree', err instanceof Error ? err.message : String(err));
  }
}

/**
 * The MST blocks a `#commit` must carry so that its ops can be verified by
 * inversion: the union of the covering proofs of every changed key over the
 * tree after the commit (which includes the new root). Record blocks and the
 * commit block are the caller's to add.
 */
export function commitProofBlocks(after: Mst, changedKeys: Iterable<string>): Array<[Cid, Uint8Array]> {
  const out = new BlockMap();
  const add = (cid: Cid, bytes: Uint8Array) => {
    if (!out.has(cid)) out.set(cid, bytes);
  };
  for (const key of changedKeys) after.coveringProof(key, add);
  return [...out];
}
