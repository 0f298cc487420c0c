// The validator's global order queue and parking (validator.ts owns one
// OrderQueue; its opening comment is the overview of how the per-DID queues,
// this queue and parking cooperate).
//
// The order queue: every event takes a place in one global FIFO in submit
// order, and decided events leave it from the front only, each run of them in
// one `append` call (the log assigns seqs in call order). So the relay's
// output order is its input order, whatever order the workers finish in.
//
// Parking: a repo whose current event has to wait for the network (a DID
// resolution that misses the cache, a forced re-resolution after a bad
// signature or a host mismatch, a handle check, a resync) gives up its places
// in the order queue: all of its queued events step out, as do the ones
// submitted while it waits (the Validator does not enqueue a parked repo's
// new events). When each of them is decided, it takes a new place at the back
// of the queue. A slow DID thus never holds up other repos, and a repo's own
// events stay in order (its earlier events hold places ahead of any new place
// it takes). The repo is unparked when its queue empties (the Validator drops
// the queue).
//
// A place is an entry holding the job and a generation: stepping out bumps
// the job's generation, so its old entry is skipped when it reaches the
// front, without searching the queue.
//
// Durability: a decided job resolves once its events are durable in the log
// (a dropped frame: once it reaches the front of the queue and every append
// issued before it has settled, so a resolved submit means that everything
// ahead of it in the order queue is durable or dropped). The repo heads the
// appended events set are handed to the HeadWriter (head-writer.ts) with
// their relay seqs; an operator takedown's hide is stored in the same
// synchronous step as the append that assigned its #account seq.
//
// Settling (`settled`): a rule that writes account state at decision time
// (an upstream status, desynchronized) first waits until every place taken
// before it has been released and every append issued so far has settled,
// with its own repo parked so that its place does not hold the front (see
// storedAfterEarlierEvents in job.ts).
import type { AppendEvent, Sequencer } from '../eventlog/types.ts';
import type { HeadWriter } from './head-writer.ts';
import type { Decision, Job, RepoQueue } from './job.ts';
import type { ValidationMetrics } from './metrics.ts';

interface OrderEntry {
  job: Job;
  gen: number;
}

export class OrderQueue {
  private order: OrderEntry[] = [];
  private orderHead = 0;
  /** Appends issued and not settled (whenIdle waits for them). */
  private appendsInFlight = 0;
  /** The last append issued (rejected if it failed): drop-only batches resolve behind it, either way. */
  private lastAppend: Promise<unknown> = Promise.resolve();
  /** Entries taken off the front so far (released or skipped), for settled(). */
  private released = 0;
  /** settled() callers, each waiting until `released` reaches its `upTo`. */
  private settleWaiters: { upTo: number; resolve: () => void }[] = [];

  /** `onAppendSettled` runs after each append settles, either way (the Validator's idle check). */
  constructor(
    private readonly seqr: Sequencer,
    private readonly heads: HeadWriter,
    private readonly metrics: ValidationMetrics,
    private readonly onAppendSettled: () => void,
  ) {}

  /** Places taken and not yet released (live or stepped out). */
  get waiting(): number {
    return this.order.length - this.orderHead;
  }

  /** Nothing waits in the queue and every append has settled. */
  get idle(): boolean {
    return this.appendsInFlight === 0 && this.orderHead >= this.order.length;
  }

  /**
   * Resolves once every place taken before this call has left the queue (its
   * job appended, dropped, or stepped out) and every append issued by then
   * has settled; rejects if the last of those appends failed. A caller whose
   * own job holds a place parks its repo first (else it would wait for itself).
   */
  settled(): Promise<void> {
    const upTo = this.released + (this.order.length - this.orderHead);
    if (upTo <= this.released) return this.lastAppend.then(() => {});
    return new Promise<void>((resolve) => {
      this.settleWaiters.push({ upTo, resolve });
      this.drain();
    }).then(() => this.lastAppend.then(() => {}));
  }

  /** The job takes a place at the back. */
  enqueue(job: Job): void {
    job.gen++;
    job.inOrder = true;
    this.order.push({ job, gen: job.gen });
  }

