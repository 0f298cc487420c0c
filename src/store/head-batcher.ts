// Group commit for repo head updates on PostgreSQL. Each head update is a
// durable commit, and a commit costs a WAL fsync (milliseconds), so one
// UPDATE per event caps throughput at a few thousand per second however many
// events are in flight. The batcher keeps one batch in flight: callers that
// arrive while it runs queue up and go out together as the next batch, one
// statement and one fsync for all of them. Each promise still resolves only
// after its own row is committed, so "reported written" keeps its meaning;
// a lone caller pays one round trip, as before. updateAll() queues a whole
// list at once, so a caller's batch of heads goes out as one statement.
//
// A batch never holds two writes for the same uid (the later one waits for
// the next batch), so rev gating sees them in call order. One batch at a time
// also means multi-row updates never contend with each other for row locks in
// different orders, which could deadlock.
import type { Account, HeadUpdate, RepoHead } from './metadata-store.ts';

export type HeadWrite = HeadUpdate;

/** Writes a batch; returns the rows that were applied (the others were not newer). */
export type HeadBatchSink = (writes: readonly HeadWrite[]) => Promise<Account[]>;

interface Pending extends HeadWrite {
  resolve: (account: Account | undefined) => void;
  reject: (err: unknown) => void;
}

export class HeadUpdateBatcher {
  private queue: Pending[] = [];
  private running = false;
  batches = 0;

  constructor(
    private readonly sink: HeadBatchSink,
    private readonly maxBatch = 1000,
  ) {}

  /** Resolves with the updated account once committed, or undefined if the rev was not newer. */
  update(uid: number, head: RepoHead): Promise<Account | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ uid, head, resolve, reject });
      if (!this.running) {
        this.running = true;
        // A microtask lets callers in the same tick join the first batch.
        queueMicrotask(() => void this.drain());
      }
    });
  }

  /**
   * Queues all writes at once, so they share a batch (up to maxBatch; a repeated
   * uid goes out in a later batch, after the earlier write). One result per write.
   */
  updateAll(writes: readonly HeadWrite[]): Promise<(Account | undefined)[]> {
    return Promise.all(writes.map((w) => this.update(w.uid, w.head)));
  }

  private takeBatch(): Pending[] {
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    const uids = new Set<number>();
    for (const p of this.queue) {
      if (batch.length < this.maxBatch && !uids.has(p.uid)) {
        uids.add(p.uid);
        batch.push(p);
      } else {
        rest.push(p);
      }
    }
    this.queue = rest;
    return batch;
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.takeBatch();
      try {
        const applied = new Map((await this.sink(batch)).map((a) => [a.uid, a]));
        this.batches++;
        for (const p of batch) p.resolve(applied.get(p.uid));
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
    }
    this.running = false;
  }
}
