// One upstream subscription: the relay's reader for one PDS host.
//
// It dials the host's subscribeRepos with the saved cursor, gets each frame
// classified in one bounded pass by whoever owns the socket (this thread or a
// verify worker, upstream-socket.ts; frame-check.ts: header, size by type,
// body depth and items, a valid account DID, seq increasing on this
// connection) and hands events to the FrameSink. The cursor advances only
// past finished frames (CursorTracker). It never reads more than it can hold: at most
// `maxInFlight` unfinished frames plus the few parsed out of the last socket
// read (held-frames.ts, bounded; at the bound the connection is closed and
// re-read from the cursor), and at most `cursorWindow` frames past the
// cursor, so one slow frame holds the cursor but not the host's other
// frames (cursor-tracker.ts). When the sink is behind, the host is over its
// rate limit, or the shared frame budget (frame-budget.ts) is used up or this
// host holds its share, the socket is paused so TCP pushes back on the PDS;
// nothing is dropped for being too fast.
//
// Every host may be hostile (issue 12): #info frames take rate-limit tokens
// like events (only the first of a connection is logged); each bad frame is
// counted by reason and spends the host's bad-frame allowance
// (bad-frames.ts), and the one that empties it closes the connection. A
// close forced by bad frames, an error frame or an oversized message is a
// failure, and the next connection is on probation: it becomes healthy
// (failures reset) only by staying open `successAfterMs`, not by its first
// valid event, so a host mixing valid events with garbage backs off
// exponentially and ends offline. Upstream text reaches logs only as a short
// prefix read with the scanner.
//
// On a close it waits until its in-flight frames have settled (so the next
// connection's cursor is exact and nothing is handed on twice), then
// reconnects after an exponential back-off with jitter from the shared
// scheduler. Consecutive failed connections are counted in the store; the
// manager marks the host offline at the limit. A `FutureCursor` error from
// upstream makes the host idle. There is no per-host timer: back-off,
// rate-limit resumes and the start-up stagger use the shared Scheduler, and
// liveness pings come from the manager's single sweep.
//
// Exactly once. A frame whose seq is in `relayed` is already out (its events
// are in the log: learnt from the log's tail after a crash, or kept from an
// earlier connection whose cursor stopped before a refused frame); it is
// counted finished without being handed on. `logMark` is the lowest event-log
// head seen when a frame above the cursor was handed on (or carried with
// `relayed`): everything this host's frames above the cursor appended lies
// above it, which is what the manager's log checkpoint needs. A host first
// subscribed live (cursor 0) stores the cursor just before its first frame
// before handing anything on, so a crash cannot make it start live again.
import WebSocket from 'ws';
import type { Logger } from '../log.ts';
import { MAX_FRAME_BYTES } from '../protocol/events.ts';
import { BadFrameAllowance } from './bad-frames.ts';
import { CursorTracker } from './cursor-tracker.ts';
import type { BudgetClient, FrameBudget } from './frame-budget.ts';
import type { ControlBody, FrameVerdict } from './frame-check.ts';
import type { FrameSink, InboundFrame } from './frame-sink.ts';
import { type HeldFrame, HeldFrames } from './held-frames.ts';
import { assertDialable, type NodeLookup } from './host-checks.ts';
import { type CrawlTarget, subscribeUrl } from './host-policy.ts';
import type { DisconnectReason, DropReason, HostTally, IngestMetrics } from './metrics.ts';
import type { HostRateLimiter } from './rate-limiter.ts';
import { RelayedSeqs } from './relayed-seqs.ts';
import type { ScheduledJob, Scheduler } from './scheduler.ts';
import { dialOnThisThread, type UpstreamDialer, type UpstreamSocket } from './upstream-socket.ts';

/** The upstream message size limit (atproto event-stream: 5,000,000 bytes). */
export { MAX_FRAME_BYTES };

export type SubscriberState =
  | 'waiting' // scheduled to dial
  | 'connecting'
  | 'open'
  | 'draining' // socket closed, waiting for in-flight frames before deciding what next
  | 'inactive' // idle, offline or blocked: no reconnect until the manager restarts it
  | 'stopped';

