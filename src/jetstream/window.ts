// The Jetstream endpoint's shared live outbox: recent durable events, each
// encoded once into its JSON messages (encode.ts), in order. A live
// subscriber is only a position (absolute event index) into it and selects
// from each event the messages its filter wants, writing slices of the
// shared buffers; so N subscribers cost one encode per event. Events every
// live subscriber has passed are dropped from the front; the server drops a
// subscriber that falls further behind than its outbox limits (like the CBOR
// firehose's live-window.ts), which keeps the window bounded.
import type { EncodedEvent } from './encode.ts';

export class JsonWindow {
  private events: EncodedEvent[] = [];
  /** Absolute index of events[0]. */
  private base = 0;
  /** cumBytes[i]: framed bytes of all events before events[i] (absolute, from the window's birth). */
  private cumBytes: number[] = [];
  private totalBytes = 0;

  /** Absolute index one past the newest event. */
  get end(): number {
    return this.base + this.events.length;
  }

  /** Oldest absolute index still held. */
  get start(): number {
    return this.base;
  }

  push(events: readonly EncodedEvent[]): void {
    for (const e of events) {
      this.events.push(e);
      this.cumBytes.push(this.totalBytes);
      this.totalBytes += e.buf.length;
    }
  }

  /** Counts events nobody waits for without holding them (the window must be empty). */
  skip(count: number): void {
    this.events = [];
    this.cumBytes = [];
    this.base += count;
  }

  at(pos: number): EncodedEvent | undefined {
    return this.events[pos - this.base];
  }

  /** Framed bytes of the events from `pos` to the end (an upper bound of a subscriber's queue). */
  bytesFrom(pos: number): number {
    const i = pos - this.base;
    if (i >= this.events.length) return 0;
    return this.totalBytes - this.cumBytes[Math.max(0, i)];
  }

  /** Forgets the events before `pos`. */
  trimBefore(pos: number): void {
    const n = Math.min(pos - this.base, this.events.length);
    if (n <= 0) return;
    if (n === this.events.length) {
      this.events = [];
      this.cumBytes = [];
    } else {
      this.events.splice(0, n);
      this.cumBytes.splice(0, n);
    }
    this.base += n;
  }
}
