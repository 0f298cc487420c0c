// The Jetstream-compatible JSON stream: `GET /subscribe` over WebSocket on
// the public port, served from the relay's own log (docs/jetstream.md).
// Takes HTTP upgrades for its path (the relay's UpgradeGuard hands them over
// after the firehose passes), applies the same kind of limits as the CBOR
// firehose (subscribers in total and per client network through its own
// WsAdmission, src/http/ws-admission.ts; an outbox limit per subscriber,
// ping/pong), parses the Jetstream query (filter.ts), places
// a time_us cursor with the log's time index, and runs one Subscriber per
// connection (subscriber.ts: replay → cutover → live).
//
// Durable events arrive from the committed-event stream; while at least one
// subscriber is live they are encoded once into their JSON messages
// (encode.ts) and pushed into the shared window (window.ts); with no live
// subscriber nothing is encoded. Each live subscriber then selects from the
// window what its filter wants. A subscriber whose backlog passes its limits
// is closed with 1008 "ConsumerTooSlow".
//
// Compression (compress=true, Socket-Encoding: zstd) is refused with a 400
// rather than ignored: a client asking for it would try to decompress plain
// text (docs/jetstream.md says why it is not offered).
//
// From the subscriber the server accepts Jetstream's `options_update`
// messages (a new filter; with `requireHello=true` nothing is sent before
// the first one); other message types are ignored, a bad update closes the
// connection, as in Jetstream.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import type { EventLog, LogRecord } from '../eventlog/types.ts';
import { socketAddress } from '../http/client-address.ts';
import { parseRequestTarget } from '../http/request-target.ts';
import { refuseUpgrade } from '../http/response.ts';
import { WsAdmission } from '../http/ws-admission.ts';
import { type Logger, silentLogger } from '../log.ts';
import { type EncodedEvent, type EncodeSkip, encodeEvent } from './encode.ts';
import { FilterError, parseOptionsUpdate, parseSubscribeQuery, type SubscribeQuery } from './filter.ts';
import { Subscriber, type SubscriberHost, type SubscriberInfo } from './subscriber.ts';
import { JsonWindow } from './window.ts';

export const JETSTREAM_PATH = '/subscribe';

export interface JetstreamOptions {
  log: EventLog;
  /** Where durable events arrive (the committed-event stream); default: the log itself. */
  events?: { subscribe(name: string, listener: (records: readonly LogRecord[]) => void): () => void };
  /** Subscribers allowed at once (default 1,000). */
  maxSubscribers?: number;
  /** Subscribers per client network (IPv4 address or IPv6 /64; default 20). */
  maxSubscribersPerIp?: number;
  /** Outbox limit per subscriber in bytes: unsent window share + socket buffer (default 32 MiB). */
  outboxMaxBytes?: number;
  /** Outbox limit per subscriber in events (default 50,000). */
  outboxMaxEvents?: number;
  /** Ping interval; a peer that did not pong since the previous ping is dropped (default 30 s). */
  pingIntervalMs?: number;
  /** Bytes per log read during replay (default 1 MiB). */
  replayBatchBytes?: number;
  /** Replay hands over to live within this many events of the head (default 1,000). */
  cutoverLagEvents?: number;
  /** Largest message accepted from a subscriber (default 1 MiB: an options_update with 10,000 DIDs fits). */
  maxPayload?: number;
  clientAddress?: (req: IncomingMessage) => string;
  registry?: Registry;
  logger?: Logger;
}

interface Metrics {
  drops: Counter<'reason'>;
  rejected: Counter<'reason'>;
  messagesSent: Counter;
  bytesSent: Counter;
  skipped: Counter<'reason'>;
  encodeSeconds: Counter;
  encodedEvents: Counter;
}

export class JetstreamServer {
  readonly window = new JsonWindow();
  private readonly log: EventLog;
  private readonly wss: WebSocketServer;
  private readonly subscribers = new Map<number, Subscriber>();
  private readonly live = new Set<Subscriber>();
  /** Shutdown and the subscriber limits (total, per client network). */
  private readonly admission: WsAdmission;
  private readonly unsubscribe: () => void;
  private readonly pingTimer?: NodeJS.Timeout;
  private readonly logger: Logger;
  private readonly metrics?: Metrics;
  private readonly host: SubscriberHost;
  private readonly outboxMaxBytes: number;
  private readonly outboxMaxEvents: number;
  private readonly clientAddress: (req: IncomingMessage) => string;
  private nextId = 1;