  /** The repo's events leave the order queue until each is decided (see the file comment). */
  park(q: RepoQueue): void {
    if (q.parked) return;
    q.parked = true;
    for (const j of q.jobs) {
      if (j.inOrder && j.decision === null) {
        j.gen++;
        j.inOrder = false;
      }
    }
    this.drain();
  }

  /** The job has its decision (job.decision): it takes a place at the back if it had none, and the front is released. */
  decided(job: Job): void {
    if (!job.inOrder) this.enqueue(job);
    this.drain();
  }

  /** The job gives up its place for good (it failed: neither appended nor dropped); call drain() after. */
  leave(job: Job): void {
    if (job.inOrder) job.gen++;
    job.inOrder = false;
  }

  /** Releases the decided jobs at the front, in one append. */
  drain(): void {
    const batch: Job[] = [];
    while (this.orderHead < this.order.length) {
      const e = this.order[this.orderHead];
      if (e.gen !== e.job.gen) {
        this.orderHead++;
        this.released++;
        continue;
      }
      if (e.job.decision === null) break;
      batch.push(e.job);
      this.orderHead++;
      this.released++;
    }
    if (this.orderHead > 1024 && this.orderHead * 2 > this.order.length) {
      this.order = this.order.slice(this.orderHead);
      this.orderHead = 0;
    }
    if (batch.length > 0) this.flush(batch);
    if (this.settleWaiters.length > 0) {
      // the appends of everything released so far are issued: lastAppend is the newest
      const ready = this.settleWaiters.filter((w) => w.upTo <= this.released);
      if (ready.length > 0) {
        this.settleWaiters = this.settleWaiters.filter((w) => w.upTo > this.released);
        for (const w of ready) w.resolve();
      }
    }
  }

  private flush(batch: Job[]): void {
    const events: AppendEvent[] = [];
    for (const j of batch) {
      const d = j.decision as Decision;
      const frame = j.frame;
      for (const e of d.events) {
        if (frame) e.origin = { hostId: frame.hostId, seq: frame.upstreamSeq };
        events.push(e);
      }
    }
    if (events.length === 0) {
      void this.lastAppend
        .catch(() => {})
        .then(() => {
          for (const j of batch) j.resolve();
        });
      return;
    }
    let appended: Promise<number[]>;
    try {
      appended = this.seqr.append(events);
    } catch (err) {
      appended = Promise.reject(err);
    }
    this.lastAppend = appended;
    this.appendsInFlight++;
    void appended
      .catch(() => {})
      .then(() => {
        this.appendsInFlight--;
        this.onAppendSettled();
      });
    // Takedown hides, in the same synchronous step as the append that assigned
    // the #account seqs: every earlier event of the account is at or below it.
    const hides = new Map<Job, Promise<void>>();
    for (const j of batch) {
      const td = (j.decision as Decision).takedown;
      if (!td) continue;
      const seq = j.admin?.seq;
      if (td.on && seq === undefined) continue; // the append refused the batch
      hides.set(j, this.seqr.setTakedown(td.uid, td.on, td.on ? (seq as number) - 1 : undefined));
    }
    appended.then(
      (seqs) => {
        const now = performance.now();
        let k = 0;
        for (const j of batch) {
          const d = j.decision as Decision;
          k += d.events.length;
          if (!d.drop && typeof j.frame?.receivedAt === 'number') {
            this.metrics.latency(j.type, (now - j.frame.receivedAt) / 1000);
          }
          // written later, batched; headFloor() covers it until then
          if (d.write) this.heads.written(d.write, seqs[k - 1]);
        }
        this.heads.schedule();
        const release = () => {
          for (const j of batch) {
            const hide = hides.get(j);
            if (hide) hide.then(j.resolve, j.reject);
            else j.resolve();
          }
        };
        // a stalled store: hold these frames in flight until their heads are written (head-writer.ts, "Backpressure")
        if (this.heads.backlogged) {
          this.metrics.heldForHeads();
          void this.heads.barrier().then(release);
        } else release();
      },
      (err: unknown) => {
        for (const j of batch) j.reject(err);
      },
    );
  }
}
