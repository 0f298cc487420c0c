// The subscribeRepos side of a simulated PDS: a sequencer with a bounded
// in-memory history and the WebSocket subscribers reading from it.
//
// Each subscriber is just a position in the history (`next` seq to send).
// Replay and live delivery are the same loop: send from the history while the
// subscriber is behind the head and its socket buffer has room. That gives the
// real PDS's semantics without a separate backfill phase to splice onto the
// live stream: no gap and no duplicate at the cutover, by construction. A
// subscriber that falls so far behind that its next event has left the
// history gets `ConsumerTooSlow`, like a PDS outbox overflowing.
import type { WebSocket } from 'ws';
import { encodeErrorFrame, encodeInfoFrame } from '../src/protocol/frames.ts';
import { type PreparedFrame, sealFrame } from './wire.ts';

interface Subscriber {
  ws: WebSocket;
  next: number;
  retry: NodeJS.Timeout | null;
  /** stallAll(): the socket stays open (pings answered) but nothing more is sent on it */
  stalled?: boolean;
}

export interface SequencedEvent {
  seq: number;
  t: string;
  did: string;
}

export class Firehose {
  private readonly ring: (Uint8Array | undefined)[];
  private readonly meta: (SequencedEvent | undefined)[];
  private headSeq = 0;
  private readonly subscribers = new Set<Subscriber>();
  /** frames sent to subscribers (replay and live), for stats */
  framesSent = 0;
  /** performance.now() of every subscription accepted, in order (tests check dial timing) */
  readonly attachedAt: number[] = [];

  /**
   * `highWaterBytes`: a subscriber whose socket has more than this buffered
   * waits (polling every 5 ms) before more frames are written to it.
   */
  constructor(
    readonly historySize = 10_000,
    readonly highWaterBytes = 8 * 1024 * 1024,
  ) {
    this.ring = new Array(historySize);
    this.meta = new Array(historySize);
  }

  /** seq of the newest event, 0 before the first */
  get head(): number {
    return this.headSeq;
  }

  /** seq of the oldest event still kept for replay (head + 1 when empty) */
  get oldest(): number {
    return Math.max(1, this.headSeq - this.historySize + 1);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  /** Assigns the next seq to a prepared event, stores it and sends it to caught-up subscribers. */
  publish(p: PreparedFrame): SequencedEvent {
    const seq = ++this.headSeq;
    const i = seq % this.historySize;
    this.ring[i] = sealFrame(p, seq);
    const ev = { seq, t: p.t, did: p.did };
    this.meta[i] = ev;
    for (const sub of this.subscribers) if (!sub.retry) this.pump(sub);
    return ev;
  }

  frameAt(seq: number): Uint8Array | undefined {
    if (seq < this.oldest || seq > this.headSeq) return undefined;
    return this.ring[seq % this.historySize];
  }

  eventAt(seq: number): SequencedEvent | undefined {
    if (seq < this.oldest || seq > this.headSeq) return undefined;
    return this.meta[seq % this.historySize];
  }

  /** The subscribers' sockets (hostile floods write to them directly, hostile.ts). */
  *sockets(): IterableIterator<WebSocket> {
    for (const sub of this.subscribers) yield sub.ws;
  }

  /** Sends raw bytes to every live subscriber without sequencing them (transport-level faults). */
  sendRaw(bytes: Uint8Array): void {
    for (const sub of this.subscribers) sub.ws.send(bytes, { binary: true, compress: false });
  }

  /**
   * Starts a subscription with subscribeRepos cursor semantics: no cursor →
   * live only; cursor > head → FutureCursor error and close; cursor older than
   * the history → #info OutdatedCursor then everything kept; otherwise every
   * event with seq > cursor, then live.
   */
  attach(ws: WebSocket, cursor: number | undefined): void {
    if (cursor !== undefined && cursor > this.headSeq) {
      ws.send(encodeErrorFrame('FutureCursor', 'Cursor in the future.'), { binary: true }, () => ws.close());
      return;
    }
    let next = this.headSeq + 1;
    if (cursor !== undefined) {
      if (cursor + 1 < this.oldest) {
        ws.send(
          encodeInfoFrame('OutdatedCursor', 'Requested cursor exceeded limit. Possibly missing events'),
          {
            binary: true,
          },
        );
        next = this.oldest;
      } else {
        next = cursor + 1;
      }
    }
    const sub: Subscriber = { ws, next, retry: null };
    this.subscribers.add(sub);
    this.attachedAt.push(performance.now());
    const drop = () => {
      if (sub.retry) clearTimeout(sub.retry);
      sub.retry = null;
      this.subscribers.delete(sub);
    };
    ws.on('close', drop);
    ws.on('error', drop);
    this.pump(sub);
  }

  private pump(sub: Subscriber): void {
    const ws = sub.ws;
    if (sub.stalled) return;
    while (sub.next <= this.headSeq) {
      if (ws.readyState !== ws.OPEN) return;
      if (sub.next < this.oldest) {
        this.subscribers.delete(sub);
        ws.send(encodeErrorFrame('ConsumerTooSlow', 'Stream consumer too slow'), { binary: true }, () =>
          ws.close(),
        );
        return;
      }
      if (ws.bufferedAmount > this.highWaterBytes) {
        sub.retry = setTimeout(() => {
          sub.retry = null;
          this.pump(sub);
        }, 5);
        return;
      }
      ws.send(this.ring[sub.next % this.historySize]!, { binary: true, compress: false });
      this.framesSent++;
      sub.next++;
    }
  }

  /** Destroys every subscriber's socket without a close frame. */
  terminateAll(): number {
    const n = this.subscribers.size;
    for (const sub of [...this.subscribers]) {
      if (sub.retry) clearTimeout(sub.retry);
      this.subscribers.delete(sub);
      sub.ws.terminate();
    }
    return n;
  }

  /**
   * Stalls every current subscriber: its socket stays open and answers pings,
   * but no further event is sent on it (a PDS whose outbox wedged). Later
   * subscriptions are served normally, so a reconnect from the cursor heals it.
   */
  stallAll(): number {
    for (const sub of this.subscribers) sub.stalled = true;
    return this.subscribers.size;
  }

  /** Closes every subscriber cleanly (server shutdown). */
  closeAll(): void {
    for (const sub of [...this.subscribers]) {
      if (sub.retry) clearTimeout(sub.retry);
      this.subscribers.delete(sub);
      sub.ws.close(1001, 'server shutting down');
    }
  }
}
