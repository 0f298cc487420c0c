// One shared timer for every host's delayed work (reconnect back-off, the
// staggered start-up dial, resuming a rate-limited socket). Thousands of
// hosts each holding their own setTimeout cost a timer object and a closure
// apiece and make shutdown a hunt for stragglers; here the jobs sit in a
// binary min-heap ordered by due time and a single Node timer is armed for
// the earliest one. Cancelling marks the job dead (O(1)); dead jobs are
// skipped when they reach the top of the heap.
//
// Bound: live jobs are at most a few per host (dial or back-off, rate-limit
// resume). Cancelled jobs would otherwise stay in the heap until their due
// time (a back-off can be 5 minutes away), so once more than 1,024 of them
// make up over half the heap, the heap is rebuilt without them.

export interface ScheduledJob {
  readonly at: number;
  cancel(): void;
}

interface Job extends ScheduledJob {
  at: number;
  seq: number;
  fn: () => void;
  dead: boolean;
}

export class Scheduler {
  private heap: Job[] = [];
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Number.POSITIVE_INFINITY;
  private nextSeq = 0;
  private stopped = false;
  /** Cancelled jobs still in the heap. */
  private deadInHeap = 0;

  constructor(private readonly now: () => number = Date.now) {}

  /** Live jobs waiting (dead ones still in the heap are not counted). */
  get size(): number {
    let n = 0;
    for (const j of this.heap) if (!j.dead) n++;
    return n;
  }

  /** Runs `fn` after `delayMs` (errors thrown by `fn` are swallowed: jobs handle their own). */
  schedule(delayMs: number, fn: () => void): ScheduledJob {
    const job: Job = {
      at: this.now() + Math.max(0, delayMs),
      seq: this.nextSeq++,
      fn,
      dead: false,
      cancel: () => {
        if (job.dead) return;
        job.dead = true;
        this.deadInHeap++;
        this.compactIfMostlyDead();
      },
    };
    if (this.stopped) {
      job.dead = true;
      return job;
    }
    this.push(job);
    this.arm();
    return job;
  }

  /** Cancels everything and disarms the timer; later schedule() calls are ignored. */
  stop(): void {
    this.stopped = true;
    for (const j of this.heap) j.dead = true;
    this.heap = [];
    this.deadInHeap = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
  }

  /** Jobs in the heap, cancelled ones included (for tests of the bound). */
  get heapSize(): number {
    return this.heap.length;
  }

  private compactIfMostlyDead(): void {
    if (this.deadInHeap <= 1024 || this.deadInHeap * 2 <= this.heap.length) return;
    // sorted by (at, seq) is a valid min-heap
    this.heap = this.heap.filter((j) => !j.dead).sort((a, b) => (this.less(a, b) ? -1 : 1));
    this.deadInHeap = 0;
  }

  private arm(): void {
    while (this.heap.length > 0 && this.heap[0].dead) this.popDead();
    if (this.heap.length === 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.armedFor = Number.POSITIVE_INFINITY;
      return;
    }
    const at = this.heap[0].at;
    if (this.timer && at >= this.armedFor) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - this.now()));
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Number.POSITIVE_INFINITY;
    const now = this.now();
    while (this.heap.length > 0 && (this.heap[0].dead || this.heap[0].at <= now)) {
      if (this.heap[0].dead) {
        this.popDead();
        continue;
      }
      const job = this.pop()!;
      job.dead = true;
      try {
        job.fn();
      } catch {
        // a job's own error handling is its business; the wheel keeps turning
      }
      if (this.stopped) return;
    }
    this.arm();
  }

  private popDead(): void {
    this.pop();
    this.deadInHeap--;
  }

  private less(a: Job, b: Job): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(job: Job): void {
    const h = this.heap;
    h.push(job);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Job | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
