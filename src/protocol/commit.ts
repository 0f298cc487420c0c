// Repository commit objects, version 3 (atproto repository spec): the signed
// block at the head of a repo, `{did, version: 3, data, rev, prev, sig}`,
// where `data` is the MST root and `rev` a TID that grows with every commit.
// The signature covers the canonical DAG-CBOR of the same object without
// `sig`; because decoding is strict (canonical CBOR only) and the field set is
// fixed, re-encoding the decoded fields reproduces exactly the signed bytes.
// Decoding rejects anything but that shape, with a reason a relay can log.
import { allocPooled } from './bytes.ts';
import { decodeCbor, encodeCbor } from './cbor.ts';
import { cborHeadLength, cidLinkLength, writeCborHead, writeCidLink } from './cbor-write.ts';
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

/**
 * The bytes the signature covers: the commit without `sig`, as canonical DAG-CBOR.
 *
 * Written out by hand, since the shape is fixed: the bytes go straight into a
 * slice of exactly their size from Buffer's pool. The general encoder
 * (encodeCbor) takes a 1 KB chunk from that pool on every call; in the verify
 * workers, whose other allocations draw on it too, that made a new 8 KB
 * ArrayBuffer every few commits, ~5 % of a whole verifyFrame
 * (docs/benchmarks.md, eighth session). Non-ASCII strings (no valid DID or
 * TID has any) go through encodeCbor; a test checks that the two agree.
 */
export function unsignedCommitBytes(commit: UnsignedCommit): Uint8Array {
  const { did, rev, data, prev } = commit;
  if (!isAscii(did) || !isAscii(rev) || commit.version !== 3) {
    return encodeCbor({ did, version: commit.version, data, rev, prev });
  }
  // the map's head, then each key (its head and name) and value
  const size =
    1 +
    (4 + textSize(did)) +
    (4 + textSize(rev)) +
    (5 + cidLinkLength(data)) +
    (5 + cidLinkLength(prev)) +
    (8 + 1);
  const out = allocPooled(size);
  // keys in canonical order: by length, then bytewise (did, rev, data, prev, version)
  out[0] = 0xa5;
  let off = writeAscii(out, 1, 'did', 0x63);
  off = writeText(out, off, did);
  off = writeAscii(out, off, 'rev', 0x63);
  off = writeText(out, off, rev);
  off = writeAscii(out, off, 'data', 0x64);
  off = writeCidLink(out, off, data);
  off = writeAscii(out, off, 'prev', 0x64);
  off = writeCidLink(out, off, prev);
  off = writeAscii(out, off, 'version', 0x67);
  out[off++] = 0x03;
  return out;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** Bytes of an ASCII string as a CBOR text string. */
function textSize(s: string): number {
  return cborHeadLength(s.length) + s.length;
}

/** A short ASCII key whose head byte is given. */
function writeAscii(out: Uint8Array, off: number, key: string, head: number): number {
  out[off++] = head;
  for (let i = 0; i < key.length; i++) out[off++] = key.charCodeAt(i);
  return off;
}

function writeText(out: Uint8Array, off: number, s: string): number {
  off = writeCborHead(out, off, 3, s.length);
  for (let i = 0; i < s.length; i++) out[off++] = s.charCodeAt(i);
  return off;
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