/** What the subscriber asks of its manager (store writes and status decisions). */
export interface SubscriberHooks {
  /** The committed cursor advanced. */
  saveCursor(hostId: number, seq: number): void;
  /** A connection proved healthy after earlier failures. */
  succeeded(sub: HostSubscriber): void;
  /** A connection failed; resolves true when the host should be retried, false when it is now offline. */
  failed(sub: HostSubscriber, reason: string): Promise<boolean>;
  /** Upstream said FutureCursor. */
  futureCursor(sub: HostSubscriber): void;
  /** Writes a cursor now (not coalesced): the first one of a host subscribed live. */
  persistCursor(hostId: number, seq: number): Promise<void>;
}

export interface SubscriberOptions {
  hostId: number;
  target: CrawlTarget;
  cursor: number;
  failures: number;
  sink: FrameSink;
  limiter: HostRateLimiter;
  scheduler: Scheduler;
  metrics: IngestMetrics;
  hooks: SubscriberHooks;
  log: Logger;
  lookup: NodeLookup;
  allowPrivate: boolean;
  /** Who owns the socket: this thread (the default) or a socket thread (socket-threads.ts). */
  dial?: UpstreamDialer;
  /** Frames handed on and not finished, at most. */
  maxInFlight: number;
  /** Frames past the cursor (finished or not) at most: how far the host runs ahead of one slow frame (cursor-tracker.ts). */
  cursorWindow: number;
  /** Frames parsed but not yet handed on (rate limit, in-flight limit); at the bound the connection is closed. */
  maxQueuedFrames: number;
  /** Bad frames allowed per minute (burst of the same size); the one that empties the allowance disconnects. */
  badFramesPerMinute: number;
  /** The frame byte budget shared by all subscribers. */
  budget: FrameBudget;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** An open connection counts as a success after this long even without frames. */
  successAfterMs: number;
  handshakeTimeoutMs: number;
  random: () => number;
  now: () => number;
  /** The event log's durable head (marks for the log checkpoint). */
  logHead: () => number;
  /** Seqs above `cursor` the log shows already relayed (crash recovery), and their mark. */
  relayed?: { seqs: Iterable<number>; mark: number };
}

export class HostSubscriber implements BudgetClient {
  readonly hostId: number;
  readonly target: CrawlTarget;
  state: SubscriberState = 'waiting';
  /** Highest upstream seq below which every frame is finished (0: none yet). */
  cursor: number;
  failures: number;
  /** Time of the last frame or pong on the open socket, for the liveness sweep. */
  lastActivity = 0;
  pingOutstanding = false;
  openedAt = 0;
  lastError: string | undefined;
  framesHandedOn = 0;
  /** Highest upstream seq seen on any socket of this host (coverage.ts compares it with the cursor). */
  seenSeq = 0;
  /** Time of the last sequenced event read from the socket (0: none yet); coverage and the stall watchdog read it. */
  lastEventAt = 0;
  /** Sequenced events read from the socket since this subscriber was made (events/s in coverage.ts). */
  eventsSeen = 0;

  private ws: UpstreamSocket | null = null;
  /** Resolves when the current socket has closed. */
  private socketClosed: Promise<void> = Promise.resolve();
  private tracker: CursorTracker;
  private readonly held: HeldFrames;
  private unsettled = 0;
  private healthy = false;
  /** After a close forced by bad input the next connection counts as healthy only by staying open. */
  private probation = false;
  /** An #info was logged on this connection (later ones are counted as bad). */
  private infoLogged = false;
  private readonly badFrames: BadFrameAllowance;
  private job: ScheduledJob | undefined;
  private resumeJob: ScheduledJob | undefined;
  private closeReason: 'future-cursor' | 'sink-failed' | 'restart' | undefined;
  private settledWaiters: (() => void)[] = [];
  /** Seqs above the cursor already relayed: skipped when received again (see the file comment). */
  private readonly relayed = new RelayedSeqs();
  /** Log mark of the frames in `relayed` (undefined when it is empty). */
  private relayedMark: number | undefined;
  /** The first cursor of a host subscribed live is being stored: hand nothing on yet. */
  private persistingFirstCursor = false;
  /** ...or was stored already (once per subscriber). */
  private firstCursorStored = false;
  private attempts = 0;
  /** This socket is counted in the connected gauge (decremented once on close, whatever the state). */
  private countedOpen = false;
  private readonly o: SubscriberOptions;
  /** This host's frame and byte counts (metrics.ts: added to the counters when they are read). */
  private readonly tally: HostTally;

