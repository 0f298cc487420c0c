// One upstream subscription: the relay's reader for one PDS host.
//
// It dials the host's subscribeRepos with the saved cursor, checks each frame
// cheaply (size, header, message type, seq strictly increasing on this
// connection) and hands known events to the FrameSink. The cursor advances
// only past finished frames (CursorTracker), and the subscriber never reads
// more than it can hold: at most `maxInFlight` unfinished frames plus the
// few already parsed out of the last socket chunk. When the sink is behind,
// or the host is over its rate limit, the socket is paused so TCP pushes
// back on the PDS; nothing is dropped for being too fast.
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
import { decodeCborFirst } from '../protocol/cbor.ts';
import { CursorTracker } from './cursor-tracker.ts';
import { checkFrame } from './frame-check.ts';
import type { FrameSink, InboundFrame } from './frame-sink.ts';
import { assertDialable, type NodeLookup } from './host-checks.ts';
import { type CrawlTarget, subscribeUrl } from './host-policy.ts';
import type { DropReason, IngestMetrics } from './metrics.ts';
import type { HostRateLimiter } from './rate-limiter.ts';
import type { ScheduledJob, Scheduler } from './scheduler.ts';

/** The upstream message size limit (atproto event-stream: 5,000,000 bytes). */
export const MAX_FRAME_BYTES = 5_000_000;

export const CURRENT_TYPES: ReadonlySet<string> = new Set(['#commit', '#sync', '#identity', '#account']);
export const DEPRECATED_TYPES: ReadonlySet<string> = new Set(['#handle', '#migrate', '#tombstone']);

/** Upstream text for logs, capped (a frame may be megabytes). */
function short(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  return v.length > 200 ? `${v.slice(0, 200)}…` : v;
}

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
  maxInFlight: number;
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

export class HostSubscriber {
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

  private ws: WebSocket | null = null;
  private tracker: CursorTracker;
  private queue: InboundFrame[] = [];
  private unsettled = 0;
  private lastSeq = -1;
  private healthy = false;
  private job: ScheduledJob | undefined;
  private resumeJob: ScheduledJob | undefined;
  private closeReason: 'future-cursor' | 'sink-failed' | 'restart' | undefined;
  private settledWaiters: (() => void)[] = [];
  /** Seqs above the cursor already relayed: skipped when received again (see the file comment). */
  private readonly relayed = new Set<number>();
  /** Log mark of the frames in `relayed` (undefined when it is empty). */
  private relayedMark: number | undefined;
  /** The first cursor of a host subscribed live is being stored: hand nothing on yet. */
  private persistingFirstCursor = false;
  private attempts = 0;
  /** This socket is counted in the connected gauge (decremented once on close, whatever the state). */
  private countedOpen = false;
  private readonly o: SubscriberOptions;
  private readonly frames;
  private readonly bytes;

  constructor(opts: SubscriberOptions) {
    this.o = opts;
    this.hostId = opts.hostId;
    this.target = opts.target;
    this.cursor = opts.cursor;
    this.failures = opts.failures;
    this.tracker = new CursorTracker(opts.maxInFlight, opts.cursor);
    if (opts.relayed) {
      for (const seq of opts.relayed.seqs) if (seq > opts.cursor) this.relayed.add(seq);
      if (this.relayed.size > 0) this.relayedMark = opts.relayed.mark;
    }
    this.frames = opts.metrics.framesByHost.labels(opts.target.hostname);
    this.bytes = opts.metrics.bytesByHost.labels(opts.target.hostname);
  }

  get hostname(): string {
    return this.target.hostname;
  }

  get inFlight(): number {
    return this.unsettled;
  }

  get queued(): number {
    return this.queue.length;
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
    this.queue = [];
    const ws = this.ws;
    let closed: Promise<void> = Promise.resolve();
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      closed = new Promise((resolve) => ws.once('close', () => resolve()));
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
    this.queue = [];
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
    if (!this.healthy && now - this.openedAt >= this.o.successAfterMs) this.markHealthy();
    if (ws.isPaused) return; // our own back-pressure: pongs are not being read
    const quiet = now - this.lastActivity;
    if (quiet >= deadAfterMs) {
      this.lastError = `no data or pong for ${quiet} ms`;
      ws.terminate();
    } else if (quiet >= pingAfterMs && !this.pingOutstanding) {
      this.pingOutstanding = true;
      try {
        ws.ping();
      } catch {
        // closing already
      }
    }
  }

