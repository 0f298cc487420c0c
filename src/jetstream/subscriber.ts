// One Jetstream subscriber (`GET /subscribe`): replay → cutover → live with
// no gap and no duplicate, driven by followLog (src/eventlog/follow.ts, which
// has the argument) as the CBOR firehose's consumer is, over JSON messages
// selected by the subscriber's filter.
//
// Replay reads the log from a time index checkpoint at or before the cursor
// (time-index.ts), recomputing each record's time_us on the way (so it reads
// taken-down records too and skips them afterwards: the chain needs every
// record), skips those before the cursor, and encodes the rest itself,
// building only the messages its filter wants (a replaying subscriber's
// encodes are its own; live ones share). It reads no batch ahead: the next
// is read once its socket has drained. Near the head it takes the live
// window's end and the log's head in one synchronous step, enters the live
// set, reads the log up to that head, and goes live: from then on it only
// selects from the shared window (window.ts).
//
// Its socket writes are whole WebSocket text frames laid out once per event
// (encode.ts); a filtered subscriber writes slices of the shared buffers.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';
import { followLog, type LogFollower } from '../eventlog/follow.ts';
import { nextTimeUs, type TimeChainPosition } from '../eventlog/time-index.ts';
import type { EventLog, LogRecord } from '../eventlog/types.ts';
import { LiveStreamConnection } from '../http/stream-connection.ts';
import { type EncodedEvent, type EncodeSkip, encodeEvent } from './encode.ts';
import type { SubscriberFilter } from './filter.ts';
import type { JsonWindow } from './window.ts';

export type SubscriberState = 'hello' | 'replay' | 'cutover' | 'live' | 'closed';

export interface SubscriberHost {
  readonly log: EventLog;
  readonly window: JsonWindow;
  readonly replayBatchBytes: number;
  readonly cutoverLag: number;
  onSent(messages: number, bytes: number): void;
  onSkip(reason: EncodeSkip): void;
  onClosed(s: Subscriber): void;
  enterLive(s: Subscriber): void;
}

export interface SubscriberInfo {
  id: number;
  remoteAddress: string;
  userAgent?: string;
  /** The time_us cursor asked for (undefined: live only). */
  cursor?: number;
  connectedAt: string;
  state: SubscriberState;
  lastSeq: number;
  /** options_update messages applied. */
  optionsUpdates: number;
  messagesSent: number;
  bytesSent: number;
}