  constructor(opts: SubscriberOptions) {
    this.o = opts;
    this.hostId = opts.hostId;
    this.target = opts.target;
    this.cursor = opts.cursor;
    this.failures = opts.failures;
    this.tracker = new CursorTracker(opts.maxInFlight, opts.cursorWindow, opts.cursor);
    if (opts.relayed) {
      this.relayed.add(opts.relayed.seqs, opts.cursor);
      if (this.relayed.size > 0) this.relayedMark = opts.relayed.mark;
    }
    this.tally = opts.metrics.hostTally(opts.target.hostname);
    this.badFrames = new BadFrameAllowance(opts.badFramesPerMinute, opts.now());
    this.held = new HeldFrames(opts.budget, this, opts.maxQueuedFrames);
  }

  /** Bytes of the frames this subscriber holds (queued or in flight), charged to the frame budget. */
  get heldBytes(): number {
    return this.held.heldBytes;
  }

  /** The most bytes this subscriber has held at once. */
  get peakHeldBytes(): number {
    return this.held.peakBytes;
  }

  /** The frame budget filled up or opened again: pause or resume the socket. */
  budgetChanged(): void {
    this.updateReading();
  }

  get hostname(): string {
    return this.target.hostname;
  }

  get inFlight(): number {
    return this.unsettled;
  }

  get queued(): number {
    return this.held.queued;
  }

  /** Frames read past the cursor, finished or not (how much of the cursor window is in use). */
  get pastCursor(): number {
    return this.tracker.tracked;
  }

  get paused(): boolean {
    return this.ws?.isPaused ?? false;
  }

  get connected(): boolean {
    return this.state === 'open';
  }

  /**
   * The lowest log head seen when a frame above the cursor was handed on (or
   * carried in `relayed`); undefined when there is none. Every event appended
   * for this host's frames above the cursor has a relay seq above it.
   */
  get logMark(): number | undefined {
    const t = this.tracker.lowMark;
    if (t === undefined) return this.relayedMark;
    return this.relayedMark === undefined ? t : Math.min(t, this.relayedMark);
  }

  /** Dials after `delayMs` (0: now). Also revives an inactive subscriber. */
  start(delayMs = 0): void {
    if (this.state === 'stopped') return;
    if (this.state === 'connecting' || this.state === 'open' || this.state === 'draining') return;
    this.state = 'waiting';
    this.job?.cancel();
    this.job = this.o.scheduler.schedule(delayMs, () => {
      this.job = undefined;
      this.connect();
    });
  }

  /** Closes the socket and reconnects soon (admin reconnect); failures are not counted. */
  restart(): void {
    if (this.state === 'open' || this.state === 'connecting') {
      this.closeReason = 'restart';
      this.ws?.terminate();
    } else if (this.state !== 'draining' && this.state !== 'stopped') {
      this.start(0);
    }
  }

