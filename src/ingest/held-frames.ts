// The frames one host subscriber holds, and their bytes: the queue of frames
// read but not yet handed on (waiting for a rate-limit token or in-flight
// room), plus the bytes of frames handed on and not yet finished, all charged
// to the shared frame budget (frame-budget.ts) from the moment `ws` delivers
// a frame until it finishes or is discarded.
//
// Bound: the queue holds at most `maxQueued` frames. The subscriber pauses
// its socket as soon as anything is queued, so only frames `ws` parsed from
// the socket read already under way can pile up (real frames: ~130 per 64 KB
// read); push() refuses past the bound and the subscriber closes the
// connection, leaving those frames to be re-read from the cursor.
import type { BudgetAccount, BudgetClient, FrameBudget } from './frame-budget.ts';
import type { ControlBody } from './frame-check.ts';
import type { InboundFrame } from './frame-sink.ts';

/** A frame read but not yet handed on: an event for the sink, or an #info to log. */
export interface HeldFrame {
  event?: InboundFrame;
  info?: ControlBody;
  /** Bytes charged to the frame budget while it is held. */
  bytes: number;
}

export class HeldFrames {
  private queue: HeldFrame[] = [];
  private readonly account: BudgetAccount;

  constructor(
    budget: FrameBudget,
    client: BudgetClient,
    readonly maxQueued: number,
  ) {
    this.account = budget.open(client);
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Bytes of every frame held, queued or handed on. */
  get heldBytes(): number {
    return this.account.heldBytes;
  }

  get peakBytes(): number {
    return this.account.peakBytes;
  }

  /** May the subscriber read on (budget not full, below its share)? */
  mayRead(): boolean {
    return this.account.mayRead();
  }

  /** Queues a frame and charges its bytes; false (nothing charged) when the queue is at its bound. */
  push(frame: HeldFrame): boolean {
    if (this.queue.length >= this.maxQueued) return false;
    this.queue.push(frame);
    this.account.take(frame.bytes);
    return true;
  }

  /** The next queued frame, left in the queue. */
  peek(): HeldFrame | undefined {
    return this.queue[0];
  }

  /** The next queued frame; its bytes stay charged until finished() is called for it. */
  shift(): HeldFrame | undefined {
    return this.queue.shift();
  }

  /** A frame taken off the queue finished (or was discarded): its bytes are given back. */
  finished(bytes: number): void {
    this.account.give(bytes);
  }

  /** Discards every queued frame (the connection closed: the cursor is before them). */
  clear(): void {
    for (const f of this.queue) this.account.give(f.bytes);
    this.queue = [];
  }

  /** The subscriber is gone: no more budget notifications (bytes in flight are still given back). */
  close(): void {
    this.clear();
    this.account.close();
  }
}
