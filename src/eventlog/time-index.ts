// The event log's time index: relay seq ↔ event time in microseconds, so a
// Jetstream `time_us` cursor (src/jetstream) finds its place in the log
// without scanning it.
//
// Every record gets a time_us, unique and strictly increasing with the seq
// (Jetstream's time_us is its cursor, so two events must never share one):
//
//   time_us(seq) = max(time_ms(seq) × 1000, time_us(seq − 1) + 1)
//
// where time_ms is the append time stored in the record header. The value
// depends only on stored data and the previous value, so a reader that
// knows time_us at one seq (a checkpoint) recomputes every later one while
// it reads the records in order (`nextTimeUs`). The index keeps such
// checkpoints: the first record of every segment, then one every
// `everyEvents` records or `everyMs` of event time, whichever comes first.
// That bounds the walk from a checkpoint to a cursor's place (about a
// second of events) and the memory (retention trims the index together
// with the segments: ~16 bytes per checkpoint).
//
// Persisted beside the segments in `time-index.bin` as 16-byte entries
// (u64 seq, u64 time_us, little-endian), appended as checkpoints are made,
// rewritten when retention trims. The file is a cache of what the records
// determine: on open, entries past the log's head (a torn tail) or out of
// order are dropped, and the chain is walked from the last checkpoint kept
// to the head, re-adding what a crash lost (file-recovery.ts). Records older than
// the first checkpoint (a log written before this index existed) have no
// time_us: the index starts a fresh chain at the active segment.
import { appendFile, open, readFile, rename, writeFile } from 'node:fs/promises';

/** The time_us of the record after one whose time_us was `prevTimeUs`, appended at `timeMs`. */
export function nextTimeUs(prevTimeUs: number, timeMs: number): number {
  const t = timeMs * 1000;
  return t > prevTimeUs ? t : prevTimeUs + 1;
}

/** Where a reader can start walking the chain: read records with seq > afterSeq; the previous time_us was prevTimeUs. */
export interface TimeChainPosition {
  afterSeq: number;
  prevTimeUs: number;
}

export interface TimeIndexOptions {
  /** The index file (created if missing). */
  path: string;
  /** A checkpoint at least every this many records (default 1,000). */
  everyEvents?: number;
  /** A checkpoint at least every this much event time (default 1 s). */
  everyMs?: number;
  /** fsync appends and rewrites (default true). */
  fsync?: boolean;
  /** A failed write (the index is a cache: the next open rebuilds what is missing). */
  onError?: (err: Error) => void;
}

const ENTRY_BYTES = 16;

export class TimeIndex {
  private seqs: number[] = [];
  private times: number[] = [];
  /** Seq and time_us of the newest record assigned (0, 0 before any). */
  private lastSeq = 0;
  private lastTimeUs = 0;
  private unwritten: number[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly everyEvents: number;
  private readonly everyUs: number;
  private readonly fsync: boolean;

  private constructor(private readonly opts: TimeIndexOptions) {
    this.everyEvents = opts.everyEvents ?? 1000;
    this.everyUs = (opts.everyMs ?? 1000) * 1000;
    this.fsync = opts.fsync ?? true;
  }

  /** Loads the checkpoints stored at `path` (a missing or damaged file loads what is usable). */
  static async load(opts: TimeIndexOptions): Promise<TimeIndex> {
    const idx = new TimeIndex(opts);
    let buf: Buffer;
    try {
      buf = await readFile(opts.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      buf = Buffer.alloc(0);
    }
    const n = Math.floor(buf.length / ENTRY_BYTES);
    for (let i = 0; i < n; i++) {
      const seq = readU64(buf, i * ENTRY_BYTES);
      const t = readU64(buf, i * ENTRY_BYTES + 8);
      const prevSeq = idx.seqs.at(-1) ?? 0;
      const prevT = idx.times.at(-1) ?? 0;
      // Checkpoints are strictly increasing in both; anything else is damage: keep what came before.
      if (seq <= prevSeq || t < prevT + (seq - prevSeq) || seq === 0) break;
      idx.seqs.push(seq);
      idx.times.push(t);
    }
    return idx;
  }

  /** Number of checkpoints held. */
  get size(): number {
    return this.seqs.length;
  }

  /** The newest record's time_us (0 before any). */
  get headTimeUs(): number {
    return this.lastTimeUs;
  }

  /** The newest checkpoint, if any. */
  lastCheckpoint(): { seq: number; timeUs: number } | undefined {
    const n = this.seqs.length;
    return n === 0 ? undefined : { seq: this.seqs[n - 1], timeUs: this.times[n - 1] };
  }

  /** Open-time repair: forgets checkpoints above the log's head (its torn tail was cut). Returns true if any went. */
  dropAfter(head: number): boolean {
    let n = this.seqs.length;
    while (n > 0 && this.seqs[n - 1] > head) n--;
    if (n === this.seqs.length) return false;
    this.seqs.length = n;
    this.times.length = n;
    return true;
  }

  /**
   * Open-time: the chain continues after `seq` whose time_us is `timeUs`
   * (the last checkpoint kept, or the start of a fresh chain).
   */
  resumeAt(seq: number, timeUs: number): void {
    this.lastSeq = seq;
    this.lastTimeUs = timeUs;
  }

  /**
   * Assigns the next record its time_us (records must come in seq order);
   * `forceCheckpoint` for the first record of a segment. New checkpoints are
   * written out in the background (`flush` waits for them).
   */
  assign(seq: number, timeMs: number, forceCheckpoint = false): number {
    const continues = seq === this.lastSeq + 1 && this.lastSeq > 0;
    const t = continues ? nextTimeUs(this.lastTimeUs, timeMs) : Math.max(timeMs * 1000, this.lastTimeUs + 1);
    const n = this.seqs.length;
    if (
      forceCheckpoint ||
      !continues ||
      n === 0 ||
      seq - this.seqs[n - 1] >= this.everyEvents ||
      t - this.times[n - 1] >= this.everyUs
    ) {
      if (n === 0 || seq > this.seqs[n - 1]) {
        this.seqs.push(seq);
        this.times.push(t);
        this.unwritten.push(seq, t);
      }
    }
    this.lastSeq = seq;
    this.lastTimeUs = t;
    return t;
  }

  /**
   * Where to start reading for the first record with time_us ≥ `timeUs`:
   * the last checkpoint at or before it (or the first checkpoint, when the
   * cursor is older than everything indexed). Undefined when the cursor is
   * past the newest record (a live-only subscription) or nothing is indexed.
   */
  seek(timeUs: number): TimeChainPosition | undefined {
    const n = this.seqs.length;
    if (n === 0 || timeUs > this.lastTimeUs) return undefined;
    let lo = 0;
    let hi = n - 1;
    let found = 0;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.times[mid] <= timeUs) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return { afterSeq: this.seqs[found] - 1, prevTimeUs: this.times[found] - 1 };
  }

  /** The time_us of the record `seq` if it is a checkpoint (e.g. the first record of a segment). */
  checkpointAt(seq: number): number | undefined {
    let lo = 0;
    let hi = this.seqs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = this.seqs[mid];
      if (s === seq) return this.times[mid];
      if (s < seq) lo = mid + 1;
      else hi = mid - 1;
    }
    return undefined;
  }

