// The stateless half of event validation: everything that needs the frame
// and at most the account's signing key, and no account state. It runs in the
// worker threads (worker.ts) or inline (pool size 0), and its result is a
// plain structured-clonable object (CIDs as strings) so it crosses the thread
// boundary cheaply. What it checks, per the sync spec and the reference
// relays: the frame decodes strictly and has the lexicon shape and size
// limits; the CAR loads with every block hash verified and holds the commit;
// the commit is a v3 commit whose did/rev (and CID) match the event; the rev
// is a TID and not too far in the future; the signature is low-S and verifies
// against the key given (if one was given); and, for #commit, whether undoing
// the ops on the partial MST yields the claimed `prevData` (sync 1.1). It
// also works out what a #commit did to the account's collections, from the
// same verified blocks, for the collection index.
//
// Whether `since`/`prevData` match the stored head, and everything else that
// depends on state (status, host authority, rev ordering), is the main
// thread's job (validator.ts); the proof outcome is reported, not enforced,
// because lenient mode passes events whose proof fails.
import { CarError, readCar } from '../protocol/car.ts';
import { cidToString } from '../protocol/cid.ts';
import { type Commit, CommitError, decodeCommit, unsignedCommitBytes } from '../protocol/commit.ts';
import { type CommitCollections, commitCollections } from '../protocol/commit-collections.ts';
import { EventShapeError, MAX_SYNC_BLOCKS_BYTES, parseEventBody } from '../protocol/events.ts';
import { decodeFrame, FrameError } from '../protocol/frames.ts';
import { isHighS, type PublicKey, verifySignature } from '../protocol/keys.ts';
import { type ProofFailureReason, verifyCommitProof } from '../protocol/mst-proof.ts';
import { isValidTid } from '../protocol/syntax.ts';
import { tidTimestampMs } from '../protocol/tid.ts';
import type { DropReason } from './reasons.ts';

/** How far ahead of the clock a rev may be (the reference relays allow ~5 minutes). */
export const DEFAULT_MAX_REV_SKEW_MS = 5 * 60_000;

export interface VerifyTask {
  /** `#commit` or `#sync` (other types are cheap and handled on the main thread). */
  type: string;
  frame: Uint8Array;
  /** The account's signing key, when the main thread had it cached; otherwise the signature is returned unchecked. */
  key?: PublicKey;
  /** Wall clock (ms) for the future-rev check. */
  nowMs: number;
  maxRevSkewMs: number;
  /** Nobody else holds the frame's buffer: the pool may move it to a worker (and back). */
  movable?: boolean;
  /** The frame's buffer was moved to the worker: hand the frame back with the result (pool.ts). */
  returnFrame?: boolean;
}

export type SigStatus = 'ok' | 'bad' | 'unchecked';

export interface VerifiedCommit {
  ok: true;
  kind: 'commit' | 'sync';
  did: string;
  rev: string;
  /** #commit only (null for #sync). */
  since: string | null;
  commitCid: string;
  dataCid: string;
  /** #commit only; null when the event carries none. */
  prevData: string | null;
  sig: SigStatus;
  /** Present unless sig is 'ok': what main must verify once it has the (right) key. */
  signed?: { message: Uint8Array; sig: Uint8Array };
  /** #commit: the sync 1.1 inversion outcome; #sync: always 'ok'. */
  proof: 'ok' | ProofFailureReason;
  proofDetail?: string;
  /** The upstream seq of the event (for logs). */
  upstreamSeq: number;
  /**
   * #commit only: what the commit did to the account's collections, decided
   * from its own blocks here (protocol/commit-collections.ts), so the
   * collection index never decodes the commit again.
   */
  collections?: CommitCollections;
}

export interface Rejected {
  ok: false;
  reason: DropReason;
  detail: string;
  did?: string;
}

/** With the task's frame when it was moved to a worker and comes back (pool.ts). */
export type VerifyResult = (VerifiedCommit | Rejected) & { frame?: Uint8Array };

function reject(reason: DropReason, detail: string, did?: string): Rejected {
  return did === undefined ? { ok: false, reason, detail } : { ok: false, reason, detail, did };
}

/** Low-S first (its own reason, whatever the key), then the signature itself. */
export function checkSignature(
  key: PublicKey,
  message: Uint8Array,
  sig: Uint8Array,
): 'ok' | 'bad' | 'high-s' {
  if (sig.length === 64 && isHighS(key.alg, sig)) return 'high-s';
  return verifySignature(key, message, sig) ? 'ok' : 'bad';
}

function checkRev(rev: string, task: VerifyTask, did: string): Rejected | undefined {
  if (!isValidTid(rev)) return reject('bad-rev', `rev ${String(rev).slice(0, 32)} is not a TID`, did);
  if (tidTimestampMs(rev) > task.nowMs + task.maxRevSkewMs) {
    return reject('future-rev', `rev ${rev} is ahead of the clock`, did);
  }
  return undefined;
}

function signatureFields(
  commit: Commit,
  key: PublicKey | undefined,
  did: string,
): Rejected | Pick<VerifiedCommit, 'sig' | 'signed'> {
  const message = unsignedCommitBytes(commit);
  if (!key) return { sig: 'unchecked', signed: { message, sig: commit.sig } };
  const s = checkSignature(key, message, commit.sig);
  if (s === 'high-s') return reject('high-s-signature', 'signature is in high-S form', did);
  if (s === 'ok') return { sig: 'ok' };
  return { sig: 'bad', signed: { message, sig: commit.sig } };
}

