// Frames the relay writes itself (as opposed to forwarding a host's frame
// with a new seq): the #account it re-emits with its own computed status (or
// an admin takedown and its reversal), the #account desynchronized of a chain
// break, the #sync after a resync, and an #identity stripped of an unverified
// handle. Each is a function of the relay
// seq, the form the event log's append takes, so the frame is encoded once
// with its final seq.
import { writeCar } from './car.ts';
import type { Cid } from './cid.ts';
import { encodeFrame } from './frames.ts';

/** What an `#account` event says about an account: `active`, and `status` when not active. */
export interface PublishedStatus {
  active: boolean;
  status?: string;
}

export function accountFrame(
  did: string,
  status: PublishedStatus,
  time: string,
): (seq: number) => Uint8Array {
  return (seq) => {
    const body: Record<string, unknown> = { seq, did, time, active: status.active };
    if (status.status !== undefined) body.status = status.status;
    return encodeFrame('#account', body);
  };
}

export function identityFrame(
  did: string,
  time: string,
  handle: string | undefined,
): (seq: number) => Uint8Array {
  return (seq) => {
    const body: Record<string, unknown> = { seq, did, time };
    if (handle !== undefined) body.handle = handle;
    return encodeFrame('#identity', body);
  };
}

export function syncFrame(
  did: string,
  rev: string,
  commitCid: Cid,
  commitBlock: Uint8Array,
  time: string,
): (seq: number) => Uint8Array {
  const blocks = writeCar([commitCid], [[commitCid, commitBlock]]);
  return (seq) => encodeFrame('#sync', { seq, did, rev, blocks, time });
}
