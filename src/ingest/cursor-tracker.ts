// Which upstream seq a host's cursor may advance to when several frames are
// in flight at once. Frames are handed to the sink in seq order but may
// finish in any order (validation of one account can be slower than
// another's), and the saved cursor must never pass a frame that is not
// finished, or a crash would skip it. So the tracker keeps the submitted
// seqs in a FIFO ring in submission order, marks them finished as they
// complete, and pops finished ones off the front: the last seq popped is the
// highest one below which everything is finished. A frame the sink refused
// (rejected submit) is never marked finished, so the cursor stops before it
// and a reconnect re-reads it.
//
// Two bounds, because a slow frame must not stop its host. A frame whose
// repo waits on the network (a DID resolution, a resync: the validator parks
// that repo and goes on with the others) can take seconds, and the frames
// read after it finish meanwhile. Counting them against the in-flight limit
// until the slow one finished stalled the whole host behind one repo: on the
// end-to-end benchmark, each #identity event (a DID re-resolution, ~1 s)
// stopped its host, and the relay delivered 4,800 of 8,000 events/s with a
// core idle. So:
// - `maxUnfinished` bounds the frames handed on and not finished: what the
//   host holds in memory and in the validator (RELAY_HOST_MAX_IN_FLIGHT);
// - `capacity` bounds every tracked frame, finished or not, between the
//   cursor and the newest frame (RELAY_HOST_CURSOR_WINDOW): how far one slow
//   frame lets its host run ahead. A finished slot is three numbers, so this
//   bound can be large; the ring grows to it only while a frame holds the
//   cursor. It also bounds what a crash or a refused frame leaves to skip on
//   the re-read (host-subscriber.ts `relayed`).
//
// Each slot also keeps a caller-given mark taken at submit (the event log's
// head then): the front slot's mark is the lowest of all tracked frames, since
// marks only grow. Whatever a tracked frame appends lands above it — that is
// what the log checkpoint is made of (see log-recovery.ts).

/** The ring starts this small (most hosts never hold more) and doubles up to `capacity`. */
const INITIAL_SLOTS = 64;

export class CursorTracker {
  private seqs: Float64Array;
  private marks: Float64Array;
  private done: Uint8Array;
  private head = 0;
  private count = 0;
  private unfinishedCount = 0;
  private ticket = 0;
  /** Highest seq below which (and including which) every submitted frame is finished. */
  committed: number;

  constructor(
    private readonly maxUnfinished: number,
    readonly capacity: number,
    start: number,
  ) {
    const slots = Math.min(capacity, Math.max(INITIAL_SLOTS, maxUnfinished));
    this.seqs = new Float64Array(slots);
    this.marks = new Float64Array(slots);
    this.done = new Uint8Array(slots);
    this.committed = start;
  }

  /** Frames tracked: handed on and not yet passed by the cursor, finished or not. */
  get tracked(): number {
    return this.count;
  }

  /** Frames handed on and not finished. */
  get unfinished(): number {
    return this.unfinishedCount;
  }

  /** No frame may be submitted: too many unfinished, or the window behind the oldest unfinished one is full. */
  get full(): boolean {
    return this.unfinishedCount >= this.maxUnfinished || this.count >= this.capacity;
  }

  /** The mark of the oldest tracked frame (the lowest), or undefined when none is tracked. */
  get lowMark(): number | undefined {
    return this.count > 0 ? this.marks[this.head] : undefined;
  }

  /** Seqs of frames finished but not yet committed (a frame before them is unfinished). */
  finishedAhead(): number[] {
    const out: number[] = [];
    const size = this.seqs.length;
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % size;
      if (this.done[slot] === 1) out.push(this.seqs[slot]);
    }
    return out;
  }

  /**
   * Records a submitted frame; returns a slot ticket for finish(). The caller
   * keeps seqs and marks increasing.
   */
  submit(seq: number, mark = 0): number {
    if (this.full) throw new Error('cursor tracker is full');
    if (this.count === this.seqs.length) this.grow();
    const slot = (this.head + this.count) % this.seqs.length;
    this.seqs[slot] = seq;
    this.marks[slot] = mark;
    this.done[slot] = 0;
    this.count++;
    this.unfinishedCount++;
    return this.ticket++;
  }

  /**
   * Marks the frame with this ticket finished. Returns the new committed seq
   * when it advanced, or undefined.
   */
  finish(ticket: number): number | undefined {
    const firstTicket = this.ticket - this.count;
    const offset = ticket - firstTicket;
    if (offset < 0 || offset >= this.count) return undefined;
    const size = this.seqs.length;
    const at = (this.head + offset) % size;
    if (this.done[at] === 1) return undefined;
    this.done[at] = 1;
    this.unfinishedCount--;
    let advanced: number | undefined;
    while (this.count > 0 && this.done[this.head] === 1) {
      advanced = this.seqs[this.head];
      this.head = (this.head + 1) % size;
      this.count--;
    }
    if (advanced !== undefined) this.committed = advanced;
    return advanced;
  }

  /** Doubles the ring (up to capacity), unrolling it so the front is slot 0. */
  private grow(): void {
    const size = this.seqs.length;
    const next = Math.min(this.capacity, size * 2);
    const unroll = <T extends Float64Array | Uint8Array>(from: T, to: T): T => {
      to.set(from.subarray(this.head));
      to.set(from.subarray(0, this.head), size - this.head);
      return to;
    };
    this.seqs = unroll(this.seqs, new Float64Array(next));
    this.marks = unroll(this.marks, new Float64Array(next));
    this.done = unroll(this.done, new Uint8Array(next));
    this.head = 0;
  }
}
