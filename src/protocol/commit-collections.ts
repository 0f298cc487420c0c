// A commit's effect on an account's set of collections, decided from the
// commit alone: the collections a create adds, the collections whose last
// record a delete took (decided from the commit's own blocks: the MST path
// around the deleted key, mst-presence.ts), and the ones the blocks cannot
// decide (a commit without a usable proof). Pure and stateless, so the
// validation workers compute it while the commit's blocks are loaded anyway
// (verify-frame.ts) and the main thread never decodes the commit again; the
// collection index only applies the answer (collections/upkeep.ts).
import type { Cid } from './cid.ts';
import type { BlockSource } from './mst.ts';
import { collectionStillPresent } from './mst-presence.ts';

export interface CommitOpPath {
  action: 'create' | 'update' | 'delete';
  /** `collection/rkey` */
  path: string;
}

/** What a commit did to the account's collections. */
export interface CommitCollections {
  /** collections a create put a record in */
  created: string[];
  /** collections whose last record a delete took */
  gone: string[];
  /** collections a delete may have emptied, which the blocks cannot decide */
  unknown: string[];
  /** deletes decided from the blocks */
  decided: number;
}

export function collectionOf(path: string): string {
  const i = path.indexOf('/');
  if (i <= 0) throw new Error(`invalid record path: ${path}`);
  return path.slice(0, i);
}

/** The commit's effect on the account's collections (blocks are read only for deletes). */
export function commitCollections(
  ops: readonly CommitOpPath[],
  blocks: BlockSource,
  dataRoot: Cid,
): CommitCollections {
  const created = new Set<string>();
  const deletedKey = new Map<string, string>();
  for (const op of ops) {
    const c = collectionOf(op.path);
    if (op.action === 'create') created.add(c);
    else if (op.action === 'delete' && !deletedKey.has(c)) deletedKey.set(c, op.path);
  }
  const gone: string[] = [];
  const unknown: string[] = [];
  let decided = 0;
  for (const [c, key] of deletedKey) {
    if (created.has(c)) continue; // a record of c exists: the one just created
    const present = collectionStillPresent(blocks, dataRoot, c, key);
    if (present === 'unknown') unknown.push(c);
    else {
      decided++;
      if (!present) gone.push(c);
    }
  }
  return { created: [...created], gone, unknown, decided };
}
