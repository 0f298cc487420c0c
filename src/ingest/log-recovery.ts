// Exactly once through a crash: what the event log's tail says at start.
//
// The problem. Ingest resumes each host from its stored cursor, which is
// written every few seconds (cursor-coalescer.ts) and only ever covers
// frames that are finished. After a SIGKILL the host sends again every frame
// above that cursor; some of those were already relayed (their events are
// durable in the log, consumers may have them), so relaying them again would
// duplicate them. And repo heads, written to the store just after the append,
// may lag the log, so the repo's next commit would wrongly look unchained.
//
// The records. Every event appended for an upstream frame carries the frame's
// origin (host id, upstream seq) in its log record (eventlog/record.ts).
//
// The checkpoint. With every cursor batch, in the same transaction, the store
// keeps a relay seq C (MetadataStore.getLogCheckpoint) with this property:
//
//   (P) every log record whose origin is (h, s) with s above h's stored
//       cursor has a relay seq above C; and every record whose repo head may
//       be missing from the store has a relay seq above C.
//
// C is min(log head, every host's log mark, validator head floor - 1), taken
// in the same synchronous step as the cursor batch (HostSubscriber.logMark,
// Validator.headFloor). Why (P) holds for a record of frame F = (h, s),
// s > stored cursor c_h, appended at relay seq q:
//   - If F was handed on before the batch was taken, then at that moment F
//     was either unfinished, or finished behind an unfinished frame G of h
//     that was handed on before it (the cursor stops only at unfinished
//     frames; a refused frame's followers are carried in `relayed` with their
//     mark). Either way the host's mark was at most the log head when G (or
//     F) was handed on, which is below q: nothing is appended for a frame
//     before it is handed on, and relay seqs only grow.
//   - If F was handed on after the batch, q is above the log head at the
//     batch, which is at least C.
//   Heads: a frame's submit resolves at durability, before its head is
//   written, but a cursor batch is written only once the heads of the frames
//   it passes are stored (validate/head-writer.ts, "Cursors wait for
//   heads"); heads not yet written, including those staged by the relay
//   itself (resync), are covered by the head floor.
//
// The scan (recoverFromLog). At start, before any host is dialled: read the
// log from C + 1 to its head (taken-down records included). Each record with
// an origin above its host's stored cursor goes into that host's "already
// relayed" set; the subscriber counts those frames finished when the host
// sends them again, without handing them on. The last #commit/#sync record
// of each repo in the scan sets the stored head (the log's order is each
// repo's order, and nothing newer than the log can be in the store).
//
// The first cursor. A host first subscribed live (stored cursor 0) stores the
// cursor just before its first frame before handing anything on, so after a
// crash it resumes from there instead of live (HostSubscriber).
//
// Cursor resets. An operator reset makes a host's earlier seqs meaningless
// (a PDS that reset its sequence reuses them): the log head at the reset is
// stored per host (recordCursorReset), and the scan ignores that host's
// records at or below it.
//
// Bounds. The scan covers the records appended since the checkpoint was
// last written (normally a few seconds' worth: one cursor flush interval
// plus the longest time a frame stayed in flight). The sets hold only seqs
// above each stored cursor, at most the scanned records.
import type { EventLog } from '../eventlog/types.ts';
import { EventKind } from '../eventlog/types.ts';
import type { Logger } from '../log.ts';
import { readCar } from '../protocol/car.ts';
import { type Cid, cidToString } from '../protocol/cid.ts';
import { decodeCommit } from '../protocol/commit.ts';
import { parseEventBody } from '../protocol/events.ts';
import { decodeFrame } from '../protocol/frames.ts';
import type { MetadataStore, RepoHead } from '../store/metadata-store.ts';
import type { RelayedSinceCheckpoint } from './host-manager.ts';

declare module '../store/metadata-store.ts' {
  interface RelaySettings {
    /** Host id → the log head when an operator reset its cursor (see log-recovery.ts). */
    ingestCursorResets: Record<string, number>;
  }
}

export interface LogRecovery extends RelayedSinceCheckpoint {
  /** Records read. */
  scanned: number;
  /** Repo heads the store was behind on and now has. */
  headsRepaired: number;
  /** Upstream events found already relayed above their host's cursor. */
  relayed: number;
}

