// Reads of the embedded event log (file-log.ts): records after a seq, in
// order, from the segment files, up to a byte budget. A read finds its
// segment by binary search on first seqs, then a byte offset near the seq in
// the segment's sparse index (segment.ts), which is built lazily, by one scan,
// the first time a sealed segment is read; at most MAX_CACHED_INDEXES such
// indexes are kept. Where a read stops, a position hint (seq → segment and
// offset) is remembered, so a sequential reader such as a firehose consumer
// catching up continues without the index. Records are checked against
// their expected seq as they are read; taken-down records are skipped.
//
// Retention (file-retention.ts) may remove a segment while a read is under
// way: the read then continues from the oldest record kept. Only durable
// records (up to the log's head) are ever read.
import { open } from 'node:fs/promises';
import { Lru } from '../lru.ts';
import { readChunk } from './file-io.ts';
import { readHeader } from './record.ts';
import { type Segment, scanSegment } from './segment.ts';
import type { LogRecord, ReadOptions } from './types.ts';

const DEFAULT_READ_BYTES = 1024 * 1024;
const MAX_CACHED_INDEXES = 256;
const MAX_POSITION_HINTS = 4096;

/** What a reader needs of the log it reads. */
export interface SegmentReaderSource {
  /** The kept segments, oldest first. */
  segments(): readonly Segment[];
  /** The segment being written (its index is never dropped). */
  active(): Segment;
  /** The durable head: the highest seq that may be read. */
  head(): number;
  /** The lowest seq still kept. */
  oldest(): number;
  takedowns: { isTakenDown(uid: number, seq: number): boolean };
}

export class SegmentReader {
  /** seq of the next record to read → where it starts; lets sequential readers skip the index. */
  private hints = new Lru<number, { seg: Segment; offset: number }>(MAX_POSITION_HINTS);
  private indexedLru: Segment[] = [];

  constructor(private readonly src: SegmentReaderSource) {}

  async readFrom(after: number, opts: ReadOptions = {}): Promise<LogRecord[]> {
    const maxBytes = opts.maxBytes ?? DEFAULT_READ_BYTES;
    const out: LogRecord[] = [];
    let from = Math.max(after + 1, this.src.oldest());
    let budget = maxBytes;
    // Each pass reads one chunk of one segment; loop while under budget.
    for (;;) {
      const head = this.src.head();
      const limit = Math.min(opts.untilSeq ?? head, head);
      if (from > limit || budget <= 0) return out;
      const pos = await this.locate(from);
      if (!pos) {
        // The segment went away under us (retention): continue from what is kept.
        const oldest = this.src.oldest();
        if (oldest <= from) return out;
        from = oldest;
        continue;
      }
      const { seg, offset, seq } = pos;
      const segEnd = seg.size;
      let chunk: Buffer;
      try {
        chunk = await readChunk(seg.path, offset, Math.min(segEnd - offset, Math.max(budget, 64 * 1024)));
      } catch (err) {
        // Removed by retention while we were reading: look again. Missing otherwise: a real error.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' && seg.removed) continue;
        throw err;
      }
      let p = 0;
      let s = seq;
      const hb = seg.headerBytes;
      while (p + hb <= chunk.length && s <= limit) {
        const h = readHeader(chunk, p, seg.format);
        if (h.seq !== s)
          throw new Error(`event log corrupt: expected seq ${s} in ${seg.path}, found ${h.seq}`);
        const total = hb + h.len;
        if (p + total > chunk.length) {
          if (p === 0) {
            // A record larger than the chunk: read exactly it.
            chunk = await readChunk(seg.path, offset, total);
            continue;
          }
          break;
        }
        if (s >= from && (opts.includeTakenDown || !this.src.takedowns.isTakenDown(h.uid, s))) {
          out.push({
            seq: s,
            kind: h.kind,
            uid: h.uid,
            flags: h.flags,
            time: h.time,
            frame: chunk.subarray(p + hb, p + total),
            ...(h.originHost > 0 ? { origin: { hostId: h.originHost, seq: h.originSeq } } : {}),
          });
          budget -= h.len;
        }
        p += total;
        s++;
        if (budget <= 0) break;
      }
      if (s === seq) return out; // nothing parsed: do not spin
      this.remember(s, seg, offset + p);
      from = s;
    }
  }

  /** Drops what the reader keeps about a segment retention removed. */
  forget(seg: Segment): void {
    seg.dropIndex();
    for (const [k, v] of this.hints.entries()) if (v.seg === seg) this.hints.delete(k);
    this.indexedLru = this.indexedLru.filter((s) => s !== seg);
  }

  /** Finds the segment and a byte offset at or before `seq`, or undefined if it is not kept. */
  private async locate(seq: number): Promise<{ seg: Segment; offset: number; seq: number } | undefined> {
    const hint = this.hints.get(seq);
    if (hint && !hint.seg.removed) return { seg: hint.seg, offset: hint.offset, seq };
    const segs = this.src.segments();
    let lo = 0;
    let hi = segs.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (segs[mid].firstSeq <= seq) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (idx < 0) return undefined;
    const seg = segs[idx];
    if (seq > seg.lastSeq) return undefined;
    if (!seg.indexed) await this.buildIndex(seg);
    if (seg.removed) return undefined;
    const at = seg.seekOffset(seq);
    return { seg, offset: at.offset, seq: at.seq };
  }

  private async buildIndex(seg: Segment): Promise<void> {
    const fh = await open(seg.path, 'r');
    try {
      seg.dropIndex();
      await scanSegment(fh, seg.size, seg.firstSeq, seg.format, false, (h, off) =>
        seg.noteRecord(h.seq, off),
      );
      seg.indexed = true;
    } finally {
      await fh.close();
    }
    this.indexedLru.push(seg);
    while (this.indexedLru.length > MAX_CACHED_INDEXES) {
      const old = this.indexedLru.shift()!;
      if (old !== this.src.active()) old.dropIndex();
    }
  }

  private remember(seq: number, seg: Segment, offset: number): void {
    // The end of a segment is the start of the next one.
    if (offset >= seg.size && seq > seg.lastSeq) return;
    this.hints.set(seq, { seg, offset });
  }
}
