// Recovery of the embedded event log at open (file-log.ts). Segments are
// named by their first seq; only the newest can have a torn tail (a segment
// is synced before the next one is created), so it is scanned with CRC
// checks and truncated at the first bad record, and the log continues after
// the last intact record. Older segments are trusted: their record counts
// follow from the next segment's first seq, and they are indexed lazily when
// a reader first needs them (file-reader.ts).
//
// Then the time index (time-index.ts) is brought up to the head: it is a
// cache of what the records determine, so what a crash lost is recomputed
// from the records after its last checkpoint kept.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.ts';
import { type AppendHandle, openAppendHandle } from './file-io.ts';
import { parseSegmentFileName, Segment, scanSegment } from './segment.ts';
import { TimeIndex } from './time-index.ts';
import type { LogRecord, ReadOptions } from './types.ts';

const TIME_INDEX_FILE = 'time-index.bin';

export interface RecoveredSegments {
  /** Every segment file found, oldest first, with its size and record count. */
  segments: Segment[];
  /**
   * The newest segment, scanned, cut back to its last intact record and
   * indexed, with its file open for the log's appends (O_DSYNC when
   * `durable`: file-io.ts); undefined in an empty directory.
   */
  tail?: { seg: Segment } & AppendHandle;
}

/** Finds the segments of `dir` and repairs the newest one's torn tail. */
export async function recoverSegments(
  dir: string,
  log: Logger,
  durable: boolean,
): Promise<RecoveredSegments> {
  const segments: Segment[] = [];
  const names = await readdir(dir);
  const found = names
    .map(parseSegmentFileName)
    .filter((n) => n !== undefined)
    .sort((a, b) => a.firstSeq - b.firstSeq);
  for (const { firstSeq, format } of found) {
    const seg = new Segment(dir, firstSeq, 0, format);
    const st = await stat(seg.path);
    seg.size = st.size;
    seg.lastTime = st.mtimeMs;
    segments.push(seg);
  }
  // Sealed segments: the count follows from the next segment's first seq.
  for (let i = 0; i + 1 < segments.length; i++) {
    segments[i].count = segments[i + 1].firstSeq - segments[i].firstSeq;
  }
  const last = segments.at(-1);
  if (!last) return { segments };
  const { fh, dsync } = await openAppendHandle(last.path, 'r+', durable);
  const fileSize = last.size;
  const scan = await scanSegment(fh, fileSize, last.firstSeq, last.format, true, (h, off) =>
    last.noteRecord(h.seq, off),
  );
  if (scan.validBytes < fileSize) {
    log.warn(
      { segment: last.path, validBytes: scan.validBytes, fileSize },
      'truncating torn tail of the event log',
    );
    await fh.truncate(scan.validBytes);
    await fh.sync();
  }
  last.size = scan.validBytes;
  last.count = scan.count;
  last.indexed = true;
  if (scan.count > 0) last.lastTime = scan.lastTime;
  return { segments, tail: { seg: last, fh, dsync } };
}

export interface TimeIndexRecovery {
  dir: string;
  everyEvents?: number;
  everyMs?: number;
  fsync: boolean;
  log: Logger;
  /** The log's durable head after segment recovery. */
  head: number;
  /** The lowest seq the log keeps. */
  oldest: number;
  /** First seq of the segment being written (where a fresh chain starts). */
  activeFirstSeq: number;
  /** First seqs of the kept segments (each starts a checkpoint). */
  segmentStarts: Set<number>;
  readFrom: (after: number, opts: ReadOptions) => Promise<LogRecord[]>;
}

/**
 * Loads the time index and brings it up to the head: checkpoints past the
 * head (a torn tail was cut) or below the oldest record go, and the chain
 * is walked from the last checkpoint kept over the records after it,
 * re-adding lost checkpoints. With no usable checkpoint a fresh chain
 * starts at the active segment (older records stay unindexed).
 */
export async function recoverTimeIndex(o: TimeIndexRecovery): Promise<TimeIndex> {
  const idx = await TimeIndex.load({
    path: join(o.dir, TIME_INDEX_FILE),
    everyEvents: o.everyEvents,
    everyMs: o.everyMs,
    fsync: o.fsync,
    onError: (err) => o.log.warn({ err }, 'time index write failed (rebuilt on the next open)'),
  });
  if (idx.dropAfter(o.head)) await idx.rewrite();
  const oldest = o.oldest;
  await idx.trimBefore(oldest);
  if (o.head === 0) return idx;
  const cp = idx.lastCheckpoint();
  let after: number;
  if (cp) {
    idx.resumeAt(cp.seq, cp.timeUs);
    after = cp.seq;
  } else {
    after = Math.max(o.activeFirstSeq, oldest) - 1;
  }
  const starts = o.segmentStarts;
  while (after < o.head) {
    const recs = await o.readFrom(after, { includeTakenDown: true, maxBytes: 4 * 1024 * 1024 });
    if (recs.length === 0) break;
    for (const r of recs) idx.assign(r.seq, r.time, starts.has(r.seq));
    after = recs[recs.length - 1].seq;
  }
  await idx.flush();
  return idx;
}