  /** Stops reading, closes the socket and resolves once every in-flight frame has settled. */
  stop(): Promise<void> {
    this.state = 'stopped';
    this.job?.cancel();
    this.resumeJob?.cancel();
    this.held.close();
    const ws = this.ws;
    let closed: Promise<void> = Promise.resolve();
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      closed = this.socketClosed;
      ws.pause();
      ws.terminate();
    }
    return Promise.all([closed, this.whenSettled()]).then(() => {});
  }

  /** Stops without a reconnect, but can be started again (idle, offline, blocked). */
  deactivate(): Promise<void> {
    if (this.state === 'stopped') return this.whenSettled();
    this.state = 'inactive';
    this.job?.cancel();
    this.resumeJob?.cancel();
    this.held.clear();
    this.ws?.terminate();
    return this.whenSettled();
  }

  whenSettled(): Promise<void> {
    if (this.unsettled === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  /** Called by the manager's sweep: ping quiet sockets, drop dead ones, count long-lived ones as healthy. */
  sweep(now: number, pingAfterMs: number, deadAfterMs: number): void {
    const ws = this.ws;
    if (this.state !== 'open' || !ws) return;
    if (!this.healthy && now - this.openedAt >= this.o.successAfterMs) {
      this.probation = false;
      this.markHealthy();
    }
    if (ws.isPaused) return; // our own back-pressure: pongs are not being read
    const quiet = now - this.lastActivity;
    if (quiet >= deadAfterMs) {
      this.lastError = `no data or pong for ${quiet} ms`;
      this.o.metrics.disconnects.labels('liveness').inc();
      ws.terminate();
    } else if (quiet >= pingAfterMs && !this.pingOutstanding) {
      this.pingOutstanding = true;
      ws.ping();
    }
  }

  private connect(): void {
    if (this.state !== 'waiting') return;
    const url = subscribeUrl(this.target, this.cursor);
    this.state = 'connecting';
    if (this.attempts++ > 0) this.o.metrics.reconnects.inc();
    this.healthy = false;
    this.infoLogged = false;
    this.closeReason = undefined;
    this.lastError = undefined;
    // Frames the last connection finished beyond a frame the sink refused are
    // out already: remember them so the re-read does not relay them twice.
    const ahead = this.tracker.finishedAhead().filter((seq) => seq > this.cursor);
    if (ahead.length > 0) {
      this.relayed.add(ahead, this.cursor);
      const mark = this.tracker.lowMark ?? 0;
      this.relayedMark = this.relayedMark === undefined ? mark : Math.min(this.relayedMark, mark);
    }
    this.tracker = new CursorTracker(this.o.maxInFlight, this.o.cursorWindow, this.cursor);
    let ws: UpstreamSocket | null = null;
    let socketClosed!: () => void;
    this.socketClosed = new Promise((resolve) => {
      socketClosed = resolve;
    });
    try {
      assertDialable(this.target.hostname, this.o.allowPrivate);
      ws = (this.o.dial ?? dialOnThisThread)(
        {
          url,
          handshakeTimeoutMs: this.o.handshakeTimeoutMs,
          lookup: this.o.lookup,
        },
        {
          open: () => {
            if (this.ws !== ws || ws === null) return;
            this.state = 'open';
            this.openedAt = this.o.now();
            this.lastActivity = this.openedAt;
            this.countedOpen = true;
            this.o.metrics.connected.inc();
            this.o.log.debug({ host: this.hostname, cursor: this.cursor }, 'host connected');
            // the frame budget may be used up already: then not a single frame is read yet
            this.updateReading();
          },
          frame: (verdict, frame, bytes, inPlace) => {
            if (ws !== null) this.onFrame(ws, verdict, frame, bytes, inPlace);
          },
          pong: () => {
            this.pingOutstanding = false;
            this.lastActivity = this.o.now();
          },
          error: (code, message) => {
            if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
              // `ws` closes the connection itself (1009); the next one re-reads from the cursor
              this.drop('too-large');
              this.forcedClose('too-large');
            }
            this.lastError = message;
          },
          close: (code) => {
            socketClosed();
            if (this.ws !== ws) return;
            this.ws = null;
            if (this.countedOpen) {
              this.countedOpen = false;
              this.o.metrics.connected.dec();
            }
            this.held.clear(); // never handed on: the next connection re-reads them from the cursor
            this.resumeJob?.cancel();
            this.resumeJob = undefined;
            if (this.state === 'stopped' || this.state === 'inactive') return;
            this.lastError ??= `closed with code ${code}`;
            this.state = 'draining';
            this.whenSettled().then(() => this.afterClose());
          },
        },
      );
    } catch (err) {
      socketClosed();
      this.lastError = (err as Error).message;
      this.state = 'draining';
      this.afterClose();
      return;
    }
    this.ws = ws;
  }

  private afterClose(): void {
    if (this.state !== 'draining') return;
    const reason = this.closeReason;
    if (reason === 'future-cursor') {
      this.state = 'inactive';
      this.o.hooks.futureCursor(this);
      return;
    }
    if (this.healthy || reason === 'restart') {
      this.state = 'waiting';
      this.start(reason === 'restart' ? 0 : this.backoff(0));
      return;
    }
    this.failures++;
    this.o.hooks.failed(this, this.lastError ?? 'connection failed').then(
      (retry) => {
        if (this.state !== 'draining') return;
        if (!retry) {
          this.state = 'inactive';
          return;
        }
        this.state = 'waiting';
        this.start(this.backoff(this.failures));
      },
      () => {
        if (this.state !== 'draining') return;
        this.state = 'waiting';
        this.start(this.backoff(this.failures));
      },
    );
  }

  /** Exponential back-off with "equal jitter": between half and all of base × 2^failures, capped. */
  private backoff(failures: number): number {
    const exp = Math.min(this.o.backoffMaxMs, this.o.backoffBaseMs * 2 ** Math.min(failures, 30));
    return Math.round(exp / 2 + (this.o.random() * exp) / 2);
  }

  private markHealthy(): void {
    this.healthy = true;
    if (this.failures > 0) {
      this.failures = 0;
      this.o.hooks.succeeded(this);
    }
  }

  private drop(reason: DropReason): void {
    this.o.metrics.dropped.labels(reason).inc();
  }

  /**
   * A bad frame: counted by reason, and one token from the bad-frame
   * allowance; the frame that empties it closes the connection.
   */
  private bad(ws: UpstreamSocket, reason: DropReason): void {
    this.drop(reason);
    if (this.badFrames.spend(this.o.now())) {
      this.o.log.warn({ host: this.hostname, last: reason }, 'host sent too many bad frames; disconnecting');
      this.forcedClose('bad-frames');
      this.lastError = `too many bad frames (last: ${reason})`;
      ws.terminate();
    }
  }

  /** Ingest closes the connection for bad input: counted, a failure, and the next connection is on probation. */
  private forcedClose(reason: DisconnectReason): void {
    this.o.metrics.disconnects.labels(reason).inc();
    this.healthy = false;
    this.probation = true;
  }

  private onFrame(
    ws: UpstreamSocket,
    verdict: FrameVerdict,
    frame: Uint8Array | undefined,
    bytes: number,
    inPlace: unknown,
  ): void {
    if (this.ws !== ws || this.state !== 'open' || ws.readyState !== WebSocket.OPEN) return;
    const now = this.o.now();
    this.lastActivity = now;
    this.pingOutstanding = false;
    this.tally.frames++;
    this.tally.bytes += bytes;
    if (verdict.kind === 'error') {
      this.onErrorFrame(ws, verdict.error);
      return;
    }
    if (verdict.label !== undefined) this.o.metrics.frameOfType(verdict.label);
    if (verdict.kind === 'bad') {
      this.bad(ws, verdict.reason);
    } else if (verdict.kind === 'info') {
      this.enqueue(ws, { info: verdict.info, bytes: 0 });
    } else if (frame !== undefined) {
      this.lastEventAt = now;
      this.eventsSeen++;
      if (verdict.seq > this.seenSeq) this.seenSeq = verdict.seq;
      if (!this.healthy && !this.probation) this.markHealthy();
      if (this.cursor === 0 && !this.firstCursorStored) {
        // the first frame of a host subscribed live (a seq of 1 leaves nothing before it to store)
        if (verdict.seq > 1) this.persistFirstCursor(verdict.seq - 1);
        else this.firstCursorStored = true;
      }
      const event: InboundFrame = {
        hostId: this.hostId,
        hostname: this.hostname,
        upstreamSeq: verdict.seq,
        type: verdict.type,
        frame,
        did: verdict.did,
        seqSpan: verdict.seqSpan,
        owned: true,
        receivedAt: performance.now(),
        inPlace,
        learner: ws.learner,
      };
      this.enqueue(ws, { event, bytes: frame.byteLength });
    }
  }

  private enqueue(ws: UpstreamSocket, frame: HeldFrame): void {
    if (!this.held.push(frame)) {
      // at the queue's bound (see held-frames.ts): the cursor is before these frames
      this.o.metrics.disconnects.labels('queue-full').inc();
      this.healthy = false;
      this.lastError = `more than ${this.o.maxQueuedFrames} frames queued`;
      ws.terminate();
      return;
    }
    this.pump();
  }

  /** An #info frame's turn came (it took a rate-limit token): the first of a connection is logged. */
  private onInfo(info: ControlBody): void {
    const ws = this.ws;
    if (this.infoLogged) {
      if (ws) this.bad(ws, 'repeated-info');
      return;
    }
    this.infoLogged = true;
    this.o.log.info({ host: this.hostname, name: info.name, message: info.message }, 'upstream #info');
  }

  private onErrorFrame(ws: UpstreamSocket, body: ControlBody): void {
    this.drop('error-frame');
    // an error frame we cannot read is still an error: reconnect
    const error = body.name ?? 'unknown';
    if (error === 'FutureCursor') {
      this.closeReason = 'future-cursor';
      this.o.metrics.disconnects.labels('future-cursor').inc();
      this.o.log.warn({ host: this.hostname, cursor: this.cursor }, 'upstream says FutureCursor; host idle');
    } else {
      this.forcedClose('error-frame');
      this.o.log.warn({ host: this.hostname, error, message: body.message }, 'upstream error frame');
    }
    this.lastError = `upstream error ${error}`;
    ws.terminate();
  }

  /** A host subscribed live: store the cursor before its first frame, then start handing frames on. */
  private persistFirstCursor(seq: number): void {
    this.persistingFirstCursor = true;
    this.firstCursorStored = true;
    const ws = this.ws;
    this.o.hooks.persistCursor(this.hostId, seq).then(
      () => {
        this.persistingFirstCursor = false;
        if (seq > this.cursor) {
          this.cursor = seq;
          if (this.tracker.tracked === 0) this.tracker.committed = seq;
        }
        this.pump();
      },
      (err: unknown) => {
        this.persistingFirstCursor = false;
        this.firstCursorStored = false;
        this.o.log.warn({ host: this.hostname, err }, 'could not store the first cursor; reconnecting');
        if (this.ws === ws && this.state === 'open') {
          this.lastError = 'could not store the first cursor';
          ws?.terminate();
        }
      },
    );
  }

  /** Hands queued frames on while in-flight room and rate tokens last; pauses the socket otherwise. */
  private pump(): void {
    const ws = this.ws;
    while (this.held.queued > 0 && this.state === 'open') {
      if (!ws || ws.readyState !== WebSocket.OPEN) break; // closing: the close handler clears the queue
      if (this.persistingFirstCursor) break;
      if (this.tracker.full) break;
      const first = this.held.peek();
      if (first?.event && this.relayed.size > 0 && this.relayed.has(first.event.upstreamSeq)) {
        this.held.shift();
        this.held.finished(first.bytes);
        this.skipRelayed(first.event);
        continue;
      }
      if (this.resumeJob) break;
      const wait = this.o.limiter.take(this.o.now());
      if (wait > 0) {
        this.o.metrics.throttled.inc();
        this.resumeJob = this.o.scheduler.schedule(wait, () => {
          this.resumeJob = undefined;
          this.pump();
        });
        break;
      }
      const next = this.held.shift()!;
      if (next.event) this.submit(next.event, next.bytes);
      else if (next.info) this.onInfo(next.info);
    }
    if (ws === this.ws) this.updateReading();
  }

  /** Pauses the socket while frames wait, the in-flight limit is reached or the frame budget says no; resumes it otherwise. */
  private updateReading(): void {
    const ws = this.ws;
    if (!ws || this.state !== 'open') return;
    const hold = this.held.queued > 0 || this.tracker.full || !this.held.mayRead();
    if (hold && !ws.isPaused) ws.pause();
    else if (!hold && ws.isPaused) ws.resume();
  }

  /** A frame the log shows already relayed: finished at once, never handed on. */
  private skipRelayed(frame: InboundFrame): void {
    this.relayed.delete(frame.upstreamSeq);
    this.o.metrics.alreadyRelayed.inc();
    const ticket = this.tracker.submit(frame.upstreamSeq, this.o.logHead());
    this.finished(this.tracker, ticket);
  }

  /** Marks a ticket finished and moves (and saves) the cursor when it advanced. */
  private finished(tracker: CursorTracker, ticket: number): void {
    const advanced = tracker.finish(ticket);
    if (advanced !== undefined && tracker === this.tracker && advanced > this.cursor) {
      this.cursor = advanced;
      this.o.hooks.saveCursor(this.hostId, advanced);
      if (this.relayed.size > 0) this.relayed.dropThrough(advanced);
      if (this.relayed.size === 0) this.relayedMark = undefined;
    }
  }

  private submit(frame: InboundFrame, bytes: number): void {
    const tracker = this.tracker;
    const ticket = tracker.submit(frame.upstreamSeq, this.o.logHead());
    this.unsettled++;
    this.framesHandedOn++;
    let p: Promise<void>;
    try {
      p = this.o.sink.submit(frame);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      () => {
        this.held.finished(bytes);
        this.finished(tracker, ticket);
        this.settled();
      },
      (err: unknown) => {
        this.held.finished(bytes);
        // Not finished: the cursor stays before this frame; reconnect re-reads it.
        this.o.log.warn({ host: this.hostname, seq: frame.upstreamSeq, err }, 'frame sink refused a frame');
        if (this.ws && this.state === 'open') {
          this.o.metrics.disconnects.labels('sink-refused').inc();
          this.closeReason ??= 'sink-failed';
          this.lastError = 'frame sink refused a frame';
          this.ws.terminate();
        }
        this.settled();
      },
    );
  }

  private settled(): void {
    this.unsettled--;
    if (this.unsettled === 0 && this.settledWaiters.length > 0) {
      const waiters = this.settledWaiters;
      this.settledWaiters = [];
      for (const w of waiters) w();
    }
    if (this.state === 'open') this.pump();
  }
}
