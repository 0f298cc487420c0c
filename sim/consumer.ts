// A minimal subscribeRepos client for the simulator's own tests and
// benchmarks: connects to one or more hosts, counts frames and (optionally)
// decodes them, and can wait for a number of frames or for the close. It is
// deliberately not the relay's ingest code, so it checks the simulator from
// the outside.
import WebSocket from 'ws';
import { decodeFrame, type Frame } from '../src/protocol/frames.ts';

export interface ReceivedFrame {
  bytes: Uint8Array;
  /** null when the frame did not decode */
  frame: Frame | null;
}

export class StreamReader {
  readonly ws: WebSocket;
  readonly frames: ReceivedFrame[] = [];
  count = 0;
  bytes = 0;
  closed = false;
  closeCode = 0;
  private waiters: (() => void)[] = [];
  readonly opened: Promise<void>;

  /** `keep: false` only counts (for throughput runs). */
  constructor(
    url: string,
    private readonly keep = true,
  ) {
    this.ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 });
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      this.count++;
      this.bytes += data.length;
      if (this.keep) {
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        let frame: Frame | null = null;
        try {
          frame = decodeFrame(bytes);
        } catch {}
        this.frames.push({ bytes, frame });
      }
      this.wake();
    });
    this.ws.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Resolves once `n` frames have arrived (or the stream closed); rejects after
   * `timeoutMs`, a safety net sized for a busy machine, not an expected time.
   */
  async waitFor(n: number, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.count < n && !this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${this.count}/${n} frames`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  async waitClosed(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for close');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The seqs of the decoded message frames received so far. */
  seqs(): number[] {
    return this.frames
      .filter((f) => f.frame?.header.op === 1 && typeof f.frame.body.seq === 'number')
      .map((f) => f.frame!.body.seq as number);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.ws.terminate();
    await this.waitClosed(2000).catch(() => {});
  }
}

/** Opens a reader on a host's subscribeRepos, with an optional cursor, and waits until it is connected. */
export async function subscribe(wsUrl: string, cursor?: number, keep = true): Promise<StreamReader> {
  const r = new StreamReader(cursor === undefined ? wsUrl : `${wsUrl}?cursor=${cursor}`, keep);
  await r.opened;
  return r;
}