export class Subscriber
  extends LiveStreamConnection<Exclude<SubscriberState, 'closed' | 'cutover' | 'live'>>
  implements LogFollower
{
  state: SubscriberState = 'hello';
  lastSeq = 0;
  optionsUpdates = 0;
  messagesSent = 0;
  bytesSent = 0;
  /** Replay: records with a time_us below this are skipped. */
  private cursorTimeUs = 0;
  /** Replay: time_us of the last record read (the time chain, time-index.ts). */
  private prevTimeUs = 0;

  constructor(
    id: number,
    private readonly host: SubscriberHost,
    ws: WebSocket,
    socket: Duplex,
    remoteAddress: string,
    userAgent: string | undefined,
    cursor: number | undefined,
    public filter: SubscriberFilter,
  ) {
    super(id, ws, socket, remoteAddress, userAgent, cursor);
  }

  info(): SubscriberInfo {
    return {
      id: this.id,
      remoteAddress: this.remoteAddress,
      userAgent: this.userAgent,
      cursor: this.cursor,
      connectedAt: this.connectedAt.toISOString(),
      state: this.state,
      lastSeq: this.lastSeq,
      optionsUpdates: this.optionsUpdates,
      messagesSent: this.messagesSent,
      bytesSent: this.bytesSent,
    };
  }

  /**
   * Replays from `start` (undefined: live only), sending records whose
   * time_us is at least `cursorTimeUs`, then cuts over to live (followLog).
   */
  run(start: TimeChainPosition | undefined, cursorTimeUs: number): Promise<void> {
    this.state = 'replay';
    this.cursorTimeUs = cursorTimeUs;
    this.prevTimeUs = start?.prevTimeUs ?? 0;
    return followLog(this.host.log, this, start?.afterSeq, {
      replayBatchBytes: this.host.replayBatchBytes,
      cutoverLag: this.host.cutoverLag,
      readAhead: false,
      // the time chain needs every record; taken-down ones are skipped below
      includeTakenDown: true,
    });
  }

  /** Encodes and writes records read from the log (replay, cutover). */
  deliver(recs: readonly LogRecord[]): void {
    const log = this.host.log;
    const out: EncodedEvent[] = [];
    // replayed events are this subscriber's alone: build only what its filter wants
    const prefilter = this.filter.prefilter;
    for (const r of recs) {
      if (r.seq <= this.lastSeq) continue;
      if (r.seq !== this.lastSeq + 1) {
        // Retention removed what we were reading: the chain resumes at the
        // oldest kept record, the first of its segment and so a checkpoint.
        const t = log.timeIndex?.checkpointAt(r.seq);
        if (t !== undefined) this.prevTimeUs = t - 1;
      }
      this.prevTimeUs = nextTimeUs(this.prevTimeUs, r.time);
      if (this.prevTimeUs >= this.cursorTimeUs && !log.isTakenDown(r.uid, r.seq)) {
        out.push(encodeEvent(r.seq, this.prevTimeUs, r.frame, (why) => this.host.onSkip(why), prefilter));
      }
      this.lastSeq = r.seq;
    }
    this.writeEvents(out);
  }

  protected get window() {
    return this.host.window;
  }

  protected enterLive(): void {
    this.host.enterLive(this);
  }

  /** Writes the wanted messages of `events` (in order) as one corked burst. */
  private writeEvents(events: readonly EncodedEvent[]): void {
    if (!this.writable()) return;
    let chunks: Buffer[] | undefined;
    let messages = 0;
    let bytes = 0;
    for (const e of events) {
      const picked = this.select(e);
      if (picked.length === 0) continue;
      chunks ??= [];
      for (const c of picked) {
        chunks.push(c.buf);
        messages += c.messages;
        bytes += c.buf.length;
      }
    }
    if (!chunks) return;
    this.socket.cork();
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
    this.messagesSent += messages;
    this.bytesSent += bytes;
    this.host.onSent(messages, bytes);
  }

  /** The frames of `e` this subscriber wants, as slices of the shared buffer (adjacent ones merged). */
  private select(e: EncodedEvent): { buf: Buffer; messages: number }[] {
    const n = e.messages.length;
    if (n === 0) return [];
    const f = this.filter;
    if (f.selectsAll) return [{ buf: e.buf, messages: n }];
    const out: { buf: Buffer; messages: number }[] = [];
    let runStart = -1;
    for (let i = 0; i <= n; i++) {
      const want = i < n && f.wants(e.messages[i]);
      if (want && runStart < 0) runStart = i;
      else if (!want && runStart >= 0) {
        out.push({ buf: e.buf.subarray(e.offsets[runStart], e.offsets[i]), messages: i - runStart });
        runStart = -1;
      }
    }
    return out;
  }

  /** Sends what the live window holds past our position, until the socket needs to drain. */
  flush(): void {
    if (this.state !== 'live' || !this.writable()) return;
    const window = this.host.window;
    let chunks: Buffer[] | undefined;
    let messages = 0;
    let bytes = 0;
    while (this.pos < window.end) {
      const e = window.at(this.pos);
      if (e === undefined) {
        this.pos = window.start; // cannot happen while the server keeps the window (defensive)
        continue;
      }
      if (e.seq > this.lastSeq) {
        const picked = this.select(e);
        if (picked.length > 0) {
          // Unwanted events pass freely; a wanted one waits for the socket to drain.
          if (this.socket.writableNeedDrain || bytes >= 1024 * 1024) break;
          chunks ??= [];
          for (const c of picked) {
            chunks.push(c.buf);
            messages += c.messages;
            bytes += c.buf.length;
          }
        }
        this.lastSeq = e.seq;
      }
      this.pos++;
      if (chunks && bytes >= 1024 * 1024) {
        this.writeChunks(chunks, messages, bytes);
        chunks = undefined;
        messages = 0;
        bytes = 0;
      }
    }
    if (chunks) this.writeChunks(chunks, messages, bytes);
  }

  private writeChunks(chunks: Buffer[], messages: number, bytes: number): void {
    this.socket.cork();
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
    this.messagesSent += messages;
    this.bytesSent += bytes;
    this.host.onSent(messages, bytes);
  }

  /** A text message written directly (not from the log). */
  sendText(text: string): void {
    if (!this.writable()) return;
    this.ws.send(text);
  }

  protected onClosed(): void {
    this.host.onClosed(this);
  }
}
