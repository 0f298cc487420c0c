// The verify pool's messages between the main thread and its workers
// (pool.ts, worker.ts): tasks and results cross as dense arrays of their
// fields, not as objects. A structured clone writes an object's property
// names with every object and the receiving side reads and internalizes each
// of them again; an array carries only the values. The objects the rest of
// the relay sees (VerifyTask, VerifyResult) are rebuilt on arrival, with the
// same fields present as verify-frame.ts sets, so nothing outside the pool
// knows about this format.
//
// The crossing alone (`node --import tsx bench/pool-messages.bench.ts`: 3.4 KB
// frames moved both ways, 2 workers answering at once, 4–16 tasks per
// message) cost the main thread 3.2–4.3 µs per task against 4.3–5.8 µs for
// objects, and the process 7.1–9.4 µs against 8.7–12.2 (docs/benchmarks.md,
// eleventh session; end to end the difference is inside the noise). Strings stay
// strings of their own (not slices of one packed string), so a head or
// account cached for hours does not pin a whole message's text.
import type { KeyAlg, PublicKey } from '../protocol/keys.ts';
import type { ProofFailureReason } from '../protocol/mst-proof.ts';
import type { DropReason } from './reasons.ts';
import type { SigStatus, VerifiedCommit, VerifyResult, VerifyTask } from './verify-frame.ts';

/** A VerifyTask on the wire. */
export type TaskWire = [
  type: string,
  frame: Uint8Array,
  keyAlg: KeyAlg | null,
  keyBytes: Uint8Array | null,
  nowMs: number,
  maxRevSkewMs: number,
  returnFrame: boolean,
];

export function taskToWire(t: VerifyTask): TaskWire {
  return [
    t.type,
    t.frame,
    t.key ? t.key.alg : null,
    t.key ? t.key.bytes : null,
    t.nowMs,
    t.maxRevSkewMs,
    t.returnFrame === true,
  ];
}

/** The task as verifyFrame takes it (`movable` stays on the main thread: the pool decided it). */
export function taskFromWire(w: TaskWire): VerifyTask {
  const task: VerifyTask = { type: w[0], frame: w[1], nowMs: w[4], maxRevSkewMs: w[5] };
  if (w[2] !== null && w[3] !== null) task.key = { alg: w[2], bytes: w[3] } satisfies PublicKey;
  if (w[6]) task.returnFrame = true;
  return task;
}

/** A VerifiedCommit on the wire (first element 1). */
type VerifiedWire = [
  ok: 1,
  kind: 'commit' | 'sync',
  did: string,
  rev: string,
  since: string | null,
  commitCid: string,
  dataCid: string,
  prevData: string | null,
  sig: SigStatus,
  proof: 'ok' | ProofFailureReason,
  upstreamSeq: number,
  proofDetail: string | null,
  signedMessage: Uint8Array | null,
  signedSig: Uint8Array | null,
  created: string[] | null,
  gone: string[] | null,
  unknown: string[] | null,
  decided: number,
  frame: Uint8Array | null,
];

/** A Rejected on the wire (first element 0). */
type RejectedWire = [ok: 0, reason: DropReason, detail: string, did: string | null, frame: Uint8Array | null];

export type ResultWire = VerifiedWire | RejectedWire;

export function resultToWire(r: VerifyResult): ResultWire {
  const frame = r.frame ?? null;
  if (!r.ok) return [0, r.reason, r.detail, r.did ?? null, frame];
  const c = r.collections;
  return [
    1,
    r.kind,
    r.did,
    r.rev,
    r.since,
    r.commitCid,
    r.dataCid,
    r.prevData,
    r.sig,
    r.proof,
    r.upstreamSeq,
    r.proofDetail ?? null,
    r.signed ? r.signed.message : null,
    r.signed ? r.signed.sig : null,
    c ? c.created : null,
    c ? c.gone : null,
    c ? c.unknown : null,
    c ? c.decided : 0,
    frame,
  ];
}

export function resultFromWire(w: ResultWire): VerifyResult {
  if (w[0] === 0) {
    const rejected: VerifyResult = { ok: false, reason: w[1], detail: w[2] };
    if (w[3] !== null) rejected.did = w[3];
    if (w[4] !== null) rejected.frame = w[4];
    return rejected;
  }
  const r: VerifiedCommit & { frame?: Uint8Array } = {
    ok: true,
    kind: w[1],
    did: w[2],
    rev: w[3],
    since: w[4],
    commitCid: w[5],
    dataCid: w[6],
    prevData: w[7],
    sig: w[8],
    proof: w[9],
    upstreamSeq: w[10],
  };
  if (w[11] !== null) r.proofDetail = w[11];
  if (w[12] !== null && w[13] !== null) r.signed = { message: w[12], sig: w[13] };
  if (w[14] !== null && w[15] !== null && w[16] !== null)
    r.collections = { created: w[14], gone: w[15], unknown: w[16], decided: w[17] };
  if (w[18] !== null) r.frame = w[18];
  return r;
}
