// Shared pieces for the ingest integration tests: a FrameSink that records
// what it is handed (with an optional delay and failure switch), a
// loopback-only configuration, and a scripted upstream (a loopback WebSocket
// server that sends exactly the frames a test lists, through `ws` or as one
// raw socket write). Their throwaway metadata stores come from temp.ts.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import type { FrameSink, InboundFrame } from '../../src/ingest/frame-sink.ts';
import type { IngestConfig } from '../../src/ingest/ingest-config.ts';

export class RecordingSink implements FrameSink {
  /** Finished upstream seqs per host id, in finishing order. */
  readonly seqs = new Map<number, number[]>();
  count = 0;
  inFlight = 0;
  maxInFlight = 0;
  /** Bytes of the frames inside submit() now, and the most seen at once. */
  bytesInFlight = 0;
  maxBytesInFlight = 0;
  keepFrames = false;
  readonly frames: InboundFrame[] = [];
  /** Milliseconds to hold each frame (0: resolve on the next microtask). */
  delay: (f: InboundFrame) => number = () => 0;
  /** Return true to reject the frame (the sink refused it). */
  fail: (f: InboundFrame) => boolean = () => false;

  async submit(f: InboundFrame): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.bytesInFlight += f.frame.length;
    this.maxBytesInFlight = Math.max(this.maxBytesInFlight, this.bytesInFlight);
    try {
      const d = this.delay(f);
      if (d > 0) await new Promise((r) => setTimeout(r, d));
      if (this.fail(f)) throw new Error('sink refused');
      let list = this.seqs.get(f.hostId);
      if (!list) {
        list = [];
        this.seqs.set(f.hostId, list);
      }
      list.push(f.upstreamSeq);
      if (this.keepFrames) this.frames.push(f);
      this.count++;
    } finally {
      this.inFlight--;
      this.bytesInFlight -= f.frame.length;
    }
  }

  sorted(hostId: number): number[] {
    return [...(this.seqs.get(hostId) ?? [])].sort((a, b) => a - b);
  }
}

/** Loopback-only test configuration with short back-off and sweep periods. */
export function testConfig(over: Partial<IngestConfig> = {}): IngestConfig {
  return {
    allowInsecureHosts: true,
    upstream: undefined,
    bootstrapHosts: false,
    newHostsPerDay: 50,
    hostMaxFailures: 15,
    hostConnectsPerSecond: 1000,
    hostMaxInFlight: 8,
    hostCursorWindow: 8192,
    hostBadFramesPerMinute: 20,
    ingestFrameBudgetMb: 256,
    hostRatePerSecond: 100_000,
    hostRatePerHour: 100_000_000,
    hostRatePerDay: 1_000_000_000,
    trustedDomains: '',
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    successAfterMs: 2_000,
    sweepIntervalMs: 100,
    pingAfterMs: 1_000,
    deadAfterMs: 5_000,
    handshakeTimeoutMs: 2_000,
    describeTimeoutMs: 2_000,
    ...over,
  };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

/** What a scripted upstream does on one subscribeRepos connection. */
export type UpstreamScript =
  /** Drive the socket through `ws` (send frames, close, …). */
  | ((ws: WebSocket) => void)
  /** Answer the upgrade by hand and write these binary messages in the same socket write as the 101. */
  | { raw: Uint8Array[] };

export interface ScriptedPds {
  hostname: string;
  /** The cursor of each connection, in order (null: none). */
  cursors: (string | null)[];
  close(): Promise<void>;
}

/** One unmasked, final, binary WebSocket frame (server to client). */
function wsBinaryFrame(payload: Uint8Array): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x82, n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (n >= 126 && n < 65536) {
    head[0] = 0x82;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else if (n >= 65536) {
    head[0] = 0x82;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

/**
 * A loopback PDS that answers describeServer and runs the next script on each
 * subscribeRepos connection (none left: the socket stays open, silent).
 */
export async function scriptedPds(scripts: UpstreamScript[]): Promise<ScriptedPds> {
  const wss = new WebSocketServer({ noServer: true });
  const cursors: (string | null)[] = [];
  const rawSockets = new Set<import('node:stream').Duplex>();
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ did: 'did:web:x' }));
  });
  server.on('upgrade', (req, socket, head) => {
    cursors.push(new URL(req.url ?? '/', 'http://x').searchParams.get('cursor'));
    const script = scripts.shift();
    if (script && typeof script === 'object') {
      const accept = createHash('sha1')
        .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
        .digest('base64');
      rawSockets.add(socket);
      socket.on('close', () => rawSockets.delete(socket));
      socket.on('error', () => {});
      socket.write(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
          ),
          ...script.raw.map(wsBinaryFrame),
        ]),
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => (script ? script(ws) : undefined));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    hostname: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    cursors,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      for (const s of rawSockets) s.destroy();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
