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

import type { InboundFrame } from '../ingest/frame-sink.ts';
import type { InPlaceWork } from '../ingest/socket-wire.ts';
import { isWholeBuffer } from '../protocol/bytes.ts';
import type { KeyAlg, PublicKey } from '../protocol/keys.ts';
import { type VerifyResult, verifyFrame } from './verify-frame.ts';
import { type ResultWire, resultFromWire, resultToWire } from './wire.ts';

/** Accounts whose keys one thread holds at most (~200 bytes each). */
export const MAX_KEYS = 50_000;

/** What main teaches: the key and its id. */
type KeyLesson = [alg: KeyAlg, bytes: Uint8Array, id: number];
/** What a thread sends with a frame it verified. */
type InPlaceVerdict = [result: ResultWire, keyId: number];

/** The worker side: the key table and the check. */
export class InPlaceVerifier implements InPlaceWork {
  private readonly keys = new Map<string, { key: PublicKey; id: number }>();

  constructor(
    private readonly maxRevSkewMs: number,
    private readonly maxKeys = MAX_KEYS,
  ) {}

  get size(): number {
    return this.keys.size;
  }

  learn(did: string, payload: unknown): void {
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
