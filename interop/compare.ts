// Event-by-event comparison of what PDSes sequenced (harness `events`) with
// what a Bluesky-library consumer received (consumer.mjs lines). Two views:
//   frames: every message as received, compared field by field (kind, DID,
//           commit CID, rev, since, ops, handle, account status), in order;
//   events: what the library passed verification: one event per commit op,
//           plus identity, account and sync events.
// Seqs are compared as-is when the consumer reads a PDS directly; a relay
// renumbers, so for it `withoutSeq` drops them and the caller checks the
// relay's seqs are strictly increasing. Any drop, duplicate, reorder or
// changed field makes the deepEqual fail and show the first difference.
import assert from 'node:assert/strict';
import type { ConsumerLine, PdsEvent } from './procs.ts';

export interface FrameView {
  seq?: number;
  kind: string;
  did: string;
  commit?: string;
  rev?: string;
  since?: string | null;
  ops?: PdsEvent['ops'];
  handle?: string | null;
  active?: boolean;
  status?: string | null;
}

export function frameFromPds(e: PdsEvent): FrameView {
  const out: FrameView = { seq: e.seq, kind: e.type, did: e.did };
  if (e.type === 'commit')
    Object.assign(out, { commit: e.commit, rev: e.rev, since: e.since ?? null, ops: e.ops });
  else if (e.type === 'sync') out.rev = e.rev;
  else if (e.type === 'identity') out.handle = e.handle ?? null;
  else if (e.type === 'account') Object.assign(out, { active: e.active, status: e.status ?? null });
  return out;
}

export function frameFromConsumer(l: ConsumerLine): FrameView {
  const out: FrameView = { seq: l.seq, kind: l.kind ?? '?', did: l.did ?? '?' };
  if (l.kind === 'commit')
    Object.assign(out, { commit: l.commit, rev: l.rev, since: l.since ?? null, ops: l.ops });
  else if (l.kind === 'sync') out.rev = l.rev;
  else if (l.kind === 'identity') out.handle = l.handle ?? null;
  else if (l.kind === 'account') Object.assign(out, { active: l.active, status: l.status ?? null });
  return out;
}

export interface EventView {
  seq?: number;
  event: string;
  did: string;
  commit?: string;
  rev?: string;
  path?: string;
  cid?: string | null;
  active?: boolean;
  status?: string | null;
}

/** The verified events a consumer should hand out for these PDS events. */
export function expectedEvents(events: PdsEvent[]): EventView[] {
  const out: EventView[] = [];
  for (const e of events) {
    if (e.type === 'commit') {
      for (const op of e.ops ?? []) {
        out.push({
          seq: e.seq,
          event: op.action,
          did: e.did,
          commit: e.commit,
          rev: e.rev,
          path: op.path,
          cid: op.action === 'delete' ? null : op.cid,
        });
      }
    } else if (e.type === 'sync') out.push({ seq: e.seq, event: 'sync', did: e.did, rev: e.rev });
    else if (e.type === 'identity') out.push({ seq: e.seq, event: 'identity', did: e.did });
    else if (e.type === 'account')
      out.push({ seq: e.seq, event: 'account', did: e.did, active: e.active, status: e.status ?? null });
  }
  return out;
}

export function eventFromConsumer(l: ConsumerLine): EventView {
  const out: EventView = { seq: l.seq, event: l.event ?? '?', did: l.did ?? '?' };
  if (l.event === 'create' || l.event === 'update' || l.event === 'delete')
    Object.assign(out, { commit: l.commit, rev: l.rev, path: l.path, cid: l.cid ?? null });
  else if (l.event === 'sync') out.rev = l.rev;
  else if (l.event === 'account') Object.assign(out, { active: l.active, status: l.status ?? null });
  return out;
}

export function withoutSeq<T extends { seq?: number }>(items: T[]): Omit<T, 'seq'>[] {
  return items.map(({ seq: _seq, ...rest }) => rest);
}

export function assertStrictlyIncreasing(seqs: number[], what: string): void {
  for (let i = 1; i < seqs.length; i++) {
    assert.ok(seqs[i] > seqs[i - 1], `${what}: seq ${seqs[i]} after ${seqs[i - 1]} (index ${i})`);
  }
}

/** No library errors, every message seen, every op verified, all in order. */
export function assertConsumerSaw(
  lines: ConsumerLine[],
  pdsEvents: PdsEvent[],
  opts: { sameSeqs: boolean },
): void {
  const errors = lines.filter((l) => l.type === 'error');
  assert.deepEqual(errors, [], 'the consumer library reported errors');
  const frames = lines.filter((l) => l.type === 'frame').map(frameFromConsumer);
  const events = lines.filter((l) => l.type === 'event').map(eventFromConsumer);
  const wantFrames = pdsEvents.map(frameFromPds);
  const wantEvents = expectedEvents(pdsEvents);
  assertStrictlyIncreasing(
    frames.map((f) => f.seq ?? -1),
    'frames',
  );
  if (opts.sameSeqs) {
    assert.deepEqual(frames, wantFrames);
    assert.deepEqual(events, wantEvents);
  } else {
    assert.deepEqual(withoutSeq(frames), withoutSeq(wantFrames));
    assert.deepEqual(withoutSeq(events), withoutSeq(wantEvents));
  }
}

/** Splits frames and verified events by DID, dropping seqs (a relay interleaves hosts and renumbers). */
export function perDid(lines: ConsumerLine[]): Map<string, { frames: FrameView[]; events: EventView[] }> {
  const out = new Map<string, { frames: FrameView[]; events: EventView[] }>();
  const slot = (did: string) => {
    let s = out.get(did);
    if (!s) {
      s = { frames: [], events: [] };
      out.set(did, s);
    }
    return s;
  };
  for (const l of lines) {
    if (l.type === 'frame') slot(l.did ?? '?').frames.push(withoutSeq([frameFromConsumer(l)])[0]);
    else if (l.type === 'event') slot(l.did ?? '?').events.push(withoutSeq([eventFromConsumer(l)])[0]);
  }
  return out;
}

/**
 * A relay's stream against what the PDSes emitted, per DID: for each DID in
 * `pdsEvents`, the relay's frames and verified events equal the PDS's, in
 * order, with no extra and no missing one; relay seqs strictly increase and
 * the consumer library reported no error (other than `allowErrors`, e.g. the
 * disconnect of a relay restart).
 */
export function assertRelayedPerDid(
  relayLines: ConsumerLine[],
  pdsEvents: PdsEvent[],
  opts: { allowErrors?: (l: ConsumerLine) => boolean; onlyDids?: Set<string> } = {},
): void {
  const errors = relayLines.filter((l) => l.type === 'error' && !opts.allowErrors?.(l));
  assert.deepEqual(errors, [], 'the consumer library reported errors on the relay stream');
  assertStrictlyIncreasing(
    relayLines.filter((l) => l.type === 'frame').map((l) => l.seq ?? -1),
    'relay frames',
  );
  const got = perDid(relayLines);
  const want = new Map<string, PdsEvent[]>();
  for (const e of pdsEvents) {
    if (opts.onlyDids && !opts.onlyDids.has(e.did)) continue;
    want.set(e.did, [...(want.get(e.did) ?? []), e]);
  }
  for (const [did, evts] of want) {
    const mine = got.get(did) ?? { frames: [], events: [] };
    assert.deepEqual(mine.frames, withoutSeq(evts.map(frameFromPds)), `frames of ${did}`);
    assert.deepEqual(mine.events, withoutSeq(expectedEvents(evts)), `verified events of ${did}`);
  }
}
