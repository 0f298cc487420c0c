// One segment file of the event log: a run of consecutive records, named by
// the seq of its first record (so a cursor finds its file by binary search on
// names, with no directory-wide index). Holds the sparse seq → offset index
// (one entry every INDEX_EVERY records) used to start a read near a cursor
// without scanning the file, and the chunked scanner that both recovery
// (CRC-checked, finds the torn tail) and lazy index building share. The file
// name's suffix says the record format (record.ts): `.seg2` now, `.seg` for
// segments written by earlier versions, which are read but never appended to.
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CURRENT_FORMAT,
  HEADER_BYTES,
  MAX_RECORD_BYTES,
  type RecordFormat,
  type RecordHeader,
  readHeader,
  recordIsIntact,
} from './record.ts';

const SUFFIX: Record<RecordFormat, string> = { 1: '.seg', 2: '.seg2' };
export const INDEX_EVERY = 64;
const SCAN_CHUNK = 1024 * 1024;

export class Segment {
  /** Durable bytes (records fully written and synced). */
  size = 0;
  /** Number of records in the segment. */
  count = 0;
  /** Sparse index: seq and byte offset of every INDEX_EVERY-th record. */
  indexSeq: number[] = [];
  indexOff: number[] = [];
  indexed = false;
  /** Set once retention deleted the file. */
  removed = false;

  constructor(
    readonly dir: string,
    readonly firstSeq: number,
    /** Newest record time (ms), or the file mtime for segments found at open. */
    public lastTime: number,
    readonly format: RecordFormat = CURRENT_FORMAT,
  ) {}

  get path(): string {
    return join(this.dir, segmentFileName(this.firstSeq, this.format));
  }

  get headerBytes(): number {
    return HEADER_BYTES[this.format];
  }

  get lastSeq(): number {
    return this.firstSeq + this.count - 1;
  }

  /** Records a newly written record in the sparse index (writer side). */
  noteRecord(seq: number, offset: number): void {
    if ((seq - this.firstSeq) % INDEX_EVERY === 0) {
      this.indexSeq.push(seq);
      this.indexOff.push(offset);
    }
  }

  /** Byte offset of an indexed record at or before `seq` (seq inside this segment). */
  seekOffset(seq: number): { seq: number; offset: number } {
    const s = this.indexSeq;
    let lo = 0;
    let hi = s.length - 1;
    let best = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] <= seq) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (s.length === 0) return { seq: this.firstSeq, offset: 0 };
    return { seq: s[best], offset: this.indexOff[best] };
  }

  dropIndex(): void {
    this.indexSeq = [];
    this.indexOff = [];
    this.indexed = false;
  }
}

export function segmentFileName(firstSeq: number, format: RecordFormat = CURRENT_FORMAT): string {
  return `${firstSeq.toString().padStart(16, '0')}${SUFFIX[format]}`;
}

export function parseSegmentFileName(name: string): { firstSeq: number; format: RecordFormat } | undefined {
  const m = /^(\d{1,16})\.seg(2?)$/.exec(name);
  if (!m) return undefined;
  const n = Number(m[1]);
  if (!Number.isSafeInteger(n) || n < 1) return undefined;
  return { firstSeq: n, format: m[2] === '2' ? 2 : 1 };
}

export interface ScanResult {
  /** Bytes of valid records from the start of the file. */
  validBytes: number;
  count: number;
  lastTime: number;
}

/**
 * Walks the records of a segment from its start, calling `onRecord` for each
 * valid one. Stops at the first record that is cut short, has a length out of
 * range, breaks the seq sequence, or (with `verify`) fails its CRC: everything
 * from there on is a torn or corrupt tail.
 */
export async function scanSegment(
  fh: FileHandle,
  fileSize: number,
  firstSeq: number,
  format: RecordFormat,
  verify: boolean,
  onRecord?: (h: RecordHeader, offset: number) => void,
): Promise<ScanResult> {
  const headerBytes = HEADER_BYTES[format];
  let buf = Buffer.allocUnsafe(SCAN_CHUNK);
  let bufStart = 0;
  let bufEnd = 0;
  const ensure = async (pos: number, need: number): Promise<boolean> => {
    if (pos >= bufStart && pos + need <= bufEnd) return true;
    if (pos + need > fileSize) return false;
    const want = Math.min(Math.max(SCAN_CHUNK, need), fileSize - pos);
    if (buf.length < want) buf = Buffer.allocUnsafe(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await fh.read(buf, got, want - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    bufStart = pos;
    bufEnd = pos + got;
    return got >= need;
  };
  let pos = 0;
  let expected = firstSeq;
  let lastTime = 0;
  let count = 0;
  while (await ensure(pos, headerBytes)) {
    const h = readHeader(buf, pos - bufStart, format);
    if (h.seq !== expected || h.len > MAX_RECORD_BYTES) break;
    const total = headerBytes + h.len;
    if (pos + total > fileSize) break;
    if (verify) {
      if (!(await ensure(pos, total))) break;
      if (!recordIsIntact(buf, pos - bufStart, h.len, format)) break;
    }
    onRecord?.(h, pos);
    lastTime = h.time;
    count++;
    expected++;
    pos += total;
  }
  return { validBytes: pos, count, lastTime };
}
