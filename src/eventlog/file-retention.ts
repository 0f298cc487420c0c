// Retention of the embedded event log (file-log.ts): whole segments are
// removed from the front, oldest first, while the oldest one is past the
// retention time (its newest record's time, or the file's mtime for a
// segment not scanned since the last start) or the segments together exceed
// the size cap. The segment being written is never removed. A removed
// segment is marked first, so a read under way on it continues from the
// oldest record kept (file-reader.ts); its file is then unlinked.
import { unlink } from 'node:fs/promises';
import type { Segment } from './segment.ts';

export interface RetentionPass {
  /** The kept segments, oldest first; removed ones are shifted off. */
  segments: Segment[];
  /** Segments whose newest record is older than this (epoch ms) are removed. */
  cutoff: number;
  /** Segments are removed while the total exceeds this many bytes. */
  retentionBytes: number;
  /** Bytes of the kept segments now (appends may add to it while files are unlinked). */
  totalBytes: () => number;
  /** A segment left the list (before its file is unlinked): its bytes and cached state go. */
  dropped: (seg: Segment) => void;
}

/** Removes expired segments; resolves to how many were removed. */
export async function removeExpiredSegments(o: RetentionPass): Promise<number> {
  let removed = 0;
  // Never remove the segment being written.
  while (o.segments.length > 1) {
    const seg = o.segments[0];
    const tooOld = seg.lastTime < o.cutoff;
    const tooBig = o.totalBytes() > o.retentionBytes;
    if (!tooOld && !tooBig) break;
    o.segments.shift();
    seg.removed = true;
    o.dropped(seg);
    try {
      await unlink(seg.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    removed++;
  }
  return removed;
}
