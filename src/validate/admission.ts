// Admission: the first thing the validator does with a frame, on the main
// thread, before the frame joins its repo's queue. It reads the DID (ingest
// already did in its one pass over the frame; other sources are peeked), and
// - for #commit and #sync, takes the verdict the worker that read the frame
//   made with the account's current key (in-place.ts), or else starts the
//   stateless work: the frame goes to the worker pool with the account's
//   signing key, at once when the identity cache has it, otherwise once the
//   DID resolves (so signatures are checked in the workers; the main thread
//   checks one only when the resolution failed or the key changed in
//   between);
// - for #identity and #account (small, cheap), decodes and shape-checks the
//   body here, as the per-type rules need it;
// - refuses outright what no rule could accept (unknown type, no readable
//   DID, a body that does not parse), with the most precise reason it can
//   give: a frame without a readable DID is run through the full checks so
//   its drop says what is wrong with it.
import { CURRENT_TYPES } from '../ingest/frame-check.ts';
import type { InboundFrame } from '../ingest/frame-sink.ts';
import { EventShapeError, parseEventBody } from '../protocol/events.ts';
import { decodeFrame } from '../protocol/frames.ts';
import type { IdentityCache } from '../protocol/identity/identity-cache.ts';
import type { PublicKey } from '../protocol/keys.ts';
import { peekEventDid } from './frame-peek.ts';
import { inPlaceResult } from './in-place.ts';
import { type Decision, drop, type Job } from './job.ts';
import type { ValidationMetrics } from './metrics.ts';
import type { VerifyPool } from './pool.ts';
import { type VerifyResult, verifyFrame } from './verify-frame.ts';

export interface Admission {
  identity: Pick<IdentityCache, 'get' | 'resolve'>;
  metrics: ValidationMetrics;
  pool: VerifyPool;
  now: () => number;
  maxRevSkewMs: number;
}

/** Reads the DID and starts the stateless work; returns a Decision only for frames rejected outright. */
export function admit(a: Admission, job: Job, frame: InboundFrame): Decision | undefined {
  if (!CURRENT_TYPES.has(frame.type)) return drop('unknown-type', `type ${frame.type.slice(0, 64)}`);
  // ingest read the DID in its one pass over the frame; other sources are peeked here
  const did = frame.did ?? peekEventDid(frame.frame, frame.type);
  if (did === undefined) return rejectUnreadable(a, frame);
  job.did = did;
  if (frame.type === '#commit' || frame.type === '#sync') {
    const cached = a.identity.get(did);
    a.metrics.identityLookup(cached !== undefined);
    if (cached) {
      job.verified =
        whereRead(a, job, frame, did, cached.signingKey) ?? startVerify(a, job, frame, cached.signingKey);
    } else {
      // Resolved first, so the worker checks the signature with the key: the
      // repo's rules need the identity before they decide anyway, and a key
      // learned later would mean an ECDSA verification on the main thread
      // (every commit admitted before the resolution settled). On failure the
      // worker runs without a key; the rules retry the resolution and check
      // the signature themselves if it then succeeds.
      job.awaitingIdentity = true;
      job.verified = a.identity.resolve(did).then(
        (identity) =>
          whereRead(a, job, frame, did, identity.signingKey) ??
          startVerify(a, job, frame, identity.signingKey),
        () => startVerify(a, job, frame, undefined),
      );
    }
    // handled when the repo queue reaches the job; until then a rejection (pool closing) must not count as unhandled
    job.verified.catch(() => {});
    return undefined;
  }
  try {
    const { header, body } = decodeFrame(frame.frame);
    if (header.op !== 1 || header.t !== frame.type) return drop('bad-frame', 'header type mismatch');
    const parsed = parseEventBody(header.t, body);
    if (parsed.kind !== 'identity' && parsed.kind !== 'account') return drop('bad-frame', 'unexpected kind');
    job.parsed = parsed.event;
    if (parsed.event.did !== did) return drop('bad-event', 'did mismatch');
  } catch (err) {
    if (err instanceof EventShapeError) return drop('bad-event', err.message);
    return drop('bad-frame', (err as Error).message);
  }
  return undefined;
}

/** The verdict of the thread that read the frame, when it used this key (in-place.ts). */
function whereRead(
  a: Admission,
  job: Job,
  frame: InboundFrame,
  did: string,
  key: PublicKey | undefined,
): Promise<VerifyResult> | undefined {
  if (key === undefined) return undefined;
  const r = inPlaceResult(frame, did, key);
  if (r === undefined) return undefined;
  a.metrics.verifiedWhereRead++;
  job.verifyKey = key;
  job.awaitingIdentity = false;
  return Promise.resolve(r);
}

function startVerify(
  a: Admission,
  job: Job,
  frame: InboundFrame,
  key: PublicKey | undefined,
): Promise<VerifyResult> {
  job.verifyKey = key;
  job.awaitingIdentity = false;
  return a.pool.verify({
    type: frame.type,
    frame: frame.frame,
    movable: frame.owned === true,
    key,
    nowMs: a.now(),
    maxRevSkewMs: a.maxRevSkewMs,
  });
}

/** A frame without a readable DID: dropped, with the reason the full checks give. */
function rejectUnreadable(a: Admission, frame: InboundFrame): Decision {
  if (frame.type === '#commit' || frame.type === '#sync') {
    const r = verifyFrame({ type: frame.type, frame: frame.frame, nowMs: a.now(), maxRevSkewMs: 0 });
    if (!r.ok) return drop(r.reason, r.detail);
  } else {
    try {
      parseEventBody(frame.type, decodeFrame(frame.frame).body);
    } catch (err) {
      return drop(err instanceof EventShapeError ? 'bad-event' : 'bad-frame', (err as Error).message);
    }
  }
  return drop('bad-event', 'no readable DID');
}
