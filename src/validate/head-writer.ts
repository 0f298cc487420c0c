// The validator's repo heads between deciding an event and the metadata
// store having its head (validator.ts owns one HeadWriter).
//
// Durability: a decided event's new repo head is staged (`stage`) and served
// from an in-memory overlay (`current`, and `unwritten` for the sync read
// endpoints) to the repo's next events; it is written to the store only once
// the event is durable in the log (the order queue hands it over with its
// relay seq, `written`), batched over a short window. Every event appended
// for an upstream frame carries the frame's origin (host, upstream seq), and
// `floor()` (the Validator's `headFloor()`) says from which relay seq on heads
// may still be unwritten; the log checkpoint stays below it, so after a crash
// log-recovery.ts rebuilds from the log's tail both the heads the store lacks
// and which re-received frames are already out (exactly once: see that
// file). A head write that fails is retried (below).
//
// Head writes run after the append is durable, off the submit path, one
// chunk at a time, HEAD_WRITE_DELAY_MS after the first head waiting (at once
// when a chunk is full, or when closing). Consecutive rev-gated updates go to
// the store in one updateAccountHeads call (one SQLite transaction, one
// PostgreSQL round trip), keeping only the newest head per account — an
// account that commits several times in the window is written once; resets
// are written one by one in their place, so a repo's heads land in the order
// they were staged. The chunk bound keeps one call from stalling the main
// thread. Until a head is written the in-memory overlay serves it, and
// floor() keeps the log checkpoint below its event, so a crash repairs it
// from the log (ingest/log-recovery.ts).
//
// Cursors wait for heads (`barrier`). A frame's submit resolves at
// durability, before its head is written, so its host's cursor could be
// stored while its head is not. A process with a log scan at start
// (RELAY_ROLE=all) repairs that from the log; one without (RELAY_ROLE=ingest,
// whose log is shared) or the process that takes its hosts over would find
// the repo's next commit unchained and resync it, dropping the commits in
// between. So the store writes a cursor batch only after barrier(): every
// head handed to written() before the batch was taken is written (a failed
// write is retried, below, so the barrier waits for it). Every
// frame the batch's cursors pass was handed to written() before the batch was
// taken: written() runs before the step that resolves the frame's submit,
// and the cursor only moves after that. While a barrier waits, chunks are
// written without the delay.
//
// Failed writes are retried, not dropped. A chunk whose write fails goes
// back to the front, in order, and is tried again after a back-off
// (HEAD_RETRY_MIN_MS doubling to HEAD_RETRY_MAX_MS); its heads stay in the
// overlay, so the repos' next events still chain, and barrier() and floor()
// keep covering them. (Dropping them, as before, left the stored heads
// behind: the repos' next commits broke the chain and were lost to a
// resync.) A store that keeps failing thus stops the cursors and, through
// the backpressure below, ingest. Only when closing does a chunk that failed
// HEAD_CLOSE_ATTEMPTS times give up, so that a stop with the store down ends;
// its heads are logged as lost.
//
// Backpressure (`backlogged`). If the store stalls, heads would pile up here
// without bound (ingest goes on while appends succeed). Past
// `maxUnwritten` heads handed over and not written, the order queue
// resolves the submits of newly appended events only after a barrier: the
// frames stay in flight, the ingest frame budget fills and the host sockets
// pause, as for a slow log.
import type { Logger } from '../log.ts';
import type { Account, MetadataStore, RepoHead } from '../store/metadata-store.ts';

/** A repo head waiting to be written to the store. */
export interface StagedHead {
  account: Account;
  head: RepoHead;
  /** #sync / resync: replace the head whatever its rev (not rev-gated). */
  reset: boolean;
  /** Relay seq of the event that set it (known once appended). */
  seq?: number;
}

