// One subscribeRepos connection. It moves through three phases, like the ozone
// outbox: replay → cutover → live, driven by followLog
// (src/eventlog/follow.ts, which has the argument for why the stream has no
// gap and no duplicate). What is the firehose's own:
//
// 1. Replay: each batch read from the log is framed and written as one
//    coalesced socket write; the next batch is read while the socket drains
//    (readAhead).
// 2. Cutover: the live position is an index into the shared LiveWindow
//    (live-window.ts); from then on the window's range past it counts against
//    this consumer's outbox limits. Records up to the target come from the log.
// 3. Live: send from the window position; every new durable batch bumps the
//    end and we write everything pending as one coalesced socket write (or a
//    corked writev of a few shared slices) whenever the socket has drained.
//    A seq <= lastSeq check skips what cutover already sent from the log.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { followLog, type LogFollower } from '../eventlog/follow.ts';
import type { EventLog, LogRecord } from '../eventlog/types.ts';
import { LiveStreamConnection } from '../http/stream-connection.ts';
import type { LiveWindow } from './live-window.ts';
import { frameMessages } from './ws-frame.ts';

export type ConsumerState = 'replay' | 'cutover' | 'live' | 'closed';

export interface ConsumerHost {
  readonly log: EventLog;
  readonly window: LiveWindow;
  readonly replayBatchBytes: number;
  readonly maxWriteBytes: number;
  /** Replay switches to cutover once it is within this many events of the head. */
  readonly cutoverLag: number;
  onSent(consumer: Consumer, events: number, bytes: number): void;
  onClosed(consumer: Consumer): void;
  enterLive(consumer: Consumer): void;
}

export interface ConsumerInfo {
  id: number;
  remoteAddress: string;
  userAgent?: string;
  /** The cursor the consumer asked for (undefined: live only). */
  cursor?: number;
  connectedAt: string;
  state: ConsumerState;
  /** Seq of the last event written to the socket. */
  lastSeq: number;
  /** Events between the log head and lastSeq. */
  lag: number;
  /** Bytes waiting: queued in the live window for this consumer plus the socket buffer. */
  outboxBytes: number;
  eventsSent: number;
  bytesSent: number;
  /** A ping was sent and its pong has not arrived yet (dropped at the next ping if still so). */
  awaitingPong: boolean;
}

export class Consumer
  extends LiveStreamConnection<Exclude<ConsumerState, 'closed' | 'cutover' | 'live'>>
  implements LogFollower
{
  state: ConsumerState = 'replay';
  lastSeq = 0;
  eventsSent = 0;
  bytesSent = 0;

  constructor(
    id: number,
    private readonly host: ConsumerHost,
    ws: WebSocket,
    socket: Duplex,
    remoteAddress: string,
    userAgent: string | undefined,
    cursor: number | undefined,
  ) {
    super(id, ws, socket, remoteAddress, userAgent, cursor);
  }

  info(): ConsumerInfo {
    const head = this.host.log.head();
    return {
      id: this.id,
      remoteAddress: this.remoteAddress,
      userAgent: this.userAgent,
      cursor: this.cursor,
      connectedAt: this.connectedAt.toISOString(),
      state: this.state,
      lastSeq: this.lastSeq,
      lag: Math.max(0, head - this.lastSeq),
      outboxBytes: this.outboxBytes(),
      eventsSent: this.eventsSent,
      bytesSent: this.bytesSent,
      awaitingPong: !this.alive,
    };
  }

  /** Replays from `startAfter` (undefined: live only), then cuts over to live (followLog). */
  run(startAfter: number | undefined): Promise<void> {
    return followLog(this.host.log, this, startAfter, {
      replayBatchBytes: this.host.replayBatchBytes,
      cutoverLag: this.host.cutoverLag,
      readAhead: true,
      includeTakenDown: false,
    });
  }

  /** Writes records read from the log (replay, cutover) as one coalesced socket write. */
  deliver(recs: readonly LogRecord[]): void {
    if (!this.writable()) return;
    const fresh = recs[0].seq > this.lastSeq ? recs : recs.filter((r) => r.seq > this.lastSeq);
    if (fresh.length === 0) return;
    const { buf } = frameMessages(fresh.map((r) => r.frame));
    this.socket.write(buf);
    this.lastSeq = fresh[fresh.length - 1].seq;
    this.eventsSent += fresh.length;
    this.bytesSent += buf.length;
    this.host.onSent(this, fresh.length, buf.length);
  }

  protected get window() {
    return this.host.window;
  }

  protected enterLive(): void {
    this.host.enterLive(this);
  }

  /** Sends whatever the live window holds past our position, unless the socket is still busy. */
  flush(): void {
    if (this.state !== 'live' || this.socket.writableNeedDrain || !this.writable()) return;
    const window = this.host.window;
    // Guard against overlap with what cutover already sent from the log.
    while (this.pos < window.end && (window.seqAt(this.pos) ?? Number.POSITIVE_INFINITY) <= this.lastSeq) {
      this.pos++;
    }
    while (this.pos < window.end && !this.socket.writableNeedDrain) {
      const { chunks, next, events, lastSeq } = window.slices(this.pos, this.host.maxWriteBytes);
      if (events === 0) break;
      let bytes = 0;
      if (chunks.length === 1) {
        bytes = chunks[0].length;
        this.socket.write(chunks[0]);
      } else {
        this.socket.cork();
        for (const c of chunks) {
          bytes += c.length;
          this.socket.write(c);
        }
        this.socket.uncork();
      }
      this.pos = next;
      this.lastSeq = lastSeq;
      this.eventsSent += events;
      this.bytesSent += bytes;
      this.host.onSent(this, events, bytes);
    }
  }

  /** Writes one protocol message (info or error frame) directly. */
  sendFrame(frame: Uint8Array): void {
    if (!this.writable()) return;
    const { buf } = frameMessages([frame]);
    this.socket.write(buf);
    this.bytesSent += buf.length;
  }

  /** Sends an error frame (if given), closes with `code`, and force-closes after a grace period. */
  override close(code: number, reason: string, errorFrame?: Uint8Array): void {
    if (this.state === 'closed') return;
    if (errorFrame) this.sendFrame(errorFrame);
    super.close(code, reason);
  }

  protected onClosed(): void {
    this.host.onClosed(this);
  }
}