  constructor(opts: JetstreamOptions) {
    this.log = opts.log;
    this.outboxMaxBytes = opts.outboxMaxBytes ?? 32 * 1024 * 1024;
    this.outboxMaxEvents = opts.outboxMaxEvents ?? 50_000;
    this.clientAddress = opts.clientAddress ?? socketAddress;
    this.logger = (opts.logger ?? silentLogger).child({ module: 'jetstream' });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxPayload ?? 1024 * 1024,
      perMessageDeflate: false,
      clientTracking: false,
    });
    this.host = {
      log: this.log,
      window: this.window,
      replayBatchBytes: opts.replayBatchBytes ?? 1024 * 1024,
      cutoverLag: opts.cutoverLagEvents ?? 1000,
      onSent: (messages, bytes) => {
        this.metrics?.messagesSent.inc(messages);
        this.metrics?.bytesSent.inc(bytes);
      },
      onSkip: (reason) => this.metrics?.skipped.inc({ reason }),
      onClosed: (s) => this.forget(s),
      enterLive: (s) => this.live.add(s),
    };
    this.unsubscribe = opts.events
      ? opts.events.subscribe('jetstream', (records) => this.broadcast(records))
      : this.log.onDurable((records) => this.broadcast(records));
    const pingEvery = opts.pingIntervalMs ?? 30_000;
    if (pingEvery > 0) {
      this.pingTimer = setInterval(() => this.pingSubscribers(), pingEvery);
      this.pingTimer.unref();
    }
    const r = opts.registry;
    if (r) {
      const server = this;
      new Gauge({
        name: 'relay_jetstream_subscribers',
        help: 'Connected Jetstream (/subscribe) subscribers',
        registers: [r],
        collect() {
          this.set(server.subscribers.size);
        },
      });
      new Gauge({
        name: 'relay_jetstream_window_events',
        help: 'Encoded events held in the Jetstream live window',
        registers: [r],
        collect() {
          this.set(server.window.end - server.window.start);
        },
      });
      this.metrics = {
        drops: new Counter({
          name: 'relay_jetstream_subscriber_drops_total',
          help: 'Jetstream subscribers dropped by the relay, by reason (slow, dead, bad_options)',
          labelNames: ['reason'],
          registers: [r],
        }),
        rejected: new Counter({
          name: 'relay_jetstream_rejected_connections_total',
          help: '/subscribe connections refused, by reason',
          labelNames: ['reason'],
          registers: [r],
        }),
        messagesSent: new Counter({
          name: 'relay_jetstream_messages_sent_total',
          help: 'JSON messages written to Jetstream subscriber sockets',
          registers: [r],
        }),
        bytesSent: new Counter({
          name: 'relay_jetstream_bytes_sent_total',
          help: 'Bytes written to Jetstream subscriber sockets',
          registers: [r],
        }),
        skipped: new Counter({
          name: 'relay_jetstream_encode_skips_total',
          help: 'Events or operations with no JSON message (undecodable frame, record block missing or undecodable)',
          labelNames: ['reason'],
          registers: [r],
        }),
        encodeSeconds: new Counter({
          name: 'relay_jetstream_live_encode_seconds_total',
          help: 'Main-thread time spent encoding live events to JSON (once per event, shared by subscribers)',
          registers: [r],
        }),
        encodedEvents: new Counter({
          name: 'relay_jetstream_live_encoded_events_total',
          help: 'Live events encoded to JSON (only while a subscriber is live)',
          registers: [r],
        }),
      };
    }
    this.admission = new WsAdmission({
      maxConnections: opts.maxSubscribers ?? 1000,
      maxPerClient: opts.maxSubscribersPerIp ?? 20,
      totalLimit: { reason: 'max_subscribers', message: 'the relay has reached its subscriber limit' },
      perClientMessage: 'too many /subscribe connections from this address or IPv6 /64',
      rejected: this.metrics?.rejected,
    });
  }

  /**
   * Takes the upgrade if it is for /subscribe (returns true), else returns
   * false and leaves the socket alone. Never throws.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, opened?: () => void): boolean {
    const target = parseRequestTarget(req.url);
    if (!target.ok || target.path !== JETSTREAM_PATH) return false;
    const address = this.clientAddress(req);
    if (!this.admission.check(socket, address)) return true;
    let query: SubscribeQuery;
    try {
      query = parseSubscribeQuery(target.params);
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      this.metrics?.rejected.inc({ reason: 'bad_request' });
      refuseUpgrade(socket, 400, 'InvalidRequest', err.message);
      return true;
    }
    const encoding = req.headers['socket-encoding'];
    if (query.compressionAsked || (typeof encoding === 'string' && /zstd/i.test(encoding))) {
      // Jetstream's zstd needs its dictionary and zstd in node:zlib (not on Node 20): docs/jetstream.md
      this.metrics?.rejected.inc({ reason: 'compression' });
      refuseUpgrade(
        socket,
        400,
        'CompressionNotSupported',
        'zstd compression is not supported here; connect without compress=true',
      );
      return true;
    }
    // Hold the slot until the handshake completes (ws answers and destroys a bad one).
    const admitted = this.admission.hold(socket, address);
    const id = this.nextId++;
    const ua = req.headers['user-agent'];
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      admitted();
      opened?.();
      this.accept(id, ws, socket, address, ua, query);
    });
    return true;
  }

  private accept(
    id: number,
    ws: WebSocket,
    socket: Duplex,
    address: string,
    userAgent: string | undefined,
    query: SubscribeQuery,
  ): void {
    const s = new Subscriber(id, this.host, ws, socket, address, userAgent, query.cursor, query.filter);
    this.subscribers.set(id, s);
    if (this.admission.closed) {
      s.close(1001, 'relay shutting down');
      return;
    }
    ws.on('message', (data, isBinary) => this.onMessage(s, data, isBinary, query));
    this.logger.debug({ id, address, userAgent, cursor: query.cursor }, 'jetstream subscriber connected');
    if (!query.requireHello) this.start(s, query);
  }

  private start(s: Subscriber, query: SubscribeQuery): void {
    let start: ReturnType<NonNullable<EventLog['timeIndex']>['seek']>;
    let cursorTimeUs = 0;
    const index = this.log.timeIndex;
    if (query.cursor !== undefined && index) {
      // Jetstream: replay from the first event with time_us ≥ cursor; older
      // than everything kept: from the oldest; in the future: live only.
      cursorTimeUs = query.cursor;
      start = index.seek(query.cursor);
    }
    s.run(start, cursorTimeUs).catch((err: unknown) => {
      this.logger.error({ err, id: s.id }, 'jetstream subscriber failed');
      s.close(1011, 'InternalError');
    });
  }

  private onMessage(s: Subscriber, data: RawData, isBinary: boolean, query: SubscribeQuery): void {
    if (s.isClosed() || isBinary) return;
    let msg: unknown;
    try {
      msg = JSON.parse(rawText(data));
    } catch {
      return; // Jetstream logs and ignores what it cannot read
    }
    if (typeof msg !== 'object' || msg === null || (msg as { type?: unknown }).type !== 'options_update')
      return;
    try {
      s.filter = parseOptionsUpdate((msg as { payload?: unknown }).payload);
      s.optionsUpdates++;
    } catch (err) {
      if (!(err instanceof FilterError)) throw err;
      this.metrics?.drops.inc({ reason: 'bad_options' });
      s.close(1008, truncateReason(`invalid options_update: ${err.message}`));
      return;
    }
    if (s.state === 'hello') this.start(s, query);
  }

  private broadcast(records: readonly LogRecord[]): void {
    if (this.live.size === 0) {
      this.window.skip(records.length);
      return;
    }
    const began = performance.now();
    const encoded: EncodedEvent[] = new Array(records.length);
    const onSkip = (why: EncodeSkip) => this.metrics?.skipped.inc({ reason: why });
    for (let i = 0; i < records.length; i++) {
      const r = records[i];
      encoded[i] = encodeEvent(r.seq, r.timeUs ?? r.time * 1000, r.frame, onSkip);
    }
    this.metrics?.encodeSeconds.inc((performance.now() - began) / 1000);
    this.metrics?.encodedEvents.inc(records.length);
    this.window.push(encoded);
    let minPos = this.window.end;
    for (const s of this.live) {
      s.flush();
      if (s.outboxEvents() > this.outboxMaxEvents || s.outboxBytes() > this.outboxMaxBytes) {
        this.metrics?.drops.inc({ reason: 'slow' });
        this.logger.info({ id: s.id, address: s.remoteAddress }, 'dropping slow jetstream subscriber');
        s.close(1008, 'ConsumerTooSlow');
        continue;
      }
      if (s.pos < minPos) minPos = s.pos;
    }
    this.window.trimBefore(minPos);
  }

  /** One liveness round: drops subscribers that missed the previous ping, pings the rest. */
  pingSubscribers(): void {
    for (const s of this.subscribers.values()) {
      if (!s.pingRound()) this.metrics?.drops.inc({ reason: 'dead' });
    }
  }

  private forget(s: Subscriber): void {
    if (!this.subscribers.delete(s.id)) return;
    this.live.delete(s);
    this.admission.release(s.remoteAddress);
    this.logger.debug({ id: s.id, messagesSent: s.messagesSent }, 'jetstream subscriber disconnected');
  }

  listSubscribers(): SubscriberInfo[] {
    return [...this.subscribers.values()].map((s) => s.info());
  }

  /** Stops accepting, closes every subscriber and waits (briefly) for their sockets. */
  async close(): Promise<void> {
    if (this.admission.closed) return;
    this.admission.close();
    this.unsubscribe();
    if (this.pingTimer) clearInterval(this.pingTimer);
    const sockets = [...this.subscribers.values()].map((s) => {
      const done = new Promise<void>((resolve) => {
        if (s.socket.destroyed) resolve();
        else s.socket.once('close', () => resolve());
      });
      s.close(1001, 'relay shutting down');
      return done;
    });
    await Promise.race([Promise.all(sockets), new Promise((r) => setTimeout(r, 2500).unref())]);
    for (const s of this.subscribers.values()) s.terminate();
    this.wss.close();
  }
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data as ArrayBuffer).toString('utf8');
}

/** A WebSocket close reason is at most 123 bytes. */
function truncateReason(s: string): string {
  return Buffer.byteLength(s) <= 123 ? s : `${Buffer.from(s).subarray(0, 120).toString('utf8')}...`;
}