/** Remembers that host `hostId`'s cursor was reset when the log head was `logHead`. */
export async function recordCursorReset(
  store: MetadataStore,
  hostId: number,
  logHead: number,
): Promise<void> {
  const resets = { ...((await store.getSetting('ingestCursorResets')) ?? {}) };
  resets[String(hostId)] = logHead;
  // A reset at or below the stored checkpoint is below every future scan.
  const checkpoint = await store.getLogCheckpoint();
  if (checkpoint !== undefined) {
    for (const [k, v] of Object.entries(resets))
      if (v <= checkpoint && k !== String(hostId)) delete resets[k];
  }
  await store.setSetting('ingestCursorResets', resets);
}

/** The repo head a #commit or #sync frame sets, or undefined when it cannot be read. */
export function headOfFrame(frame: Uint8Array): { did: string; head: RepoHead } | undefined {
  try {
    const { header, body } = decodeFrame(frame);
    if (header.op !== 1) return undefined;
    const parsed = parseEventBody(header.t, body);
    let did: string;
    let rev: string;
    let commitCid: Cid | undefined;
    let blocks: Uint8Array;
    if (parsed.kind === 'commit') {
      ({ repo: did, rev, commit: commitCid, blocks } = parsed.event);
    } else if (parsed.kind === 'sync') {
      ({ did, rev, blocks } = parsed.event);
    } else {
      return undefined;
    }
    const car = readCar(blocks);
    if (parsed.kind === 'sync') commitCid = car.roots[0];
    if (!commitCid) return undefined;
    const block = car.blocks.get(commitCid);
    if (!block) return undefined;
    const commit = decodeCommit(block);
    return { did, head: { rev, commitCid: cidToString(commitCid), dataCid: commit.data.$link } };
  } catch {
    return undefined;
  }
}

/** Reads the log after the stored checkpoint; repairs repo heads; returns what ingest must skip. */
export async function recoverFromLog(opts: {
  log: EventLog;
  store: MetadataStore;
  logger: Logger;
}): Promise<LogRecovery> {
  const { log, store, logger } = opts;
  const checkpoint = await store.getLogCheckpoint();
  const head = log.head();
  const result: LogRecovery = { byHost: new Map(), mark: head, scanned: 0, headsRepaired: 0, relayed: 0 };
  if (checkpoint === undefined) {
    // Never written: nothing was ever handed on by a version that keeps one.
    if (head > 0) logger.info({ head }, 'no log checkpoint stored: nothing to recover');
    return result;
  }
  result.mark = checkpoint;
  if (checkpoint >= head) return result;
  const cursors = new Map<number, number>();
  for (let after: number | undefined; ; ) {
    const page = await store.listHosts({ after, limit: 1000 });
    for (const h of page) cursors.set(h.id, h.cursor);
    if (page.length < 1000) break;
    after = page[page.length - 1].id;
  }
  const resets = (await store.getSetting('ingestCursorResets')) ?? {};
  // The last #commit/#sync frame of each repo (copied: the read chunk is not kept).
  const lastFrames = new Map<number, Uint8Array>();
  const started = performance.now();
  let after = checkpoint;
  for (;;) {
    const records = await log.readFrom(after, { maxBytes: 4 * 1024 * 1024, includeTakenDown: true });
    if (records.length === 0) break;
    for (const r of records) {
      after = r.seq;
      result.scanned++;
      const o = r.origin;
      if (o) {
        const reset = resets[String(o.hostId)];
        const cursor = cursors.get(o.hostId);
        if ((reset === undefined || r.seq > reset) && cursor !== undefined && o.seq > cursor) {
          let seqs = result.byHost.get(o.hostId);
          if (!seqs) {
            seqs = [];
            result.byHost.set(o.hostId, seqs);
          }
          seqs.push(o.seq);
          result.relayed++;
        }
      }
      if ((r.kind === EventKind.commit || r.kind === EventKind.sync) && r.uid > 0) {
        lastFrames.set(r.uid, r.frame.slice());
      }
    }
    if (after >= head) break;
  }
  for (const [uid, frame] of lastFrames) {
    const decoded = headOfFrame(frame);
    if (!decoded) continue;
    const { did, head: h } = decoded;
    const account = await store.getAccountByUid(uid);
    if (!account || account.did !== did) continue;
    const cur = account.head;
    if (cur && cur.rev === h.rev && cur.commitCid === h.commitCid && cur.dataCid === h.dataCid) continue;
    await store.resetAccountHead(uid, h);
    result.headsRepaired++;
  }
  logger.info(
    {
      checkpoint,
      head,
      scanned: result.scanned,
      relayed: result.relayed,
      hosts: result.byHost.size,
      headsRepaired: result.headsRepaired,
      ms: Math.round(performance.now() - started),
    },
    'recovered ingest state from the event log',
  );
  return result;
}
