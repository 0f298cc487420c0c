// Repository commit objects, version 3 (atproto repository spec): the signed
// block at the head of a repo, `{did, version: 3, data, rev, prev, sig}`,
// where `data` is the MST root and `rev` a TID that grows with every commit.
// The signature covers the canonical DAG-CBOR of the same object without
// `sig`; because decoding is strict (canonical CBOR only) and the field set is
// fixed, re-encoding the decoded fields reproduces exactly the signed bytes.
// Decoding rejects anything but that shape, with a reason a relay can log.
import { decodeCbor, encodeCbor } from './cbor.ts';
import { type Cid, cidForCbor, isCid } from './cid.ts';
import { type Keypair, type PublicKey, toHighS, verifySignature } from './keys.ts';

export interface UnsignedCommit {
  did: string;
  version: 3;
  data: Cid;
  rev: string;
  prev: Cid | null;
}

export interface Commit extends UnsignedCommit {
  sig: Uint8Array;
}

export type CommitErrorReason =
  | 'not-cbor'
  | 'not-object'
  | 'missing-field'
  | 'unknown-field'
  | 'bad-version'
  | 'bad-did'
  | 'bad-data'
  | 'bad-rev'
  | 'bad-prev'
  | 'bad-sig';

export class CommitError extends Error {
  constructor(
    readonly reason: CommitErrorReason,
    message: string,
  ) {
    super(message);
    this.name = 'CommitError';
  }
}

const FIELDS = ['did', 'version', 'data', 'rev', 'prev', 'sig'] as const;
const DID_SYNTAX = /^did:[a-z]+:[a-zA-Z0-9._:%-]*[a-zA-Z0-9._-]$/;
const MAX_DID_LENGTH = 2048;
const TID_SYNTAX = /^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$/;

export function isValidCommitDid(s: unknown): s is string {
  return typeof s === 'string' && s.length <= MAX_DID_LENGTH && DID_SYNTAX.test(s);
}

export function isValidRev(s: unknown): s is string {
  return typeof s === 'string' && TID_SYNTAX.test(s);
}

/** Decodes a commit block, validating its structure strictly; throws CommitError. */
export function decodeCommit(bytes: Uint8Array): Commit {
  let value: unknown;
  try {
    value = decodeCbor(bytes);
  } catch (err) {
    throw new CommitError('not-cbor', `commit is not valid DAG-CBOR: ${(err as Error).message}`);
  }
  return validateCommit(value);
}

/** Validates an already decoded commit object; throws CommitError. */
export function validateCommit(value: unknown): Commit {
  if (value === null || typeof value !== 'object' || (value as object).constructor !== Object) {
    throw new CommitError('not-object', 'commit is not a map');
  }
  const obj = value as Record<string, unknown>;
  for (const k in obj) {
    if (!(FIELDS as readonly string[]).includes(k)) {
      throw new CommitError('unknown-field', `unexpected commit field ${JSON.stringify(k.slice(0, 64))}`);
    }
  }
  for (const f of FIELDS) {
    if (!(f in obj)) throw new CommitError('missing-field', `commit has no ${f}`);
  }
  const { did, version, data, rev, prev, sig } = obj;
  if (version !== 3) throw new CommitError('bad-version', `unsupported commit version ${String(version)}`);
  if (!isValidCommitDid(did)) throw new CommitError('bad-did', 'commit did is not a valid DID');
  if (!isCid(data)) throw new CommitError('bad-data', 'commit data is not a CID link');
  if (!isValidRev(rev)) throw new CommitError('bad-rev', 'commit rev is not a TID');
  if (prev !== null && !isCid(prev))
    throw new CommitError('bad-prev', 'commit prev is neither a CID link nor null');
  if (!(sig instanceof Uint8Array)) throw new CommitError('bad-sig', 'commit sig is not a byte string');
  return { did, version: 3, data, rev, prev: prev as Cid | null, sig };
}

/** The bytes the signature covers: the commit without `sig`, as canonical DAG-CBOR. */
export function unsignedCommitBytes(commit: UnsignedCommit): Uint8Array {
  return encodeCbor({
    did: commit.did,
    version: commit.version,
    data: commit.data,
    rev: commit.rev,
    prev: commit.prev,
  });
}

/** Encodes a signed commit block. */
export function encodeCommit(commit: Commit): Uint8Array {
  return encodeCbor({
    did: commit.did,
    version: commit.version,
    data: commit.data,
    rev: commit.rev,
    prev: commit.prev,
    sig: commit.sig,
  });
}

/** True if `commit.sig` is a valid low-S signature by `key` over the unsigned commit. */
export function verifyCommitSignature(commit: Commit, key: PublicKey): boolean {
  try {
    return verifySignature(key, unsignedCommitBytes(commit), commit.sig);
  } catch {
    return false;
  }
}

export interface CommitFields {
  did: string;
  data: Cid;
  rev: string;
  prev?: Cid | null;
}

export interface SignedCommit {
  commit: Commit;
  bytes: Uint8Array;
  cid: Cid;
}

/**
 * Builds and signs a commit. `highS` turns the signature into its malleable
 * high-S twin (a fault the simulator injects; verifiers must reject it).
 */
export function signCommit(
  fields: CommitFields,
  keypair: Keypair,
  opts: { highS?: boolean } = {},
): SignedCommit {
  const unsigned: UnsignedCommit = {
    did: fields.did,
    version: 3,
    data: fields.data,
    rev: fields.rev,
    prev: fields.prev ?? null,
  };
  let sig = keypair.sign(unsignedCommitBytes(unsigned));
  if (opts.highS) sig = toHighS(keypair.publicKey.alg, sig);
  const commit: Commit = { ...unsigned, sig };
  const bytes = encodeCommit(commit);
  return { commit, bytes, cid: cidForCbor(bytes) };
}
