// Verification where the frame is read. A verify worker that also reads host
// sockets (ingest/socket-threads.ts) checks a #commit or #sync there, as soon
// as it is read, when it holds the account's signing key, and sends the
// verdict to the main thread with the frame. Main then posts no task for it
// and receives no result: one thread crossing per event instead of three,
// and the frame is read from the socket, checked and verified on one thread.
//
// The verdict is exactly what the pool would compute (the same verifyFrame,
// with the same key), so the one question is the key. Main is the only judge
// of it: every key main teaches a thread carries an id (one per PublicKey
// object main holds), a verdict carries the id of the key it used, and
// admission uses the verdict only when that id is the one of the key it
// would have handed the pool (the identity cache's, or the one the
// resolution returned). Otherwise the frame goes to the pool as before, and
// main teaches the thread the current key for the account's next frames. So
// a stale key in a thread (an #identity event, a refresh, an evicted entry)
// costs one task, never a wrong verdict, and nothing needs invalidating.
//
// The thread's table is bounded (MAX_KEYS accounts, oldest taught first out);
// main teaches a key again whenever a frame comes without a usable verdict.
//
// Load. A thread verifies what it reads, so one very busy host (a relay whose
// only upstream is another relay) would pin verification to one core. The
// pool reads every worker's event-loop utilisation every 100 ms; a worker
// busier than SHED_ABOVE_ELU and SHED_MARGIN busier than the others' mean
// (shedding()) is told to pass its frames on unverified (marked SHED, so main
// does not teach the key again), and the pool spreads them over every worker.
// Workers equally busy never shed: handing frames over would only add the
// crossing.

import type { InboundFrame } from '../ingest/frame-sink.ts';
import type { InPlaceWork } from '../ingest/socket-wire.ts';
import { isWholeBuffer } from '../protocol/bytes.ts';
import type { KeyAlg, PublicKey } from '../protocol/keys.ts';
import { type VerifyResult, verifyFrame } from './verify-frame.ts';
import { type ResultWire, resultFromWire, resultToWire } from './wire.ts';

/** Accounts whose keys one thread holds at most (~200 bytes each). */
export const MAX_KEYS = 50_000;
/** A worker this busy (event-loop utilisation)... */
export const SHED_ABOVE_ELU = 0.85;
/** ...and this much busier than the others' mean hands its frames to the pool (see the file comment). */
export const SHED_MARGIN = 0.3;
/** The verdict of a frame the thread had the key for but was too busy to verify. */
const SHED = 0;

/** What main teaches: the key and its id. */
type KeyLesson = [alg: KeyAlg, bytes: Uint8Array, id: number];
/** What a thread sends with a frame it verified (or SHED). */
type InPlaceVerdict = [result: ResultWire, keyId: number] | typeof SHED;

export interface InPlaceVerifierOptions {
  /** Keys held at most (default MAX_KEYS). */
  maxKeys?: number;
  /** True while the thread should hand frames to the pool (the pool says so: shedding()). */
  busy?: () => boolean;
}

/** Which workers should hand their frames to the pool, given each one's event-loop utilisation. */
export function shedding(utilisation: readonly number[]): boolean[] {
  const n = utilisation.length;
  if (n < 2) return utilisation.map(() => false);
  const total = utilisation.reduce((a, b) => a + b, 0);
  return utilisation.map((u) => u > SHED_ABOVE_ELU && u - (total - u) / (n - 1) > SHED_MARGIN);
}

/** The worker side: the key table and the check. */
export class InPlaceVerifier implements InPlaceWork {
  private readonly keys = new Map<string, { key: PublicKey; id: number }>();
  private readonly maxKeys: number;
  private readonly busy: () => boolean;

  constructor(
    private readonly maxRevSkewMs: number,
    opts: InPlaceVerifierOptions = {},
  ) {
    this.maxKeys = opts.maxKeys ?? MAX_KEYS;
    this.busy = opts.busy ?? (() => false);
  }

  get size(): number {
    return this.keys.size;
  }

  learn(did: string, payload: unknown): void {
    if (!Array.isArray(payload)) return;
    const [alg, bytes, id] = payload as KeyLesson;
    if ((alg !== 'k256' && alg !== 'p256') || !(bytes instanceof Uint8Array) || typeof id !== 'number')
      return;
    this.keys.delete(did); // re-inserted last: the oldest taught goes first
    this.keys.set(did, { key: { alg, bytes }, id });
    if (this.keys.size > this.maxKeys) {
      const oldest = this.keys.keys().next().value;
      if (oldest !== undefined) this.keys.delete(oldest);
    }
  }

  onEvent(type: string, did: string, frame: Uint8Array): InPlaceVerdict | null {
    if (type !== '#commit' && type !== '#sync') return null;
    const entry = this.keys.get(did);
    if (entry === undefined) return null;
    if (this.busy()) return SHED;
    try {
      const r = verifyFrame({
        type,
        frame,
        key: entry.key,
        nowMs: Date.now(),
        maxRevSkewMs: this.maxRevSkewMs,
      });
      return [resultToWire(r), entry.id];
    } catch {
      return null; // the pool will say what is wrong with it
    }
  }
}

const keyIds = new WeakMap<PublicKey, number>();
let nextKeyId = 1;

function keyId(key: PublicKey): number {
  let id = keyIds.get(key);
  if (id === undefined) {
    id = nextKeyId++;
    keyIds.set(key, id);
  }
  return id;
}

/**
 * The verdict the socket thread made of this frame, if it used `key`; else
 * undefined, and the thread is taught `key` for the account's next frames.
 */
export function inPlaceResult(frame: InboundFrame, did: string, key: PublicKey): VerifyResult | undefined {
  const v = frame.inPlace as InPlaceVerdict | undefined;
  if (v === SHED) return undefined; // the thread holds a key and was busy: the pool verifies it
  if (v !== undefined && v[1] === keyIds.get(key)) {
    const r = resultFromWire(v[0]);
    // the frame's buffer is ours alone (moved from the thread): the relay seq is written in place
    if (frame.owned === true && isWholeBuffer(frame.frame)) r.frame = frame.frame;
    return r;
  }
  if (frame.learner !== undefined) {
    const lesson: KeyLesson = [key.alg, key.bytes, keyId(key)];
    frame.learner.learn(did, lesson);
  }
  return undefined;
}
