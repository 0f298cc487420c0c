// Fault knobs for a simulated PDS: ways a host can misbehave that a relay
// must survive. A test arms a fault on a host (`host.injectFault('highS')`);
// the host's next event(s) then come out bad in that way, and the host logs
// which seq and DID carried the fault so the test can assert on the relay's
// reaction. Faults can also fire at random with a per-event probability for
// long network runs (`setRates`).
//
// Commit faults change how the next commit is made (key, signature, rev,
// prevData, chain). Transport faults change what goes on the wire around the
// next event and never consume a seq: the event itself is still sequenced and
// kept for replay, so a relay that reconnects with its cursor can recover.
import { concatBytes } from '../src/protocol/bytes.ts';
import { encodeCbor } from '../src/protocol/cbor.ts';
import type { Prng } from './prng.ts';

export const COMMIT_FAULTS = [
  'wrongKey', // signed with a key that is not in the DID document
  'highS', // valid signature in its high-S form (atproto requires low-S)
  'revRollback', // rev lower than the previous commit's
  'futureRev', // rev more than 10 minutes ahead of now
  'brokenPrevData', // prevData field does not name the previous commit's data
  'skippedCommit', // a commit is made but never emitted: the next one's since/prevData do not chain
  'wrongHost', // the account's DID document names another host, then the commit is emitted here
] as const;

export const TRANSPORT_FAULTS = [
  'malformedCbor', // a frame whose body is not valid DAG-CBOR
  'oversizedFrame', // a #commit frame over 5 MB
  'truncatedFrame', // the next event's frame cut short, sent before the real one
  'abruptDisconnect', // every subscriber socket destroyed without a close frame
] as const;

export type CommitFault = (typeof COMMIT_FAULTS)[number];
export type TransportFault = (typeof TRANSPORT_FAULTS)[number];
export type FaultKind = CommitFault | TransportFault;

export interface FaultOptions {
  /** wrongHost: the PDS endpoint to put in the DID document (default: an unused loopback port) */
  pds?: string;
  /** oversizedFrame: frame size in bytes (default 5.5 MB) */
  size?: number;
}

export interface FaultRecord {
  kind: FaultKind;
  /** seq of the event that carried the fault (commit faults), or the seq the bad frame preceded */
  seq: number | null;
  did: string | null;
  /** rev of the commit made under the fault, when there is one */
  rev?: string;
}

export function isCommitFault(k: FaultKind): k is CommitFault {
  return (COMMIT_FAULTS as readonly string[]).includes(k);
}

interface Armed {
  kind: FaultKind;
  remaining: number;
  opts: FaultOptions;
}

export class FaultKnobs {
  private armed: Armed[] = [];
  private rates = new Map<FaultKind, number>();
  readonly log: FaultRecord[] = [];

  /** Makes the next `count` events carry this fault. */
  arm(kind: FaultKind, count = 1, opts: FaultOptions = {}): void {
    this.armed.push({ kind, remaining: count, opts });
  }

  /** Per-event probability of each fault firing at random (0 disables). */
  setRates(rates: Partial<Record<FaultKind, number>>): void {
    for (const [k, v] of Object.entries(rates) as [FaultKind, number][]) {
      if (v > 0) this.rates.set(k, v);
      else this.rates.delete(k);
    }
  }

  clear(): void {
    this.armed = [];
    this.rates.clear();
  }

  get pending(): number {
    return this.armed.length;
  }

  private take(
    filter: (k: FaultKind) => boolean,
    prng: Prng | null,
  ): { kind: FaultKind; opts: FaultOptions }[] {
    const out: { kind: FaultKind; opts: FaultOptions }[] = [];
    for (const a of this.armed) {
      if (a.remaining > 0 && filter(a.kind)) {
        a.remaining--;
        out.push({ kind: a.kind, opts: a.opts });
      }
    }
    this.armed = this.armed.filter((a) => a.remaining > 0);
    if (prng) {
      for (const [kind, p] of this.rates) if (filter(kind) && prng.next() < p) out.push({ kind, opts: {} });
    }
    return out;
  }

  /** The commit faults for the next commit (at most one of each kind). */
  takeCommitFaults(prng: Prng | null): { kind: CommitFault; opts: FaultOptions }[] {
    return this.take(isCommitFault, prng) as { kind: CommitFault; opts: FaultOptions }[];
  }

  takeTransportFaults(prng: Prng | null): { kind: TransportFault; opts: FaultOptions }[] {
    return this.take((k) => !isCommitFault(k), prng) as { kind: TransportFault; opts: FaultOptions }[];
  }
}

// --- bad frames

/** A message frame with a valid header and a body that is not valid CBOR (reserved simple value). */
export function malformedCborFrame(): Uint8Array {
  return concatBytes([
    encodeCbor({ op: 1, t: '#commit' }),
    Uint8Array.of(0xa2, 0x63, 0x73, 0x65, 0x71, 0x1c),
  ]);
}

/** A well-formed #commit frame whose blocks make it larger than `size` bytes. */
export function oversizedCommitFrame(
  did: string,
  seq: number,
  rev: string,
  size = 5.5 * 1024 * 1024,
): Uint8Array {
  return concatBytes([
    encodeCbor({ op: 1, t: '#commit' }),
    encodeCbor({
      seq,
      repo: did,
      rev,
      since: null,
      rebase: false,
      tooBig: false,
      blocks: new Uint8Array(Math.ceil(size)),
      ops: [],
      blobs: [],
      time: new Date().toISOString(),
    }),
  ]);
}

/** The first part of a frame, cut inside the body. */
export function truncateFrame(frame: Uint8Array): Uint8Array {
  return frame.slice(0, Math.max(1, Math.floor(frame.length / 2)));
}