/** Head writes per store call (one SQLite transaction). */
const HEAD_WRITE_CHUNK = 1024;
/** How long staged heads wait to be written together (hot accounts are written once per window). */
const HEAD_WRITE_DELAY_MS = 100;
/** Back-off between attempts at a chunk whose write failed: doubling from the first to the second. */
const HEAD_RETRY_MIN_MS = 100;
const HEAD_RETRY_MAX_MS = 5_000;
/** The back-off before attempt `failed + 1` at a chunk whose write failed `failed` times. */
function retryDelayMs(failed: number): number {
  return Math.min(HEAD_RETRY_MAX_MS, HEAD_RETRY_MIN_MS * 2 ** (failed - 1));
}
/** When closing, attempts at a failing chunk before its heads are given up. */
const HEAD_CLOSE_ATTEMPTS = 3;

export class HeadWriter {
  /** DID → its newest staged head, until the store has it (the overlay). */
  private readonly heads = new Map<string, RepoHead>();
  /** Heads of appended events, waiting for their write. */
  private readonly headWrites: StagedHead[] = [];
  private headWriteTimer: NodeJS.Timeout | null = null;
  /** The chunk being written; one chunk at a time, so a repo's heads land in order. */
  private headWritesInFlight: StagedHead[] = [];
  private closing = false;
  /** Heads whose write has settled (written, or given up at close), counted from the start; barrier() positions count on it. */
  private settled = 0;
  /** barrier() callers, each waiting for `settled` to reach its `upTo` (in order of upTo). */
  private readonly barriers: { upTo: number; resolve: () => void }[] = [];
  /** Failed attempts in a row at the chunk at the front (0: none failed); the back-off follows from it (retryDelayMs). */
  private failedAttempts = 0;
  /** When the current run of failed attempts began (Date.now()), or undefined while writes succeed. */
  failingSince: number | undefined;

  /** `onWritten` runs after each chunk's write settles (the Validator's idle check). */
  constructor(
    private readonly store: MetadataStore,
    private readonly log: Logger,
    private readonly onWritten: () => void,
    private readonly maxUnwritten = 16_384,
    /** Called for each failed write attempt (a metric). */
    private readonly onWriteFailed: () => void = () => {},
  ) {}

  /** More heads wait to be written than `maxUnwritten` (see "Backpressure"). */
  get backlogged(): boolean {
    return this.unsettled > this.maxUnwritten;
  }

  /** Heads handed to written() whose write has not settled: waiting, being written, or back for a retry. */
  private get unsettled(): number {
    return this.headWrites.length + this.headWritesInFlight.length;
  }

  /** No head waits to be written and none is being written. */
  get idle(): boolean {
    return this.headWrites.length === 0 && this.headWritesInFlight.length === 0;
  }

  /**
   * The account's newest head when it is newer than the stored one: staged
   * after its event was decided and not yet written (heads are written in
   * batches, HEAD_WRITE_DELAY_MS apart). The sync read endpoints overlay it so
   * that what they answer is never older than what the firehose has served.
   */
  unwritten(did: string): RepoHead | undefined {
    return this.heads.get(did);
  }

  /** The repo's head as its next event must see it: the staged one, else the stored one. */
  current(account: Account): RepoHead | null {
    return this.heads.get(account.did) ?? account.head;
  }

  /** Remembers the head until the store has it; the write runs after the append (writeHeads). */
  stage(account: Account, head: RepoHead, reset: boolean): StagedHead {
    this.heads.set(account.did, head);
    return { account, head, reset };
  }

  /** A staged head whose event is durable at relay seq `seq`: written with the next chunk (call schedule()). */
  written(write: StagedHead, seq: number): void {
    write.seq = seq;
    this.headWrites.push(write);
  }