  private connect(): void {
    if (this.state !== 'waiting') return;
    const url = subscribeUrl(this.target, this.cursor);
    this.state = 'connecting';
    if (this.attempts++ > 0) this.o.metrics.reconnects.inc();
    this.lastSeq = -1;
    this.healthy = false;
    this.closeReason = undefined;
    this.lastError = undefined;
    // Frames the last connection finished beyond a frame the sink refused are
    // out already: remember them so the re-read does not relay them twice.
    const ahead = this.tracker.finishedAhead().filter((seq) => seq > this.cursor);
    if (ahead.length > 0) {
      for (const seq of ahead) this.relayed.add(seq);
      const mark = this.tracker.lowMark ?? 0;
      this.relayedMark = this.relayedMark === undefined ? mark : Math.min(this.relayedMark, mark);
    }
    this.tracker = new CursorTracker(this.o.maxInFlight, this.cursor);
    let ws: WebSocket;
    try {
      assertDialable(this.target.hostname, this.o.allowPrivate);
      ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: MAX_FRAME_BYTES,
        skipUTF8Validation: true,
        handshakeTimeout: this.o.handshakeTimeoutMs,
        followRedirects: false,
        lookup: this.o.lookup,
        headers: { 'user-agent': 'atrelay' },
      } as WebSocket.ClientOptions);
    } catch (err) {
      this.lastError = (err as Error).message;
      this.state = 'draining';
      this.afterClose();
      return;
    }
    this.ws = ws;
    ws.on('open', () => {
      if (this.ws !== ws) return;
      this.state = 'open';
      this.openedAt = this.o.now();
      this.lastActivity = this.openedAt;
      this.countedOpen = true;
      this.o.metrics.connected.inc();
      this.o.log.debug({ host: this.hostname, cursor: this.cursor }, 'host connected');
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(ws, data, isBinary));
    ws.on('pong', () => {
      this.pingOutstanding = false;
      this.lastActivity = this.o.now();
    });
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.drop('too-large');
      this.lastError = err.message;
    });
    ws.on('close', (code: number) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.countedOpen) {
        this.countedOpen = false;
        this.o.metrics.connected.dec();
      }
      this.queue = []; // never handed on: the next connection re-reads them from the cursor
      this.resumeJob?.cancel();
      this.resumeJob = undefined;
      if (this.state === 'stopped' || this.state === 'inactive') return;
      this.lastError ??= `closed with code ${code}`;
      this.state = 'draining';
      this.whenSettled().then(() => this.afterClose());
    });
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

  private onMessage(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (this.ws !== ws || this.state !== 'open') return;
    const now = this.o.now();
    this.lastActivity = now;
    this.pingOutstanding = false;
    this.frames.inc();
    this.bytes.inc(data.length);
    if (!isBinary) {
      this.drop('not-binary');
      return;
    }
    if (data.length > MAX_FRAME_BYTES) {
      this.drop('too-large');
      return;
    }
    const checked = checkFrame(data);
    if (!checked.ok) {
      this.drop('malformed');
      return;
    }
    const rest = data.subarray(checked.bodyStart);
    if (checked.op === -1) {
      this.onErrorFrame(ws, rest);
      return;
    }
    const type = checked.t;
    // upstream chooses `t`: only known names become label values, so a host cannot grow the series
    const known = CURRENT_TYPES.has(type) || DEPRECATED_TYPES.has(type) || type === '#info';
    this.o.metrics.framesByType.labels(known ? type : 'other').inc();
    if (CURRENT_TYPES.has(type)) {
      const seq = checked.seq;
      if (seq === undefined) {
        this.drop('no-seq');
        return;
      }
      if (seq <= this.lastSeq) {
        this.drop('seq-not-increasing');
        return;
      }
      this.lastSeq = seq;
      if (!this.healthy) this.markHealthy();
      if (this.cursor === 0 && !this.persistingFirstCursor) this.persistFirstCursor(seq - 1);
      this.queue.push({
        hostId: this.hostId,
        hostname: this.hostname,
        upstreamSeq: seq,
        type,
        frame: data,
        receivedAt: performance.now(),
      });
      this.pump();
      return;
    }
    if (type === '#info') {
      let info: { name?: unknown; message?: unknown } = {};
      try {
        info = decodeCborFirst(rest)[0] as typeof info;
      } catch {
        this.drop('malformed');
        return;
      }
      this.o.log.info(
        { host: this.hostname, name: short(info?.name), message: short(info?.message) },
        'upstream #info',
      );
      return;
    }
    if (DEPRECATED_TYPES.has(type)) {
      this.drop('deprecated-type');
      return;
    }
    this.drop('unknown-type');
    return;
  }

  private onErrorFrame(ws: WebSocket, rest: Uint8Array): void {
    this.drop('error-frame');
    let body: { error?: unknown; message?: unknown } = {};
    try {
      body = decodeCborFirst(rest)[0] as typeof body;
    } catch {
      // an error frame we cannot read is still an error: reconnect
    }
    const error = typeof body?.error === 'string' ? body.error : 'unknown';
    if (error === 'FutureCursor') {
      this.closeReason = 'future-cursor';
      this.o.log.warn({ host: this.hostname, cursor: this.cursor }, 'upstream says FutureCursor; host idle');
    } else {
      this.o.log.warn(
        { host: this.hostname, error: short(error), message: short(body?.message) },
        'upstream error frame',
      );
    }
    this.lastError = `upstream error ${error}`;
    ws.terminate();
  }

  /** A host subscribed live: store the cursor before its first frame, then start handing frames on. */
  private persistFirstCursor(seq: number): void {
    this.persistingFirstCursor = true;
    const ws = this.ws;
    this.o.hooks.persistCursor(this.hostId, seq).then(
      () => {
        this.persistingFirstCursor = false;
        if (seq > this.cursor) {
          this.cursor = seq;
          if (this.tracker.inFlight === 0) this.tracker.committed = seq;
        }
        this.pump();
      },
      (err: unknown) => {
        this.persistingFirstCursor = false;
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
    while (this.queue.length > 0 && this.state === 'open') {
      if (this.persistingFirstCursor) break;
      if (this.tracker.full) break;
      if (this.relayed.size > 0 && this.relayed.has(this.queue[0].upstreamSeq)) {
        this.skipRelayed(this.queue.shift()!);
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
      this.submit(this.queue.shift()!);
    }
    if (!ws || this.state !== 'open') return;
    const hold = this.queue.length > 0 || this.tracker.full;
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
      if (this.relayed.size > 0) {
        for (const seq of this.relayed) if (seq <= advanced) this.relayed.delete(seq);
      }
      if (this.relayed.size === 0) this.relayedMark = undefined;
    }
  }

  private submit(frame: InboundFrame): void {
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
        this.finished(tracker, ticket);
        this.settled();
      },
      (err: unknown) => {
        // Not finished: the cursor stays before this frame; reconnect re-reads it.
        this.o.log.warn({ host: this.hostname, seq: frame.upstreamSeq, err }, 'frame sink refused a frame');
        if (this.ws && this.state === 'open') {
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
