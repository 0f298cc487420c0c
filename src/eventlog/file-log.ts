// The embedded event log: append-only segment files under a directory, with
// group commit. `append` assigns seqs at once (in call order) and queues the
// records; a flush writes every queued record of a segment with one positional
// write from a reused buffer, durable when it returns (the segment is open
// O_DSYNC; where a platform lacks it, the write is followed by fdatasync:
// file-io.ts), then advances the durable head and notifies listeners, in that
// order: nothing is broadcast before it is on disk, and seqs that never
// reached the disk were never seen by anyone, so
// recovery can simply continue after the last intact record.
//
// This file is the log itself and its write path: seqs, group commit, write
// failures and retries, segment rolls. The other mechanisms are beside it:
//
// - recovery at open (file-recovery.ts): segments are named by their first
//   seq; only the newest can have a torn tail (a segment is synced before the
//   next one is created), so it is scanned with CRC checks and truncated at
//   the first bad record. Older segments are trusted and indexed lazily when
//   a reader first needs them.
// - reads (file-reader.ts): records after a seq, via the segments' sparse
//   indexes and position hints for sequential readers.
// - retention (file-retention.ts) removes whole segments from the front (age
//   from the newest record time / file mtime, then total size).
// - takedowns (file-takedowns.ts) are a uid → seq map persisted beside the
//   segments: events of that uid up to that seq are skipped by reads, events
//   appended after the takedown (e.g. the #account event) are not.
// - metrics (file-metrics.ts); the segment file and its index (segment.ts);
//   the record format (record.ts).
//
// Each record also gets a microsecond time, unique and increasing with the
// seq, assigned as it becomes durable; the time index (time-index.ts) keeps
// checkpoints of it beside the segments so a time cursor finds its seq.
import { mkdirSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Registry } from 'prom-client';
import { type Logger, silentLogger } from '../log.ts';
import { openAppendHandle, syncDir, writeAt } from './file-io.ts';
import { type FileLogMetrics, registerFileLogMetrics } from './file-metrics.ts';
import { SegmentReader } from './file-reader.ts';
import { recoverSegments, recoverTimeIndex } from './file-recovery.ts';
import { removeExpiredSegments } from './file-retention.ts';
import { FileTakedowns } from './file-takedowns.ts';
import { CURRENT_FORMAT, HEADER_BYTES, MAX_RECORD_BYTES, writeHeader } from './record.ts';
import { Segment } from './segment.ts';
import type { TimeIndex } from './time-index.ts';
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
  /** The active handle was opened O_DSYNC: a write is durable when it returns (file-io.ts). */
  private activeDsync = false;
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
  private readonly takedowns: FileTakedowns;
  private readonly reader: SegmentReader;
  private times!: TimeIndex;
  private readonly metrics?: FileLogMetrics;

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
    this.takedowns = new FileTakedowns(this.dir, this.fsync);
    this.reader = new SegmentReader({
      segments: () => this.segments,
      active: () => this.active,
      head: () => this.durableHead,
      oldest: () => this.oldest(),
      takedowns: this.takedowns,
    });
    if (opts.registry) {
      this.metrics = registerFileLogMetrics(opts.registry, {
        head: () => this.durableHead,
        oldest: () => this.oldest(),
        bytes: () => this.totalBytes,
        segments: () => this.segments.length,
        writeFailing: () => this.writeState.failing,
      });
    }
  }

  /** Recovers state from the directory; called once by openEventLog. */
  async open(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const { segments, tail } = await recoverSegments(this.dir, this.log, this.fsync);
    this.segments = segments;
    if (tail) {
      this.active = tail.seg;
      this.activeFh = tail.fh;
      this.activeDsync = tail.dsync;
      this.nextSeq = tail.seg.firstSeq + tail.seg.count;
      // An older-format segment is read, never appended to: writes go to a new one.
      if (tail.seg.format !== CURRENT_FORMAT) await this.createSegment(this.nextSeq);
    } else {
      await this.createSegment(1);
    }
    this.durableHead = this.nextSeq - 1;
    this.totalBytes = this.segments.reduce((n, s) => n + s.size, 0);
    await this.takedowns.load();
    this.times = await recoverTimeIndex({
      dir: this.dir,
      everyEvents: this.opts.timeIndexEveryEvents,
      everyMs: this.opts.timeIndexEveryMs,
      fsync: this.fsync,
      log: this.log,
      head: this.durableHead,
      oldest: this.oldest(),
      activeFirstSeq: this.active.firstSeq,
      segmentStarts: new Set(this.segments.map((seg) => seg.firstSeq)),
      readFrom: (after, opts) => this.readFrom(after, opts),
    });
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
    const { fh, dsync } = await openAppendHandle(this.active.path, 'r+', this.fsync);
    try {
      await fh.truncate(this.active.size);
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    this.activeFh = fh;
    this.activeDsync = dsync;
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
        written += await writeAt(fh.fd, buf, written, bytes - written, seg.size + written);
      }
      if (this.fsync) {
        // O_DSYNC (the usual case): the writes above were durable when they returned
        this.fault('sync');
        if (!this.activeDsync) await fh.datasync();
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
    const { fh, dsync } = await openAppendHandle(seg.path, 'w+', this.fsync);
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
    this.activeDsync = dsync;
  }

  readFrom(after: number, opts: ReadOptions = {}): Promise<LogRecord[]> {
    return this.reader.readFrom(after, opts);
  }

  isTakenDown(uid: number, seq: number): boolean {
    return this.takedowns.isTakenDown(uid, seq);
  }

  setTakedown(uid: number, on: boolean, upToSeq?: number): Promise<void> {
    return this.takedowns.set(uid, on, upToSeq ?? this.nextSeq - 1);
  }

  /** Retention (file-retention.ts): removes expired segments; resolves to how many. */
  async gc(): Promise<number> {
    const removed = await removeExpiredSegments({
      segments: this.segments,
      cutoff: this.now() - this.retentionMs,
      retentionBytes: this.retentionBytes,
      totalBytes: () => this.totalBytes,
      dropped: (seg) => {
        this.totalBytes -= seg.size;
        this.reader.forget(seg);
      },
    });
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
    await this.takedowns.settled();
    await this.times?.flush();
    await this.activeFh?.close();
    this.activeFh = undefined;
    this.listeners.clear();
  }
}