/** Runs every stateless check on a #commit or #sync frame. Never throws. */
export function verifyFrame(task: VerifyTask): VerifyResult {
  let parsed: ReturnType<typeof parseEventBody>;
  try {
    const { header, body } = decodeFrame(task.frame);
    if (header.op !== 1 || header.t !== task.type)
      return reject('bad-frame', `header type does not match ${task.type}`);
    parsed = parseEventBody(header.t, body);
  } catch (err) {
    if (err instanceof FrameError) return reject('bad-frame', err.message);
    if (err instanceof EventShapeError)
      return reject(err.reason === 'too-large' ? 'too-large' : 'bad-event', err.message);
    return reject('bad-frame', err instanceof Error ? err.message : String(err));
  }
  try {
    if (parsed.kind === 'commit') return verifyCommitEvent(parsed.event, task);
    if (parsed.kind === 'sync') return verifySyncEvent(parsed.event, task);
    return reject('unknown-type', `${task.type} is not verified by workers`);
  } catch (err) {
    // the protocol functions below throw only typed errors; anything else is a bug, reported as a bad event
    return reject('bad-event', err instanceof Error ? err.message : String(err));
  }
}

function verifyCommitEvent(ev: import('../protocol/events.ts').CommitEvent, task: VerifyTask): VerifyResult {
  const did = ev.repo;
  if (ev.tooBig) return reject('too-big', 'tooBig commits carry no verifiable blocks', did);
  let car: ReturnType<typeof readCar>;
  try {
    car = readCar(ev.blocks);
  } catch (err) {
    return reject('bad-car', err instanceof CarError ? err.message : String(err), did);
  }
  const commitBlock = car.blocks.get(ev.commit);
  if (!commitBlock) return reject('missing-commit', `CAR lacks commit block ${cidToString(ev.commit)}`, did);
  let commit: Commit;
  try {
    commit = decodeCommit(commitBlock);
  } catch (err) {
    return reject('bad-commit', err instanceof CommitError ? err.message : String(err), did);
  }
  if (commit.did !== did) return reject('commit-mismatch', `commit did ${commit.did} != repo`, did);
  if (commit.rev !== ev.rev)
    return reject('commit-mismatch', `commit rev ${commit.rev} != event rev ${ev.rev}`, did);
  const revErr = checkRev(ev.rev, task, did);
  if (revErr) return revErr;
  const sig = signatureFields(commit, task.key, did);
  if ('ok' in sig) return sig;
  const proof = verifyCommitProof({
    blocks: car.blocks,
    dataRoot: commit.data,
    prevData: ev.prevData ?? null,
    ops: ev.ops,
  });
  let collections: CommitCollections;
  try {
    collections = commitCollections(ev.ops, car.blocks, commit.data);
  } catch (err) {
    return reject('bad-event', `op path: ${err instanceof Error ? err.message : String(err)}`, did);
  }
  const out: VerifiedCommit = {
    ok: true,
    kind: 'commit',
    did,
    rev: ev.rev,
    since: ev.since,
    commitCid: cidToString(ev.commit),
    dataCid: cidToString(commit.data),
    prevData: ev.prevData ? cidToString(ev.prevData) : null,
    ...sig,
    proof: proof.ok ? 'ok' : proof.reason,
    upstreamSeq: ev.seq,
    collections,
  };
  if (!proof.ok && proof.detail !== undefined) out.proofDetail = proof.detail;
  return out;
}

function verifySyncEvent(ev: import('../protocol/events.ts').SyncEvent, task: VerifyTask): VerifyResult {
  const did = ev.did;
  let car: ReturnType<typeof readCar>;
  try {
    car = readCar(ev.blocks, { maxBytes: MAX_SYNC_BLOCKS_BYTES });
  } catch (err) {
    return reject('bad-car', err instanceof CarError ? err.message : String(err), did);
  }
  const root = car.roots[0];
  const commitBlock = root ? car.blocks.get(root) : undefined;
  if (!root || !commitBlock) return reject('missing-commit', 'CAR lacks its root commit block', did);
  let commit: Commit;
  try {
    commit = decodeCommit(commitBlock);
  } catch (err) {
    return reject('bad-commit', err instanceof CommitError ? err.message : String(err), did);
  }
  if (commit.did !== did) return reject('commit-mismatch', `commit did ${commit.did} != event did`, did);
  if (commit.rev !== ev.rev)
    return reject('commit-mismatch', `commit rev ${commit.rev} != event rev ${ev.rev}`, did);
  const revErr = checkRev(ev.rev, task, did);
  if (revErr) return revErr;
  const sig = signatureFields(commit, task.key, did);
  if ('ok' in sig) return sig;
  return {
    ok: true,
    kind: 'sync',
    did,
    rev: ev.rev,
    since: null,
    commitCid: cidToString(root),
    dataCid: cidToString(commit.data),
    prevData: null,
    ...sig,
    proof: 'ok',
    upstreamSeq: ev.seq,
  };
}
