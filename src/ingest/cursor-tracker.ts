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
// Each slot also keeps a caller-given mark taken at submit (the event log's
// head then): the front slot's mark is the lowest of all tracked frames, since
// marks only grow. Whatever a tracked frame appends lands above it — that is
// what the log checkpoint is made of (see log-recovery.ts).

export class CursorTracker {
  private seqs: number[];
  private marks: number[];
  private done: Uint8Array;
  private head = 0;
  private count = 0;
  private ticket = 0;
  /** Highest seq below which (and including which) every submitted frame is finished. */
  committed: number;

  constructor(capacity: number, start: number) {
    this.seqs = new Array<number>(capacity).fill(0);
    this.marks = new Array<number>(capacity).fill(0);
    this.done = new Uint8Array(capacity);
    this.committed = start;
  }

  get inFlight(): number {
    return this.count;
  }

  get capacity(): number {
    return this.seqs.length;
  }

  get full(): boolean {
    return this.count >= this.seqs.length;
  }

  /** The mark of the oldest tracked frame (the lowest), or undefined when none is tracked. */
  get lowMark(): number | undefined {
    return this.count > 0 ? this.marks[this.head] : undefined;
  }

  /** Seqs of frames finished but not yet committed (a frame before them is unfinished). */
  finishedAhead(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.count; i++) {
      const slot = (this.head + i) % this.seqs.length;
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
    const slot = (this.head + this.count) % this.seqs.length;
    this.seqs[slot] = seq;
    this.marks[slot] = mark;
    this.done[slot] = 0;
    this.count++;
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
    this.done[(this.head + offset) % this.seqs.length] = 1;
    let advanced: number | undefined;
    while (this.count > 0 && this.done[this.head] === 1) {
      advanced = this.seqs[this.head];
      this.head = (this.head + 1) % this.seqs.length;
      this.count--;
    }
    if (advanced !== undefined) this.committed = advanced;
    return advanced;
  }
}
