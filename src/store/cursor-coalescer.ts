// Coalesces host cursor updates (like zlay's CursorMap). Every upstream event
// advances its host's cursor; writing each one would be thousands of tiny
// writes per second. Instead update() records the highest seq per host in a
// Map (O(1), no I/O), and a timer hands only the changed hosts to the sink in
// one batch every interval, plus on flush() and close(). The sink writes
// "only if greater", so storage never moves backwards; in memory a lower seq
// is ignored too. A failed flush puts its entries back for the next attempt.
//
// A checkpoint source (optional) is read in the same synchronous step that
// takes the batch, and written with it: so the stored checkpoint always
// describes exactly the stored cursors (see MetadataStore.getLogCheckpoint).
// A changed checkpoint is written even when no cursor moved.
//
// A write barrier (optional) runs after the batch is taken and before it is
// written: the validator's "every head of a frame these cursors pass is in
// the store" (validate/head-writer.ts, barrier). Until it resolves the batch
// waits, visible to peek(), and `waitingForBarrier` says so.
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { CursorUpdate } from './metadata-store.ts';

export type CursorSink = (updates: readonly CursorUpdate[], checkpoint?: number) => Promise<number>;

export interface CursorCoalescerOptions {
  sink: CursorSink;
  /** 0 disables the timer (flush only on demand). */
  intervalMs: number;
  log?: Logger;
}

export class CursorCoalescer {
  private pending = new Map<number, number>();
  /** The batch being written right now, still visible to peek(). */
  private writing = new Map<number, number>();
  private inFlight: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly sink: CursorSink;
  private readonly log: Logger;
  private closed = false;
  private checkpointSource?: () => number;
  private barrier?: () => Promise<void>;
  /** A batch is taken and waits for the write barrier. */
  waitingForBarrier = false;
  private writtenCheckpoint?: number;
  flushes = 0;
  rowsWritten = 0;

  constructor(opts: CursorCoalescerOptions) {
    this.sink = opts.sink;
    this.log = opts.log ?? silentLogger;
    if (opts.intervalMs > 0) {
      this.timer = setInterval(() => {
        this.flush().catch(() => {}); // already logged; entries are retried next tick
      }, opts.intervalMs);
      this.timer.unref();
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  update(hostId: number, seq: number): void {
    if (this.closed) throw new Error('cursor coalescer is closed');
    const current = this.pending.get(hostId);
    if (current === undefined || seq > current) this.pending.set(hostId, seq);
  }

  /** The newest seq seen for a host that may not be in storage yet. */
  peek(hostId: number): number | undefined {
    const a = this.pending.get(hostId);
    const b = this.writing.get(hostId);
    if (a === undefined) return b;
    if (b === undefined) return a;
    return Math.max(a, b);
  }

  /** Sets the function whose value is written with every batch (see the file comment). */
  setCheckpointSource(source: () => number): void {
    this.checkpointSource = source;
  }

  /** Sets what every batch waits for between being taken and being written (see the file comment). */
  setBarrier(barrier: () => Promise<void>): void {
    this.barrier = barrier;
  }

  /** Drops any unwritten value for a host (before an explicit cursor reset). */
  forget(hostId: number): void {
    this.pending.delete(hostId);
  }

  /** Writes everything pending; waits for a flush already running first. */
  async flush(): Promise<void> {
    while (this.inFlight) await this.inFlight.catch(() => {});
    // The batch and the checkpoint are taken together, in this one synchronous step.
    const checkpoint = this.checkpointSource?.();
    const checkpointChanged = checkpoint !== undefined && checkpoint !== this.writtenCheckpoint;
    if (this.pending.size === 0 && !checkpointChanged) return;
    const batch = this.pending;
    this.pending = new Map();
    this.writing = batch;
    const updates = [...batch].map(([hostId, seq]) => ({ hostId, seq }));
    const run = (async () => {
      try {
        if (this.barrier) {
          this.waitingForBarrier = true;
          try {
            await this.barrier();
          } finally {
            this.waitingForBarrier = false;
          }
        }
        this.rowsWritten += await this.sink(updates, checkpoint);
        if (checkpoint !== undefined) this.writtenCheckpoint = checkpoint;
        this.flushes++;
      } catch (err) {
        for (const [hostId, seq] of batch) {
          const newer = this.pending.get(hostId);
          if (newer === undefined || seq > newer) this.pending.set(hostId, seq);
        }
        this.log.error({ err, hosts: updates.length }, 'cursor flush failed; will retry');
        throw err;
      } finally {
        this.writing = new Map();
        this.inFlight = undefined;
      }
    })();
    this.inFlight = run;
    await run;
  }

  /** Stops the timer and writes what is left. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    await this.flush();
  }
}
