// The upstream seqs of one host that are above its cursor and already
// relayed (their events are in the log): learnt from the log's tail after a
// crash (log-recovery.ts), or kept from a connection whose cursor stopped
// before a refused frame (host-subscriber.ts). The subscriber skips each one
// when the host sends it again, and forgets every seq the cursor passes.
//
// Why not just a Set: forgetting what the cursor passed walked the whole set
// on every cursor advance, and the re-read advances the cursor once per
// skipped frame, so n relayed seqs cost n² steps (a host's cursor window
// allows 8,192 by default: ~33 million, a stall of the event loop). Here the
// seqs are also kept sorted, and a read position moves past those the cursor
// passed: every seq is forgotten once, and an advance that passes none costs
// one comparison.
export class RelayedSeqs {
  private readonly members = new Set<number>();
  /** The members in ascending order from `next` on (seqs before `next` are forgotten; some after it may be, too). */
  private sorted: number[] = [];
  private next = 0;

  get size(): number {
    return this.members.size;
  }

  has(seq: number): boolean {
    return this.members.has(seq);
  }

  /** Adds the seqs above `cursor`. */
  add(seqs: Iterable<number>, cursor: number): void {
    let added = false;
    for (const seq of seqs) {
      if (seq > cursor && !this.members.has(seq)) {
        this.members.add(seq);
        added = true;
      }
    }
    if (!added) return;
    this.sorted = [...this.members].sort((a, b) => a - b);
    this.next = 0;
  }

  /** Forgets one seq (received again and skipped). */
  delete(seq: number): void {
    this.members.delete(seq);
  }

  /** Forgets every seq up to and including `cursor`. */
  dropThrough(cursor: number): void {
    const sorted = this.sorted;
    while (this.next < sorted.length && sorted[this.next] <= cursor) this.members.delete(sorted[this.next++]);
    if (this.members.size === 0) {
      this.sorted = [];
      this.next = 0;
    }
  }
}
