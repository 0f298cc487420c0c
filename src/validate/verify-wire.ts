// How verify tasks and their results cross the thread boundary (pool.ts ⇄
// worker.ts): as flat arrays of primitives, not as objects.
//
// Why: postMessage structured-clones every message, and the V8 deserializer
// looks up (hashes) the name of every property of every object it rebuilds.
// A batch of 32 results as objects cost the main thread ~4 µs per result to
// receive, most of it property names; the same values as arrays cost under
// 1 µs (measured with a bare worker round trip of 32 ~3.4 KB frames: 6.0–7.3
// µs per frame with object results, 2.9–3.2 with arrays, 2.1 with none; see
// docs/benchmarks.md). The main thread rebuilds the objects itself, and an
// object literal of a known shape costs next to nothing.
//
// The positions are the format: encode and decode stay side by side here,
// and verify-wire.test.ts round-trips every kind of result.
import type { CommitCollections } from '../protocol/commit-collections.ts';
import type { KeyAlg } from '../protocol/keys.ts';
import type { DropReason } from './reasons.ts';
import type { Rejected, SigStatus, VerifiedCommit, VerifyResult, VerifyTask } from './verify-frame.ts';

/** [type, frame, key alg, key bytes, nowMs, maxRevSkewMs, returnFrame] */
export type TaskTuple = [string, Uint8Array, KeyAlg | null, Uint8Array | null, number, number, boolean];

export function encodeTask(t: VerifyTask): TaskTuple {
  return [
    t.type,
    t.frame,
    t.key?.alg ?? null,
    t.key?.bytes ?? null,
    t.nowMs,
    t.maxRevSkewMs,
    t.returnFrame === true,
  ];
}

export function decodeTask(t: TaskTuple): VerifyTask {
  const task: VerifyTask = { type: t[0], frame: t[1], nowMs: t[4], maxRevSkewMs: t[5] };
  if (t[2] !== null && t[3] !== null) task.key = { alg: t[2], bytes: t[3] };
  if (t[6]) task.returnFrame = true;
  return task;
}

const SIG_CODE: Record<SigStatus, number> = { ok: 0, bad: 1, unchecked: 2 };
const SIG_STATUS: readonly SigStatus[] = ['ok', 'bad', 'unchecked'];

/**
 * Rejected: [0, reason, detail, did, frame].
 * Verified: [1, kind (0 commit, 1 sync), did, rev, since, commitCid, dataCid,
 * prevData, sig, signed message, signature, proof, proofDetail, upstreamSeq,
 * created, gone, unknown, decided, frame]; null where a field is absent
 * (created is null when the result has no collections).
 */
export type ResultTuple = unknown[];

export function encodeResult(r: VerifyResult): ResultTuple {
  if (!r.ok) return [0, r.reason, r.detail, r.did ?? null, r.frame ?? null];
  const c = r.collections;
  return [
    1,
    r.kind === 'commit' ? 0 : 1,
    r.did,
    r.rev,
    r.since,
    r.commitCid,
    r.dataCid,
    r.prevData,
    SIG_CODE[r.sig],
    r.signed?.message ?? null,
    r.signed?.sig ?? null,
    r.proof,
    r.proofDetail ?? null,
    r.upstreamSeq,
    c ? c.created : null,
    c ? c.gone : null,
    c ? c.unknown : null,
    c ? c.decided : 0,
    r.frame ?? null,
  ];
}

export function decodeResult(t: ResultTuple): VerifyResult {
  if (t[0] === 0) {
    const r: Rejected & { frame?: Uint8Array } = {
      ok: false,
      reason: t[1] as DropReason,
      detail: t[2] as string,
    };
    if (t[3] !== null) r.did = t[3] as string;
    if (t[4] !== null) r.frame = t[4] as Uint8Array;
    return r;
  }
  const r: VerifiedCommit & { frame?: Uint8Array } = {
    ok: true,
    kind: t[1] === 0 ? 'commit' : 'sync',
    did: t[2] as string,
    rev: t[3] as string,
    since: t[4] as string | null,
    commitCid: t[5] as string,
    dataCid: t[6] as string,
    prevData: t[7] as string | null,
    sig: SIG_STATUS[t[8] as number],
    proof: t[11] as VerifiedCommit['proof'],
    upstreamSeq: t[13] as number,
  };
  if (t[9] !== null) r.signed = { message: t[9] as Uint8Array, sig: t[10] as Uint8Array };
  if (t[12] !== null) r.proofDetail = t[12] as string;
  if (t[14] !== null) {
    const collections: CommitCollections = {
      created: t[14] as string[],
      gone: t[15] as string[],
      unknown: t[16] as string[],
      decided: t[17] as number,
    };
    r.collections = collections;
  }
  if (t[18] !== null) r.frame = t[18] as Uint8Array;
  return r;
}
