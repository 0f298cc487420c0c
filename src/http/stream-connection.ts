// The connection lifecycle every streaming WebSocket endpoint shares (the
// firehose's Consumer, /subscribe's Subscriber): liveness from pongs (the
// server's ping round drops a connection whose `alive` is still false),
// write back-pressure (`drained()` resolves once the socket buffer has room,
// and a drain flushes what waits), and closing (a close frame with a grace
// period before the socket is destroyed; `terminate` at once). Whatever way
// it ends — our close, the peer's, an error — `onClosed` runs exactly once
// and a pending `drained()` resolves, so a replay loop waiting on it stops.
// What is sent, and when, is the subclass's: `flush` and its phases.
// LiveStreamConnection adds what both streams share past replay: the cutover
// step, the position in the live window and what waits there.
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** Time a closing connection gets to finish the close handshake before its socket is destroyed. */
const CLOSE_GRACE_MS = 2000;

export abstract class StreamConnection<State extends string> {
  /** The phase; 'closed' once ended (set here, never left). */
  abstract state: State | 'closed';
  /** False from a ping until its pong: still false at the next ping, the connection is dropped. */
  alive = true;
  readonly connectedAt = new Date();
  private drainWaiter?: () => void;
  private killTimer?: NodeJS.Timeout;

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    readonly socket: Duplex,
    readonly remoteAddress: string,
    readonly userAgent: string | undefined,
    readonly cursor: number | undefined,
  ) {
    socket.on('drain', () => this.onDrain());
    ws.on('pong', () => {
      this.alive = true;
    });
    ws.on('error', () => this.terminate());
    ws.on('close', () => {
      if (this.killTimer) clearTimeout(this.killTimer);
      this.closed();
    });
  }

  /** Writes what waits, if the phase and the socket allow (called again on every drain). */
  abstract flush(): void;

  /** Runs once when the connection ends (the host forgets it). */
  protected abstract onClosed(): void;

  /** A method, not a field test, so TypeScript does not narrow it across awaits. */
  isClosed(): boolean {
    return this.state === 'closed';
  }

  /** Closed, or closing (e.g. the peer sent a close frame): stop producing. */
  gone(): boolean {
    return this.isClosed() || !this.writable();
  }

  protected writable(): boolean {
    return this.ws.readyState === this.ws.OPEN && !this.socket.destroyed;
  }

  /**
   * One liveness round for this connection (the server runs one every ping
   * interval): a connection that has not answered the previous round's ping
   * is terminated (returns false); any other is pinged and must answer before
   * the next round.
   */
  pingRound(): boolean {
    if (!this.alive) {
      this.terminate();
      return false;
    }
    this.alive = false;
    try {
      this.ws.ping();
    } catch {
      this.terminate();
    }
    return true;
  }

  /** Resolves once the socket has drained (at once if it need not) or the connection closed. */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.state === 'closed') return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiter = resolve;
    });
  }

  private onDrain(): void {
    const w = this.drainWaiter;
    this.drainWaiter = undefined;
    w?.();
    this.flush();
  }

  /** Closes with `code` and `reason`; force-closes after a grace period. */
  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.closed();
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    this.killTimer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.killTimer.unref();
  }

  terminate(): void {
    this.closed();
    this.ws.terminate();
  }

  private closed(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    const w = this.drainWaiter;
    this.drainWaiter = undefined;
    w?.();
    this.onClosed();
  }
}

/** What a live connection reads from: the stream's shared window of recent events, by absolute index. */
export interface LiveWindowView {
  /** Absolute index one past the newest event held. */
  readonly end: number;
  /** Bytes held from absolute index `pos` to the end. */
  bytesFrom(pos: number): number;
}

/**
 * A StreamConnection that follows the event log (followLog: replay → cutover
 * → live) and then reads the stream's shared live window: the cutover step,
 * the live position and what waits for the connection in the window are the
 * same for every stream; what it sends from the window is the subclass's.
 */
export abstract class LiveStreamConnection<State extends string> extends StreamConnection<
  State | 'cutover' | 'live'
> {
  /** Absolute index into the live window of the next event to consider (cutover/live). */
  pos = 0;

  /** The stream's live window. */
  protected abstract get window(): LiveWindowView;

  /** Registers with the stream so that broadcasts reach this connection. */
  protected abstract enterLive(): void;

  /** Cutover: the live position is the window's end from now on (followLog takes the log head with it). */
  startCutover(): void {
    this.pos = this.window.end;
    this.state = 'cutover';
    this.enterLive();
  }

  /** Caught up with the log up to the cutover target: send from the window from now on. */
  goLive(): void {
    this.state = 'live';
    this.flush();
  }

  /** Events waiting in the live window for this connection. */
  outboxEvents(): number {
    return this.state === 'live' || this.state === 'cutover' ? this.window.end - this.pos : 0;
  }

  /** Bytes waiting: its share of the live window (before any filter) plus the socket buffer. */
  outboxBytes(): number {
    const queued = this.state === 'live' || this.state === 'cutover' ? this.window.bytesFrom(this.pos) : 0;
    return queued + this.socket.writableLength;
  }
}
