// The shared live outbox: the recent durable events, each WebSocket-framed
// once, in one buffer per group commit. Consumers do not get their own copy of
// each event; a live consumer is only a position (an absolute event index)
// into this window. Its outbox is the range from its position to the end, so
// broadcasting a batch costs O(consumers), not O(consumers × events), and
// sending is a zero-copy write of a slice of a buffer shared by everyone.
//
// Batches that every live consumer has passed are dropped from the front.
// A consumer that falls further behind than its outbox limits is dropped by
// the server (ConsumerTooSlow), which is what keeps this window bounded.
import type { LogRecord } from '../eventlog/types.ts';
import { frameMessages } from './ws-frame.ts';

interface Batch {
  /** Absolute index of the first event. */
  first: number;
  /** Bytes of all earlier batches (absolute byte position of buf[0]). */
  bytesBefore: number;
  seqs: number[];
  buf: Buffer;
  offsets: number[];
}

export class LiveWindow {
  private batches: Batch[] = [];
  /** Absolute index one past the newest event. */
  end = 0;
  /** Absolute framed bytes one past the newest event. */
  endBytes = 0;

  push(records: readonly LogRecord[]): void {
    if (records.length === 0) return;
    const { buf, offsets } = frameMessages(records.map((r) => r.frame));
    this.batches.push({
      first: this.end,
      bytesBefore: this.endBytes,
      seqs: records.map((r) => r.seq),
      buf,
      offsets,
    });
    this.end += records.length;
    this.endBytes += buf.length;
  }

  /** Counts events nobody is waiting for without framing them (the window must be empty). */
  skip(count: number): void {
    this.batches = [];
    this.end += count;
  }

  /** Index in `batches` of the batch holding event `pos`, or -1. */
  private findIndex(pos: number): number {
    const b = this.batches;
    let lo = 0;
    let hi = b.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const batch = b[mid];
      if (pos < batch.first) hi = mid - 1;
      else if (pos >= batch.first + batch.seqs.length) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  private find(pos: number): Batch | undefined {
    const i = this.findIndex(pos);
    return i < 0 ? undefined : this.batches[i];
  }

  /** Oldest absolute index still held. */
  get start(): number {
    return this.batches.length > 0 ? this.batches[0].first : this.end;
  }

  /** Framed bytes from `pos` to the end (the consumer's queued bytes). */
  bytesFrom(pos: number): number {
    if (pos >= this.end) return 0;
    const batch = this.find(pos);
    if (!batch) return this.endBytes;
    return this.endBytes - (batch.bytesBefore + batch.offsets[pos - batch.first]);
  }

  seqAt(pos: number): number | undefined {
    const batch = this.find(pos);
    return batch ? batch.seqs[pos - batch.first] : undefined;
  }

  /** Seq of the newest event, or undefined if the window is empty. */
  lastSeq(): number | undefined {
    const b = this.batches.at(-1);
    return b ? b.seqs[b.seqs.length - 1] : undefined;
  }

  /**
   * Buffer slices covering events [pos, end) at most about `maxBytes` long
   * (whole events, at least one), and the position after them.
   */
  slices(pos: number, maxBytes: number): { chunks: Buffer[]; next: number; events: number; lastSeq: number } {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let next = pos;
    let lastSeq = -1;
    let i = this.findIndex(pos);
    let batch = i < 0 ? undefined : this.batches[i];
    while (batch && bytes < maxBytes) {
      const from = next - batch.first;
      let to = batch.seqs.length;
      const startOff = batch.offsets[from];
      if (batch.offsets[to] - startOff > maxBytes - bytes) {
        // Take whole events up to the budget (at least one per call).
        to = chunks.length === 0 ? from + 1 : from;
        while (to < batch.seqs.length && batch.offsets[to + 1] - startOff <= maxBytes - bytes) to++;
        if (to === from) break;
      }
      chunks.push(batch.buf.subarray(startOff, batch.offsets[to]));
      bytes += batch.offsets[to] - startOff;
      next = batch.first + to;
      lastSeq = batch.seqs[to - 1];
      if (to < batch.seqs.length) break;
      batch = this.batches[++i];
    }
    return { chunks, next, events: next - pos, lastSeq };
  }

  /** Forgets every batch that lies wholly before `pos`. */
  trimBefore(pos: number): void {
    let n = 0;
    while (n < this.batches.length && this.batches[n].first + this.batches[n].seqs.length <= pos) n++;
    if (n > 0) this.batches.splice(0, n);
  }
}
