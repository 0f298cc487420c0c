// The embedded event log: append-only segment files under a directory, with
// group commit. `append` assigns seqs at once (in call order) and queues the
// records; a flush writes every queued record of a segment with one positional
// write from a reused buffer, then fdatasyncs, then advances the durable head
// and notifies listeners, in that order: nothing is broadcast before it is on
// disk, and seqs that never reached the disk were never seen by anyone, so
// recovery can simply continue after the last intact record.
//
// Recovery at open: segments are named by their first seq; only the newest can
// have a torn tail (a segment is synced before the next one is created), so it
// is scanned with CRC checks and truncated at the first bad record. Older
// segments are trusted and indexed lazily when a reader first needs them.
//
// Retention removes whole segments from the front (age from the newest record
// time / file mtime, then total size). Takedowns are a uid → seq map persisted
// beside the segments: events of that uid up to that seq are skipped by reads,
// events appended after the takedown (e.g. the #account event) are not.
//
// Each record also gets a microsecond time, unique and increasing with the
// seq, assigned as it becomes durable; the time index (time-index.ts) keeps
// checkpoints of it beside the segments so a time cursor finds its seq.
import { mkdirSync } from 'node:fs';
import { type FileHandle, open, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../log.ts';
import { CURRENT_FORMAT, HEADER_BYTES, MAX_RECORD_BYTES, readHeader, writeHeader } from './record.ts';
import { parseSegmentFileName, Segment, scanSegment } from './segment.ts';
import { TimeIndex } from './time-index.ts';
import type {
  AppendEvent,
  DurableListener,
  EventLog,
  EventMeta,
  EventOrigin,
  LogRecord,
  ReadOptions,
  WriteState,
} from './types.ts';

export interface FileEventLogOptions {
  /** Directory holding the segment files (created if missing). */
  dir: string;
  /** Records per segment file (default 10,000). */
  segmentEvents?: number;
  /** Roll to a new segment once a file reaches this size (default 256 MiB). */
  segmentBytes?: number;
  /** Group commit: flush at most this long after the first queued event (default 2 ms). */
  flushIntervalMs?: number;
  /** Group commit: flush at once when this many events are queued (default 400). */
  flushEvents?: number;
  /** Group commit: flush at once when this many bytes are queued (default 4 MiB). */
  flushBytes?: number;
  /** fdatasync each flush (default true; turn off only for tests and benchmarks). */
  fsync?: boolean;
  /** Keep events at least this long (default 72 h). */
  retentionMs?: number;
  /** Keep at most about this many bytes of segments (default: no size limit). */
  retentionBytes?: number;
  /** How often retention runs (default 60 s; 0 disables the timer). */
  gcIntervalMs?: number;
  registry?: Registry;
  logger?: Logger;
  /** Clock (tests). */
  now?: () => number;
  /**
   * Give up after writes have failed for this long (default 10 min): the log
   * then refuses appends and calls its fatal listeners (the relay exits
   * non-zero rather than limp). 0 = retry for ever.
   */
  maxWriteFailureMs?: number;
  /** First retry after a failed write, doubling to 5 s (default 100 ms). */
  writeRetryMs?: number;
  /** Time index checkpoint spacing (time-index.ts; defaults 1,000 records / 1 s). */
  timeIndexEveryEvents?: number;
  timeIndexEveryMs?: number;
  /**
   * Tests only: consulted before every file write, sync and segment creation;
   * an error it returns is thrown there (e.g. ENOSPC), as the file system would.
   */
  writeFault?: (op: 'write' | 'sync' | 'create') => Error | undefined;
}

interface Pending {
  seq: number;
  kind: number;
  uid: number;
  flags: number;
  time: number;
  frame: Uint8Array;
  origin?: EventOrigin;
  meta?: EventMeta;
  timeUs?: number;
}

/** Header bytes of every record written from now on. */
const WRITE_HEADER_BYTES = HEADER_BYTES[CURRENT_FORMAT];

interface Waiter {
  lastSeq: number;
  seqs: number[];
  resolve: (seqs: number[]) => void;
  reject: (err: Error) => void;
}

const TAKEDOWNS_FILE = 'takedowns.json';
const TIME_INDEX_FILE = 'time-index.bin';
const DEFAULT_READ_BYTES = 1024 * 1024;
const MAX_CACHED_INDEXES = 256;
const MAX_POSITION_HINTS = 4096;

export async function openEventLog(opts: FileEventLogOptions): Promise<FileEventLog> {
  const log = new FileEventLog(opts);
  await log.open();
  return log;
}

export class FileEventLog implements EventLog {
  private readonly dir: string;
  private readonly segmentEvents: number;
  private readonly segmentBytes: number;
  private readonly flushIntervalMs: number;
  private readonly flushEvents: number;
  private readonly flushBytes: number;
  private readonly fsync: boolean;
  private readonly retentionMs: number;
  private readonly retentionBytes: number;
  private readonly log: Logger;
  private readonly now: () => number;

  private segments: Segment[] = [];
  private active!: Segment;
  private activeFh?: FileHandle;
  private totalBytes = 0;
  private nextSeq = 1;
  private durableHead = 0;
  private pending: Pending[] = [];
  private pendingBytes = 0;
  private waiters: Waiter[] = [];
  private flushTimer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private scratch = Buffer.allocUnsafe(1024 * 1024);
  private listeners = new Set<DurableListener>();
  private failed?: Error;
  private closed = false;
  private writeState: WriteState = { failing: false };
  private readonly writeStateListeners = new Set<(state: WriteState) => void>();
  private readonly fatalListeners = new Set<(err: Error) => void>();
  private retryTimer?: NodeJS.Timeout;
  private retryDelayMs = 0;
  /** The active segment's file must be reopened (and cut back to its durable size) before writing. */
  private reopenActive = false;
  private gcTimer?: NodeJS.Timeout;
  private takedowns = new Map<number, number>();
  private takedownWrite: Promise<void> = Promise.resolve();
  /** seq of the next record to read → where it starts; lets sequential readers skip the index. */
  private hints = new Map<number, { seg: Segment; offset: number }>();
  private indexedLru: Segment[] = [];
  private times!: TimeIndex;
  private readonly metrics?: {
    appended: Counter;
    flushSeconds: Histogram;
    writeFailures: Counter<'code'>;
  };

  constructor(private readonly opts: FileEventLogOptions) {
    this.dir = opts.dir;
    this.segmentEvents = opts.segmentEvents ?? 10_000;
    this.segmentBytes = opts.segmentBytes ?? 256 * 1024 * 1024;
    this.flushIntervalMs = opts.flushIntervalMs ?? 2;
    this.flushEvents = opts.flushEvents ?? 400;
    this.flushBytes = opts.flushBytes ?? 4 * 1024 * 1024;
    this.fsync = opts.fsync ?? true;
    this.retentionMs = opts.retentionMs ?? 72 * 3600 * 1000;
    this.retentionBytes = opts.retentionBytes ?? Number.POSITIVE_INFINITY;
    this.log = (opts.logger ?? silentLogger).child({ module: 'eventlog' });
    this.now = opts.now ?? Date.now;
    const r = opts.registry;
    if (r) {
      const self = this;
      new Gauge({
        name: 'relay_eventlog_head_seq',
        help: 'Highest durable relay seq',
        registers: [r],
        collect() {
          this.set(self.durableHead);
        },
      });
      new Gauge({
        name: 'relay_eventlog_oldest_seq',
        help: 'Lowest relay seq still kept by retention',
        registers: [r],
        collect() {
          this.set(self.oldest());
        },
      });
      new Gauge({
        name: 'relay_eventlog_bytes',
        help: 'Bytes of event log segments on disk',
        registers: [r],
        collect() {
          this.set(self.totalBytes);
        },
      });
      new Gauge({
        name: 'relay_eventlog_segments',
        help: 'Number of event log segment files',
        registers: [r],
        collect() {
          this.set(self.segments.length);
        },
      });
      this.metrics = {
        appended: new Counter({
          name: 'relay_eventlog_appended_total',
          help: 'Events made durable in the event log',
          registers: [r],
        }),
        flushSeconds: new Histogram({
          name: 'relay_eventlog_flush_seconds',
          help: 'Time to write and sync one group commit',
          buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
          registers: [r],
        }),
        writeFailures: new Counter({
          name: 'relay_eventlog_write_failures_total',
          help: 'Failed event log writes (each is retried), by error code',
          labelNames: ['code'],
          registers: [r],
        }),
      };
      new Gauge({
        name: 'relay_eventlog_write_failing',
        help: '1 while event log writes are failing and being retried (ingest is paused), else 0',
        registers: [r],
        collect() {
          this.set(self.writeState.failing ? 1 : 0);
        },
      });
    }
  }

  /** Recovers state from the directory; called once by openEventLog. */
  async open(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const names = await readdir(this.dir);
    const found = names
      .map(parseSegmentFileName)
      .filter((n) => n !== undefined)
      .sort((a, b) => a.firstSeq - b.firstSeq);
    for (const { firstSeq, format } of found) {
      const seg = new Segment(this.dir, firstSeq, 0, format);
      const st = await stat(seg.path);
      seg.size = st.size;
      seg.lastTime = st.mtimeMs;
      this.segments.push(seg);
    }
    // Sealed segments: the count follows from the next segment's first seq.
    for (let i = 0; i + 1 < this.segments.length; i++) {
      this.segments[i].count = this.segments[i + 1].firstSeq - this.segments[i].firstSeq;
    }
    const last = this.segments.at(-1);
    if (last) {
      const fh = await open(last.path, 'r+');
      const fileSize = last.size;
      const scan = await scanSegment(fh, fileSize, last.firstSeq, last.format, true, (h, off) =>
        last.noteRecord(h.seq, off),
      );
      if (scan.validBytes < fileSize) {
        this.log.warn(
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
      this.active = last;
      this.activeFh = fh;
      this.nextSeq = last.firstSeq + scan.count;
      // An older-format segment is read, never appended to: writes go to a new one.
      if (last.format !== CURRENT_FORMAT) await this.createSegment(this.nextSeq);
    } else {
      await this.createSegment(1);
    }
    this.durableHead = this.nextSeq - 1;
    this.totalBytes = this.segments.reduce((n, s) => n + s.size, 0);
    await this.loadTakedowns();
    await this.openTimeIndex();
    const gcEvery = this.opts.gcIntervalMs ?? 60_000;
    if (gcEvery > 0) {
      this.gcTimer = setInterval(() => {
        this.gc().catch((err: unknown) => this.log.error({ err }, 'event log retention failed'));
      }, gcEvery);
      this.gcTimer.unref();
    }
    this.log.info(
      { dir: this.dir, head: this.durableHead, oldest: this.oldest(), segments: this.segments.length },
      'event log opened',
    );
  }

  head(): number {
    return this.durableHead;
  }

  /** seq ↔ time_us (time-index.ts). */
  get timeIndex(): TimeIndex {
    return this.times;
  }

  /**
   * Loads the time index and brings it up to the head: checkpoints past the
   * head (a torn tail was cut) or below the oldest record go, and the chain
   * is walked from the last checkpoint kept over the records after it,
   * re-adding lost checkpoints. With no usable checkpoint a fresh chain
   * starts at the active segment (older records stay unindexed).
   */
  private async openTimeIndex(): Promise<void> {
    const idx = await TimeIndex.load({
      path: join(this.dir, TIME_INDEX_FILE),
      everyEvents: this.opts.timeIndexEveryEvents,
      everyMs: this.opts.timeIndexEveryMs,
      fsync: this.fsync,
      onError: (err) => this.log.warn({ err }, 'time index write failed (rebuilt on the next open)'),
    });
    this.times = idx;
    if (idx.dropAfter(this.durableHead)) await idx.rewrite();
    const oldest = this.oldest();
    await idx.trimBefore(oldest);
    if (this.durableHead === 0) return;
    const cp = idx.lastCheckpoint();
    let after: number;
    if (cp) {
      idx.resumeAt(cp.seq, cp.timeUs);
      after = cp.seq;
    } else {
      after = Math.max(this.active.firstSeq, oldest) - 1;
    }
    const starts = new Set(this.segments.map((s) => s.firstSeq));
    while (after < this.durableHead) {
      const recs = await this.readFrom(after, { includeTakenDown: true, maxBytes: 4 * 1024 * 1024 });
      if (recs.length === 0) break;
      for (const r of recs) idx.assign(r.seq, r.time, starts.has(r.seq));
      after = recs[recs.length - 1].seq;
    }
    await idx.flush();
  }

  oldest(): number {
    for (const s of this.segments) if (s.count > 0) return s.firstSeq;
    return this.durableHead + 1;
  }

  sizeBytes(): number {
    return this.totalBytes;
  }

  onDurable(listener: DurableListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  append(events: readonly AppendEvent[]): Promise<number[]> {
    if (this.closed) return Promise.reject(new Error('event log is closed'));
    if (this.failed) return Promise.reject(this.failed);
    if (events.length === 0) return Promise.resolve([]);
    const time = this.now();
    const seqs: number[] = [];
    const batch: Pending[] = [];
    let bytes = 0;
    for (const ev of events) {
      const seq = this.nextSeq + batch.length;
      let frame: Uint8Array;
      try {
        frame = typeof ev.frame === 'function' ? ev.frame(seq) : ev.frame;
      } catch (err) {
        return Promise.reject(err);
      }
      if (frame.byteLength > MAX_RECORD_BYTES) {
        return Promise.reject(new Error(`event frame too large: ${frame.byteLength} bytes`));
      }
      batch.push({
        seq,
        kind: ev.kind,
        uid: ev.uid,
        flags: ev.flags ?? 0,
        time,
        frame,
        origin: ev.origin,
        meta: ev.meta,
      });
      seqs.push(seq);
      bytes += WRITE_HEADER_BYTES + frame.byteLength;
    }
    // Seqs are taken only once the whole batch is valid, so a refused batch leaves no hole.
    this.nextSeq += batch.length;
    for (const p of batch) this.pending.push(p);
    this.pendingBytes += bytes;
    const promise = new Promise<number[]>((resolve, reject) => {
      this.waiters.push({ lastSeq: seqs[seqs.length - 1], seqs, resolve, reject });
    });
    this.scheduleFlush();
    return promise;
  }

  private scheduleFlush(): void {
    if (this.flushing) return; // the running flush picks the queue up when it ends
    if (this.pending.length >= this.flushEvents || this.pendingBytes >= this.flushBytes) {
      this.startFlush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.startFlush(), this.flushIntervalMs);
    }
  }

  private startFlush(): void {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    if (this.flushing || this.retryTimer || this.failed || this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    this.flushing = this.flushBatch(batch)
      .then(
        () => this.writesRecovered(),
        (err: unknown) => this.writeFailed(err instanceof Error ? err : new Error(String(err)), batch),
      )
      .finally(() => {
        this.flushing = undefined;
        if (this.pending.length > 0 && !this.failed && !this.retryTimer) this.scheduleFlush();
      });
  }

  // Write failures (ENOSPC, EIO, EMFILE, ...). Nothing is lost and nothing is
  // skipped: the records not yet durable go back to the front of the queue in
  // seq order, the active file is reopened and cut back to its last durable
  // size (so a partial write or a failed fsync leaves no doubt: the records
  // are written again from memory), and the flush is retried with back-off
  // (100 ms doubling to 5 s). Appends keep queueing meanwhile; the relay
  // pauses ingest while `writeState().failing` so the queue stays small, and
  // reports it in health and metrics. Only after maxWriteFailureMs of
  // failures does the log give up: appends are refused and the fatal
  // listeners run (the relay exits non-zero).
  private writeFailed(err: Error, batch: Pending[]): void {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    this.metrics?.writeFailures.inc({ code });
    const left = batch.filter((p) => p.seq > this.durableHead);
    let bytes = 0;
    for (const p of left) bytes += WRITE_HEADER_BYTES + p.frame.byteLength;
    this.pending = left.concat(this.pending);
    this.pendingBytes += bytes;
    this.reopenActive = true;
    const now = this.now();
    if (!this.writeState.failing) {
      this.log.error(
        { err, code, queued: this.pending.length },
        'event log write failed; retrying (ingest paused until writes succeed)',
      );
      this.setWriteState({ failing: true, error: err, since: now });
      this.retryDelayMs = this.opts.writeRetryMs ?? 100;
    } else {
      this.writeState = { ...this.writeState, error: err };
      this.retryDelayMs = Math.min(5000, this.retryDelayMs * 2);
    }
    const limit = this.opts.maxWriteFailureMs ?? 600_000;
    if (limit > 0 && now - (this.writeState.since ?? now) >= limit) {
      this.fail(
        new Error(
          `event log writes failing for ${Math.round((now - (this.writeState.since ?? now)) / 1000)} s: ${err.message}`,
        ),
      );
      return;
    }
    if (this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.startFlush();
    }, this.retryDelayMs);
  }

  private writesRecovered(): void {
    if (!this.writeState.failing) return;
    const since = this.writeState.since ?? this.now();
    this.log.info({ downMs: this.now() - since }, 'event log writes recovered; ingest resumes');
    this.setWriteState({ failing: false });
  }

  private setWriteState(state: WriteState): void {
    this.writeState = state;
    for (const l of this.writeStateListeners) {
      try {
        l(state);
      } catch (err) {
        this.log.error({ err }, 'event log write-state listener failed');
      }
    }
  }

  /** The write health (see writeFailed). */
  getWriteState(): WriteState {
    return this.writeState;
  }

  /** Called on every change of the write state; returns an unsubscribe function. */
  onWriteState(listener: (state: WriteState) => void): () => void {
    this.writeStateListeners.add(listener);
    return () => this.writeStateListeners.delete(listener);
  }

  /** Called once if the log gives up (writes failed for maxWriteFailureMs). */
  onFatal(listener: (err: Error) => void): () => void {
    this.fatalListeners.add(listener);
    return () => this.fatalListeners.delete(listener);
  }

  private fault(op: 'write' | 'sync' | 'create'): void {
    const err = this.opts.writeFault?.(op);
    if (err) throw err;
  }

  /** After a failed write: a fresh handle on the active file, cut back to what is durable. */
  private async reopen(): Promise<void> {
    const old = this.activeFh;
    this.activeFh = undefined;
    await old?.close().catch(() => {});
    const fh = await open(this.active.path, 'r+');
    try {
      await fh.truncate(this.active.size);
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.activeFh = fh;
    this.reopenActive = false;
  }

  private async flushBatch(batch: Pending[]): Promise<void> {
    const started = performance.now();
    if (this.reopenActive) await this.reopen();
    let i = 0;
    while (i < batch.length) {
      if (this.active.count >= this.segmentEvents || this.active.size >= this.segmentBytes) {
        await this.createSegment(batch[i].seq);
      }
      const seg = this.active;
      const room = this.segmentEvents - seg.count;
      let end = i;
      let bytes = 0;
      while (end < batch.length && end - i < room && (end === i || seg.size + bytes < this.segmentBytes)) {
        bytes += WRITE_HEADER_BYTES + batch[end].frame.byteLength;
        end++;
      }
      if (this.scratch.length < bytes)
        this.scratch = Buffer.allocUnsafe(Math.max(bytes, this.scratch.length * 2));
      const buf = this.scratch;
      const hdr = { flags: 0, kind: 0, uid: 0, seq: 0, time: 0, originHost: 0, originSeq: 0 };
      let off = 0;
      for (let k = i; k < end; k++) {
        const p = batch[k];
        // one header object reused for the batch (a spread per record showed as garbage)
        hdr.flags = p.flags;
        hdr.kind = p.kind;
        hdr.uid = p.uid;
        hdr.seq = p.seq;
        hdr.time = p.time;
        hdr.originHost = p.origin?.hostId ?? 0;
        hdr.originSeq = p.origin?.seq ?? 0;
        writeHeader(buf, off, hdr, p.frame);
        buf.set(p.frame, off + WRITE_HEADER_BYTES);
        off += WRITE_HEADER_BYTES + p.frame.byteLength;
      }
      const fh = this.activeFh!;
      let written = 0;
      while (written < bytes) {
        this.fault('write');
        const { bytesWritten } = await fh.write(buf, written, bytes - written, seg.size + written);
        written += bytesWritten;
      }
      if (this.fsync) {
        this.fault('sync');
        await fh.datasync();
      }
      let pos = seg.size;
      for (let k = i; k < end; k++) {
        seg.noteRecord(batch[k].seq, pos);
        pos += WRITE_HEADER_BYTES + batch[k].frame.byteLength;
      }
      seg.size += bytes;
      const startsSegment = seg.count === 0;
      seg.count += end - i;
      seg.lastTime = batch[end - 1].time;
      this.totalBytes += bytes;
      // durable: publish this part now, so a failure later in the batch keeps it
      this.metrics?.appended.inc(end - i);
      this.publish(i === 0 && end === batch.length ? batch : batch.slice(i, end), startsSegment);
      i = end;
    }
    this.metrics?.flushSeconds.observe((performance.now() - started) / 1000);
  }

  /** Advances the durable head and notifies, in one synchronous step (see types.ts). */
  private publish(batch: Pending[], startsSegment: boolean): void {
    for (let k = 0; k < batch.length; k++) {
      const p = batch[k];
      p.timeUs = this.times.assign(p.seq, p.time, startsSegment && k === 0);
    }
    this.times.persist().catch(() => {}); // failures are logged by the index
    this.durableHead = batch[batch.length - 1].seq;
    const records: LogRecord[] = batch;
    for (const listener of this.listeners) {
      try {
        listener(records);
      } catch (err) {
        this.log.error({ err }, 'event log listener failed');
      }
    }
    let n = 0;
    while (n < this.waiters.length && this.waiters[n].lastSeq <= this.durableHead) {
      this.waiters[n].resolve(this.waiters[n].seqs);
      n++;
    }
    if (n > 0) this.waiters.splice(0, n);
  }

  private fail(err: Error): void {
    this.log.fatal({ err }, 'event log gave up; refusing further appends');
    this.failed = err;
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
    this.pending = [];
    this.pendingBytes = 0;
    for (const l of this.fatalListeners) {
      try {
        l(err);
      } catch (e) {
        this.log.error({ err: e }, 'event log fatal listener failed');
      }
    }
  }

  private async createSegment(firstSeq: number): Promise<void> {
    this.fault('create');
    // 'w+': a file of this name can only be left by an earlier attempt that
    // failed before the segment was in use (seqs are never reused)
    const seg = new Segment(this.dir, firstSeq, this.now());
    const fh = await open(seg.path, 'w+');
    try {
      if (this.fsync) await syncDir(this.dir);
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    await this.activeFh?.close().catch(() => {});
    seg.indexed = true;
    this.segments.push(seg);
    this.active = seg;
    this.activeFh = fh;
  }

  async readFrom(after: number, opts: ReadOptions = {}): Promise<LogRecord[]> {
    const maxBytes = opts.maxBytes ?? DEFAULT_READ_BYTES;
    const out: LogRecord[] = [];
    let from = Math.max(after + 1, this.oldest());
    let budget = maxBytes;
    // Each pass reads one chunk of one segment; loop while under budget.
    for (;;) {
      const limit = Math.min(opts.untilSeq ?? this.durableHead, this.durableHead);
      if (from > limit || budget <= 0) return out;
      const pos = await this.locate(from);
      if (!pos) {
        // The segment went away under us (retention): continue from what is kept.
        const oldest = this.oldest();
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
        if (s >= from && (opts.includeTakenDown || !this.isTakenDown(h.uid, s))) {
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

  /** Finds the segment and a byte offset at or before `seq`, or undefined if it is not kept. */
  private async locate(seq: number): Promise<{ seg: Segment; offset: number; seq: number } | undefined> {
    const hint = this.hints.get(seq);
    if (hint && !hint.seg.removed) return { seg: hint.seg, offset: hint.offset, seq };
    const segs = this.segments;
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
      if (old !== this.active) old.dropIndex();
    }
  }

  private remember(seq: number, seg: Segment, offset: number): void {
    // The end of a segment is the start of the next one.
    if (offset >= seg.size && seq > seg.lastSeq) return;
    this.hints.set(seq, { seg, offset });
    if (this.hints.size > MAX_POSITION_HINTS) {
      const first = this.hints.keys().next().value;
      if (first !== undefined) this.hints.delete(first);
    }
  }

  isTakenDown(uid: number, seq: number): boolean {
    const upTo = this.takedowns.get(uid);
    return upTo !== undefined && seq <= upTo;
  }

  async setTakedown(uid: number, on: boolean, upToSeq?: number): Promise<void> {
    if (on) this.takedowns.set(uid, upToSeq ?? this.nextSeq - 1);
    else if (!this.takedowns.delete(uid)) return;
    const snapshot = JSON.stringify(Object.fromEntries(this.takedowns));
    this.takedownWrite = this.takedownWrite.then(async () => {
      const tmp = join(this.dir, `${TAKEDOWNS_FILE}.tmp`);
      await writeFile(tmp, snapshot);
      const fh = await open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await rename(tmp, join(this.dir, TAKEDOWNS_FILE));
      if (this.fsync) await syncDir(this.dir);
    });
    await this.takedownWrite;
  }

  private async loadTakedowns(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(this.dir, TAKEDOWNS_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const obj = JSON.parse(text) as Record<string, number>;
    for (const [uid, seq] of Object.entries(obj)) this.takedowns.set(Number(uid), seq);
  }

  async gc(): Promise<number> {
    const cutoff = this.now() - this.retentionMs;
    let removed = 0;
    // Never remove the segment being written.
    while (this.segments.length > 1) {
      const seg = this.segments[0];
      const tooOld = seg.lastTime < cutoff;
      const tooBig = this.totalBytes > this.retentionBytes;
      if (!tooOld && !tooBig) break;
      this.segments.shift();
      seg.removed = true;
      this.totalBytes -= seg.size;
      seg.dropIndex();
      for (const [k, v] of this.hints) if (v.seg === seg) this.hints.delete(k);
      this.indexedLru = this.indexedLru.filter((s) => s !== seg);
      try {
        await unlink(seg.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      removed++;
    }
    if (removed > 0) {
      this.log.info({ removed, oldest: this.oldest() }, 'event log retention removed segments');
      await this.times.trimBefore(this.oldest());
    }
    return removed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.gcTimer) clearInterval(this.gcTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    while (this.flushing) await this.flushing;
    // one last attempt (a write failing now is not retried: nothing unwritten was acknowledged)
    this.retryTimer = undefined;
    if (this.pending.length > 0 && !this.failed) {
      this.startFlush();
      while (this.flushing) await this.flushing;
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
    }
    if (this.pending.length > 0) {
      const err = new Error('event log closed with events it could not write');
      for (const w of this.waiters) w.reject(err);
      this.waiters = [];
      this.pending = [];
      this.pendingBytes = 0;
    }
    await this.takedownWrite.catch(() => {});
    await this.times?.flush();
    await this.activeFh?.close();
    this.activeFh = undefined;
    this.listeners.clear();
  }
}

async function readChunk(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === length ? buf : buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