  /**
   * Resolves once every head handed to written() before this call has been
   * written, or its write has failed (see the file comment: the store's
   * cursor batches wait for this). Writes what waits without the delay.
   */
  barrier(): Promise<void> {
    if (this.unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.barriers.push({ upTo: this.settled + this.unsettled, resolve });
      if (this.headWriteTimer) {
        // a delayed write is pending: start it now
        clearTimeout(this.headWriteTimer);
        this.headWriteTimer = null;
      }
      this.schedule();
    });
  }

  /**
   * The lowest relay seq whose repo head may not be in the store yet
   * (Infinity when every head is written). Heads are only staged for appended
   * events, so anything below this is reflected in the store.
   */
  floor(): number {
    let floor = Number.POSITIVE_INFINITY;
    for (const w of this.headWritesInFlight) if (w.seq !== undefined && w.seq < floor) floor = w.seq;
    for (const w of this.headWrites) if (w.seq !== undefined && w.seq < floor) floor = w.seq;
    return floor;
  }

  /** From now on heads are written without the delay; what is staged now is written at once. */
  close(): void {
    this.closing = true;
    if (this.headWriteTimer) {
      // write what is staged now rather than after the delay
      clearTimeout(this.headWriteTimer);
      this.headWriteTimer = null;
      this.schedule();
    }
  }

  /** Starts the next chunk's write (after the delay) unless one is pending or running. */
  schedule(): void {
    if (this.headWriteTimer || this.headWritesInFlight.length > 0 || this.headWrites.length === 0) return;
    const now = this.closing || this.barriers.length > 0 || this.headWrites.length >= HEAD_WRITE_CHUNK;
    this.headWriteTimer = setTimeout(
      () => {
        this.headWriteTimer = null;
        const chunk = this.headWrites.splice(0, HEAD_WRITE_CHUNK);
        this.headWritesInFlight = chunk;
        // writeHeads catches the store's errors; anything else counts as a failed attempt
        void this.writeHeads(chunk)
          .catch(() => 0)
          .then((written) => {
            this.headWritesInFlight = [];
            let settledNow = written;
            if (written < chunk.length) {
              this.failedAttempts++;
              this.failingSince ??= Date.now();
              this.onWriteFailed();
              if (this.closing && this.failedAttempts >= HEAD_CLOSE_ATTEMPTS) {
                // stopping with the store failing: give these up so that the stop ends
                this.log.error(
                  { heads: chunk.length - written, attempts: this.failedAttempts },
                  'repo head writes given up at close; the stored heads stay behind',
                );
                for (let k = written; k < chunk.length; k++) this.dropOverlay(chunk[k]);
                settledNow = chunk.length;
                this.failedAttempts = 0;
                this.failingSince = undefined;
              } else {
                // the rest of the chunk goes back to the front, in order, for the next attempt
                this.headWrites.unshift(...chunk.slice(written));
              }
            } else {
              this.failedAttempts = 0;
              this.failingSince = undefined;
            }
            this.settled += settledNow;
            while (this.barriers.length > 0 && this.barriers[0].upTo <= this.settled) {
              this.barriers.shift()?.resolve();
            }
            this.schedule();
            this.onWritten();
          });
      },
      this.failedAttempts > 0 ? retryDelayMs(this.failedAttempts) : now ? 0 : HEAD_WRITE_DELAY_MS,
    );
  }

  /** The staged head leaves the overlay unless a newer one replaced it. */
  private dropOverlay(write: StagedHead): void {
    if (this.heads.get(write.account.did) === write.head) this.heads.delete(write.account.did);
  }

  /** Writes the chunk in order; returns how many of its heads are written (the rest: the write failed). */
  private async writeHeads(chunk: StagedHead[]): Promise<number> {
    let i = 0;
    while (i < chunk.length) {
      const start = i;
      let end = i;
      try {
        if (chunk[i].reset) {
          const { account, head } = chunk[i];
          end = i + 1;
          await this.store.resetAccountHead(account.uid, head);
        } else {
          // A run of updates; per uid only the highest rev, which is what
          // applying them one by one with the rev gate would leave.
          const best = new Map<number, { uid: number; did: string; head: RepoHead }>();
          for (end = i; end < chunk.length && !chunk[end].reset; end++) {
            const { account, head } = chunk[end];
            const cur = best.get(account.uid);
            if (!cur || cur.head.rev < head.rev)
              best.set(account.uid, { uid: account.uid, did: account.did, head });
          }
          await this.store.updateAccountHeads([...best.values()]);
        }
      } catch (err) {
        this.log.error(
          { err, heads: chunk.length - start, retryInMs: retryDelayMs(this.failedAttempts + 1) },
          'repo head write failed; will retry',
        );
        return start;
      }
      i = end;
      for (let k = start; k < i; k++) this.dropOverlay(chunk[k]);
    }
    return chunk.length;
  }
}
