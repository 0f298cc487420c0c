// One byte budget for the upstream frames all host subscribers hold at once
// (queued behind the rate limit, or handed to validation and not finished).
// Each subscriber already bounds its own frames in flight, but thousands of
// hosts × 5 MB frames is still unbounded; this caps the sum
// (RELAY_INGEST_FRAME_BUDGET_MB, default 256 MiB) without dropping anything:
// a subscriber that may not read pauses its socket, TCP pushes back on the
// PDS, and it resumes when frames finish.
//
// Rules (checked by each subscriber before it reads on, see mayRead):
// - Full: when the bytes held reach the limit, the budget is "full" and
//   every registered subscriber is told to re-check, so all sockets pause at
//   once (one pass over the subscribers per fill, not per frame). It opens
//   again when the bytes held drop to three quarters of the limit, and every
//   subscriber re-checks and resumes. The hysteresis keeps the number of
//   such passes to one per quarter of the budget finished. Overshoot: frames
//   are counted when `ws` delivers them, so the bytes held can pass the limit
//   by the frames completed from the socket read that filled it (at most one
//   5 MB frame plus one socket chunk). With sockets on worker threads
//   (socket-threads.ts) a pause takes effect through credit, so each
//   connection reading when the budget filled may add one credit window
//   (256 KiB) plus the frame that crosses it.
// - Fair share: a subscriber may hold at most limit / max(2, holders) bytes,
//   holders being the subscribers holding any frame: one host never takes
//   more than half the budget, and under contention each gets an equal share
//   (it re-checks on its own frames finishing, so it resumes once below).
//
// Holds: the relay can pause all reading for a reason of its own (the event
// log's writes are failing, see relay.ts): while any hold is on, nobody
// reads, exactly as when the budget is full.
//
// What it does not count: a frame `ws` is still assembling (at most 5 MB per
// connection, freed when the liveness sweep drops a connection that stalls
// mid-frame), and socket buffers. The `relay_ingest_frame_bytes_in_flight`
// gauge shows the bytes held; `relay_ingest_frame_budget_fills_total` counts
// the times the budget filled up.
import type { Counter, Gauge } from 'prom-client';

/** A subscriber as the budget sees it: told to re-check whether it may read. */
export interface BudgetClient {
  budgetChanged(): void;
}

export interface FrameBudgetMetrics {
  bytesInFlight: Pick<Gauge, 'set'>;
  fills: Pick<Counter, 'inc'>;
}

export class FrameBudget {
  readonly limitBytes: number;
  /** The budget opens again when the bytes held fall to this. */
  readonly reopenBytes: number;
  usedBytes = 0;
  /** The most bytes held at once so far. */
  peakBytes = 0;
  /** Times the budget filled up (every reading subscriber paused). */
  fills = 0;
  private full = false;
  private readonly holds = new Set<string>();
  /** Subscribers holding at least one byte. */
  private holders = 0;
  private readonly clients = new Set<BudgetClient>();

  constructor(
    limitBytes: number,
    private readonly metrics?: FrameBudgetMetrics,
  ) {
    if (!(limitBytes > 0)) throw new RangeError(`frame budget must be positive, got ${limitBytes}`);
    this.limitBytes = limitBytes;
    this.reopenBytes = Math.floor((limitBytes * 3) / 4);
  }

  /** True while the budget is used up or held (nobody reads until it reopens). */
  get isFull(): boolean {
    return this.full || this.holds.size > 0;
  }

  /** Reasons reading is held for (see hold()). */
  get heldFor(): string[] {
    return [...this.holds];
  }

  /** Stops all reading until release(reason); several reasons may hold at once. */
  hold(reason: string): void {
    if (this.holds.has(reason)) return;
    this.holds.add(reason);
    if (this.holds.size === 1) this.notify();
  }

  release(reason: string): void {
    if (!this.holds.delete(reason)) return;
    if (this.holds.size === 0) this.notify();
  }

  /** The most bytes one subscriber may hold now: half the budget, or an equal share among holders. */
  get shareBytes(): number {
    return this.limitBytes / Math.max(2, this.holders);
  }

  /** Opens an account for a subscriber; it is told to re-check when the budget fills or reopens. */
  open(client: BudgetClient): BudgetAccount {
    this.clients.add(client);
    return new BudgetAccount(this, client);
  }

  /** @internal */
  forget(client: BudgetClient): void {
    this.clients.delete(client);
  }

  /** @internal */
  add(bytes: number, firstHold: boolean): void {
    if (firstHold) this.holders++;
    this.usedBytes += bytes;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
    this.metrics?.bytesInFlight.set(this.usedBytes);
    if (!this.full && this.usedBytes >= this.limitBytes) {
      this.full = true;
      this.fills++;
      this.metrics?.fills.inc();
      this.notify();
    }
  }

  /** @internal */
  remove(bytes: number, lastHold: boolean): void {
    if (lastHold) this.holders--;
    this.usedBytes -= bytes;
    this.metrics?.bytesInFlight.set(this.usedBytes);
    if (this.full && this.usedBytes <= this.reopenBytes) {
      this.full = false;
      this.notify();
    }
  }

  private notify(): void {
    for (const c of [...this.clients]) c.budgetChanged();
  }
}

/** One subscriber's share of the budget: the bytes of the frames it holds. */
export class BudgetAccount {
  heldBytes = 0;
  /** The most this account held at once. */
  peakBytes = 0;

  constructor(
    private readonly budget: FrameBudget,
    private readonly client: BudgetClient,
  ) {}

  /** May the subscriber read another frame (budget not full, below its share)? */
  mayRead(): boolean {
    return !this.budget.isFull && this.heldBytes < this.budget.shareBytes;
  }

  /** A frame of `bytes` is now held (queued or in flight). */
  take(bytes: number): void {
    if (bytes <= 0) return;
    const first = this.heldBytes === 0;
    this.heldBytes += bytes;
    if (this.heldBytes > this.peakBytes) this.peakBytes = this.heldBytes;
    this.budget.add(bytes, first);
  }

  /** A held frame of `bytes` finished or was discarded. */
  give(bytes: number): void {
    const n = Math.min(bytes, this.heldBytes);
    if (n <= 0) return;
    this.heldBytes -= n;
    this.budget.remove(n, this.heldBytes === 0);
  }

  /** Stops the notifications (the subscriber is gone); frames still held are given back as they finish. */
  close(): void {
    this.budget.forget(this.client);
  }
}
