// The connection lifecycle every streaming WebSocket endpoint shares (the
// firehose's Consumer, /subscribe's Subscriber): liveness from pongs (the
// server's ping round drops a connection whose `alive` is still false),
// write back-pressure (`drained()` resolves once the socket buffer has room,
// and a drain flushes what waits), and closing (a close frame with a grace
// period before the socket is destroyed; `terminate` at once). Whatever way
// it ends — our close, the peer's, an error — `onClosed` runs exactly once
// and a pending `drained()` resolves, so a replay loop waiting on it stops.
// What is sent, and when, is the subclass's: `flush` and its phases.
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
