// Following the event log from a cursor into the live stream: the replay →
// cutover → live sequence of one outbound connection, shared by the
// firehose's Consumer (src/firehose/consumer.ts) and the Jetstream
// Subscriber (src/jetstream/subscriber.ts). The follower supplies what
// differs (how records are written, its live window, its socket); the order
// of steps here is what makes the stream gapless and duplicate-free. The one
// fact everything rests on: the event log advances its durable head and calls
// its listeners (which append to the endpoint's shared live window, through
// the committed-event stream: committed.ts) in the same synchronous step
// (types.ts). So at any instant between two awaits, "events with seq <=
// log.head()" are exactly the ones readable from the log, and every event
// with a higher seq will later arrive through the window.
//
// 1. Replay: read the log from the cursor in large batches and hand them to
//    the follower, waiting for its socket to drain between batches (with
//    readAhead the next batch is read meanwhile). This runs at disk and
//    network speed and is pulled by the follower, so one catching up is
//    never "too slow"; the live window is not involved yet.
// 2. Cutover: once replay is close to the head, in ONE synchronous step the
//    follower takes a live position at the end of the window (startCutover)
//    and we note target = log.head(). From now on the window keeps
//    everything with seq > target for it (it is counted against its outbox
//    limits). Then read the log up to exactly `target` (no more: events above
//    it come from the window). No event is missed (<= target: log; > target:
//    window) and none is doubled (the two sets do not overlap; the follower's
//    seq <= lastSeq checks guard against surprises).
// 3. Live: the follower sends from its window position (goLive); every new
//    durable batch bumps the window's end and the follower writes what is
//    pending whenever its socket has drained. That part is the follower's
//    own hot path and never passes through here.
import type { EventLog, LogRecord } from './types.ts';

/** One connection following the log: what followLog needs of it. */
export interface LogFollower {
  /** Seq of the last event handed on: set by followLog at the start, advanced by `deliver`. */
  lastSeq: number;
  /** Closed, or closing (e.g. the peer sent a close frame): stop reading. */
  gone(): boolean;
  /** Resolves once the follower can take more (its socket drained) or is closed. */
  drained(): Promise<void>;
  /**
   * Takes records read from the log, in seq order; skips any with seq <=
   * lastSeq and advances lastSeq past those it took. Synchronous.
   */
  deliver(records: readonly LogRecord[]): void;
  /**
   * The cutover step: take the live position at the end of the window and
   * join the live set. Synchronous: it and reading log.head() are one step.
   */
  startCutover(): void;
  /** Caught up to the cutover target: from now on the follower sends from the window only. */
  goLive(): void;
}

export interface FollowOptions {
  /** Bytes per log read. */
  replayBatchBytes: number;
  /** Replay switches to cutover once it is within this many events of the head. */
  cutoverLag: number;
  /** Read the next replay batch while the follower's socket drains (holds one batch ahead). */
  readAhead: boolean;
  /** Read records hidden by a takedown too (a follower that needs every record skips them itself). */
  includeTakenDown: boolean;
}

/**
 * Replays the log after `startAfter` (undefined: live only) to `follower`,
 * cuts over, and leaves it live. Returns early once the follower is gone.
 */
export async function followLog(
  log: EventLog,
  follower: LogFollower,
  startAfter: number | undefined,
  opts: FollowOptions,
): Promise<void> {
  const { replayBatchBytes: maxBytes, includeTakenDown } = opts;
  follower.lastSeq = startAfter ?? log.head();
  if (startAfter !== undefined) {
    // Phase 1: replay in big batches.
    let next = log.readFrom(follower.lastSeq, { maxBytes, includeTakenDown });
    for (;;) {
      const recs = await next;
      if (follower.gone()) return;
      if (recs.length === 0) break;
      follower.deliver(recs);
      if (log.head() - follower.lastSeq <= opts.cutoverLag) break;
      if (opts.readAhead) {
        next = log.readFrom(follower.lastSeq, { maxBytes, includeTakenDown });
        next.catch(() => {}); // handled when awaited
      }
      await follower.drained();
      if (follower.gone()) return;
      if (!opts.readAhead) next = log.readFrom(follower.lastSeq, { maxBytes, includeTakenDown });
    }
  }
  // Phase 2: take the live position and the target head in one synchronous step.
  follower.startCutover();
  const target = log.head();
  while (follower.lastSeq < target) {
    await follower.drained();
    if (follower.gone()) return;
    const recs = await log.readFrom(follower.lastSeq, { maxBytes, untilSeq: target, includeTakenDown });
    if (follower.gone()) return;
    if (recs.length === 0) break; // the rest up to target is hidden (takedowns)
    follower.deliver(recs);
  }
  // Phase 3: live.
  follower.goLive();
}
