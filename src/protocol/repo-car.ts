// Reads a whole repository as com.atproto.sync.getRepo exports it (a CAR
// whose root is the signed head commit) down to what a relay needs from it:
// the commit (DID, rev, its CID and block, the MST root), whether its
// signature verifies against the account's key, and the names of the
// collections the repo holds. It is a pure function over the bytes, meant to
// run in a worker thread (src/validate/repo-digest.ts) so that a hostile or
// merely huge repo never blocks the relay's event loop, and it keeps memory
// proportional to what it must: the CAR is indexed without decoding
// (car.ts `indexCar`: 16–32 bytes per block, both limits checked while
// reading), and the collections come from seeking through the MST
// (`firstKeyAtOrAfter`) — one path down per collection, since every key of a
// collection `c` lies in the range ["c/", "c0") — instead of loading every
// node and record key. MST nodes that are read are validated as in mst.ts;
// the rest of the tree is only hash-checked, which is all a collection list
// needs (the signed MST root commits to it).
import { CarError, indexCar } from './car.ts';
import { CommitError, decodeCommit, unsignedCommitBytes } from './commit.ts';
import { isHighS, type PublicKey, verifySignature } from './keys.ts';
import { InvalidMstError, InvalidMstKeyError, MissingBlockError, Mst } from './mst.ts';

export type RepoCarErrorReason =
  | 'too-large'
  | 'too-many-blocks'
  | 'bad-car'
  | 'missing-commit'
  | 'bad-commit'
  | 'wrong-did'
  | 'high-s-signature'
  | 'bad-signature'
  | 'missing-mst-block'
  | 'bad-mst'
  | 'too-many-collections';

export class RepoCarError extends Error {
  constructor(
    readonly reason: RepoCarErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'RepoCarError';
  }
}

/** Distinct collections a repo may hold before it is refused (real accounts have tens). */
export const DEFAULT_MAX_REPO_COLLECTIONS = 10_000;

export interface RepoDigestOptions {
  /** Largest accepted CAR, bytes. */
  maxBytes: number;
  /** Largest accepted number of blocks. */
  maxBlocks: number;
  /** The DID the repo must belong to. */
  did: string;
  /** The account's signing key; when given, the commit's signature must verify (low-S). */
  key?: PublicKey;
  /** Read the collection names from the MST (default true). */
  collections?: boolean;
  /** Distinct collection names before the repo is refused. */
  maxCollections?: number;
}

/** What a repo CAR comes down to; plain data, so it crosses a thread boundary as is. */
export interface RepoDigest {
  did: string;
  rev: string;
  /** The head commit's CID, binary (36 bytes). */
  commitCid: Uint8Array;
  /** The MST root's CID, binary. */
  dataCid: Uint8Array;
  /** The signed commit block (a copy: nothing refers to the CAR afterwards). */
  commitBlock: Uint8Array;
  /** 'ok' when a key was given (a bad signature throws), else 'unchecked'. */
  signature: 'ok' | 'unchecked';
  /**
   * Distinct collection names in the MST (the part of each key before '/',
   * as the firehose upkeep takes them from op paths), sorted; empty when not
   * asked for.
   */
  collections: string[];
  /** Distinct blocks and bytes of the CAR. */
  blocks: number;
  bytes: number;
}

/** Reads a getRepo CAR; throws RepoCarError naming what is wrong. */
export function digestRepoCar(car: Uint8Array, opts: RepoDigestOptions): RepoDigest {
  let index: ReturnType<typeof indexCar>;
  try {
    index = indexCar(car, { maxBytes: opts.maxBytes, maxBlocks: opts.maxBlocks });
  } catch (err) {
    if (err instanceof CarError) {
      const reason = err.reason === 'too-large' || err.reason === 'too-many-blocks' ? err.reason : 'bad-car';
      throw new RepoCarError(reason, err.message);
    }
    throw err;
  }
  if (index.roots.length !== 1) throw new RepoCarError('bad-car', 'repo CAR must have exactly one root');
  const root = index.roots[0];
  const block = index.get(root);
  if (!block) throw new RepoCarError('missing-commit', 'repo CAR lacks its root commit');
  let commit: ReturnType<typeof decodeCommit>;
  try {
    commit = decodeCommit(block);
  } catch (err) {
    if (err instanceof CommitError) throw new RepoCarError('bad-commit', `repo commit: ${err.message}`);
    throw err;
  }
  if (commit.did !== opts.did) throw new RepoCarError('wrong-did', `repo commit is for ${commit.did}`);
  let signature: RepoDigest['signature'] = 'unchecked';
  if (opts.key) {
    if (commit.sig.length === 64 && isHighS(opts.key.alg, commit.sig))
      throw new RepoCarError('high-s-signature', 'repo commit signature is high-S');
    if (!verifySignature(opts.key, unsignedCommitBytes(commit), commit.sig))
      throw new RepoCarError('bad-signature', 'repo commit signature is invalid');
    signature = 'ok';
  }
  if (!index.has(commit.data)) throw new RepoCarError('missing-mst-block', 'repo CAR lacks the MST root');
  const collections =
    opts.collections === false
      ? []
      : collectionsOf(Mst.load(index, commit.data), opts.maxCollections ?? DEFAULT_MAX_REPO_COLLECTIONS);
  return {
    did: commit.did,
    rev: commit.rev,
    commitCid: root.bytes.slice(),
    dataCid: commit.data.bytes.slice(),
    commitBlock: block.slice(),
    signature,
    collections,
    blocks: index.size,
    bytes: car.length,
  };
}

/** Seeks from collection to collection: every key of `c` lies in ["c/", "c0") ('0' follows '/'). */
function collectionsOf(tree: Mst, maxCollections: number): string[] {
  const out: string[] = [];
  let bound = '';
  try {
    for (;;) {
      const key = tree.firstKeyAtOrAfter(bound);
      if (key === null) break;
      const collection = key.slice(0, key.indexOf('/')); // loaded keys are valid: one '/', not first
      if (out.length >= maxCollections)
        throw new RepoCarError('too-many-collections', `more than ${maxCollections} collections`);
      out.push(collection);
      bound = `${collection}0`;
    }
  } catch (err) {
    if (err instanceof RepoCarError) throw err;
    if (err instanceof MissingBlockError) throw new RepoCarError('missing-mst-block', err.message);
    if (err instanceof InvalidMstError || err instanceof InvalidMstKeyError)
      throw new RepoCarError('bad-mst', err.message);
    throw err;
  }
  return out.sort();
}