  /** The chain position of the first indexed record (undefined when nothing is indexed). */
  first(): TimeChainPosition | undefined {
    return this.seqs.length === 0 ? undefined : { afterSeq: this.seqs[0] - 1, prevTimeUs: this.times[0] - 1 };
  }

  /** Retention: forgets checkpoints below `oldestSeq` and rewrites the file. */
  trimBefore(oldestSeq: number): Promise<void> {
    let k = 0;
    while (k < this.seqs.length && this.seqs[k] < oldestSeq) k++;
    if (k === 0) return this.writing;
    this.seqs.splice(0, k);
    this.times.splice(0, k);
    return this.rewrite();
  }

  /** Rewrites the whole file from memory (after repair or trimming). */
  rewrite(): Promise<void> {
    const seqs = this.seqs.slice();
    const times = this.times.slice();
    this.unwritten = [];
    this.writing = this.writing
      .then(async () => {
        const buf = Buffer.allocUnsafe(seqs.length * ENTRY_BYTES);
        for (let i = 0; i < seqs.length; i++) {
          writeU64(buf, i * ENTRY_BYTES, seqs[i]);
          writeU64(buf, i * ENTRY_BYTES + 8, times[i]);
        }
        const tmp = `${this.opts.path}.tmp`;
        await writeFile(tmp, buf);
        if (this.fsync) await syncFile(tmp);
        await rename(tmp, this.opts.path);
      })
      .catch((err: unknown) => this.failed(err));
    return this.writing;
  }

  /** Appends the checkpoints made since the last call (in the background, in order). */
  persist(): Promise<void> {
    if (this.unwritten.length === 0) return this.writing;
    const entries = this.unwritten;
    this.unwritten = [];
    this.writing = this.writing
      .then(async () => {
        const buf = Buffer.allocUnsafe((entries.length / 2) * ENTRY_BYTES);
        for (let i = 0; i < entries.length; i += 2) {
          writeU64(buf, (i / 2) * ENTRY_BYTES, entries[i]);
          writeU64(buf, (i / 2) * ENTRY_BYTES + 8, entries[i + 1]);
        }
        await appendFile(this.opts.path, buf);
        if (this.fsync) await syncFile(this.opts.path);
      })
      .catch((err: unknown) => this.failed(err));
    return this.writing;
  }

  private failed(err: unknown): void {
    this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  /** Waits for every queued write. */
  async flush(): Promise<void> {
    await this.persist();
    await this.writing;
  }
}

function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v % 0x1_0000_0000, off);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32LE(off) + buf.readUInt32LE(off + 4) * 0x1_0000_0000;
}

async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
