// The outbound firehose: com.atproto.sync.subscribeRepos over WebSocket.
// Takes HTTP upgrades for its path (the relay's HTTP server hands them over),
// checks limits and the cursor, and runs one Consumer per connection (see
// consumer.ts for replay → cutover → live). Durable events from the log are
// framed once into the shared LiveWindow; a broadcast only moves the window's
// end and asks each live consumer to write its pending range, so ingest never
// waits on consumers. A consumer whose pending range exceeds its outbox limits
// gets a ConsumerTooSlow error frame and is closed; others are unaffected.
// Ping/pong every interval drops peers that stopped answering. Who may
// connect (shutdown, the total and the per-client-network consumer limits) is
// decided by the endpoint's WsAdmission (src/http/ws-admission.ts).
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type WebSocket, WebSocketServer } from 'ws';
import type { EventLog, LogRecord } from '../eventlog/types.ts';
import { socketAddress } from '../http/client-address.ts';
import { parseRequestTarget } from '../http/request-target.ts';
import { WsAdmission } from '../http/ws-admission.ts';
import { type Logger, silentLogger } from '../log.ts';
import { encodeErrorFrame, encodeInfoFrame } from '../protocol/frames.ts';
import { Consumer, type ConsumerHost, type ConsumerInfo } from './consumer.ts';
import { LiveWindow } from './live-window.ts';

export const SUBSCRIBE_REPOS_PATH = '/xrpc/com.atproto.sync.subscribeRepos';

export interface FirehoseOptions {
  /** Replay reads come from the log. */
  log: EventLog;
  /**
   * Where durable events arrive (the relay's committed-event stream,
   * eventlog/committed.ts); without it the server listens to the log itself.
   */
  events?: { subscribe(name: string, listener: (records: readonly LogRecord[]) => void): () => void };
  /** Total consumers allowed at once (default 1,000). */
  maxConsumers?: number;
  /** Consumers allowed per client network: IPv4 address or IPv6 /64 (default 20). */
  maxConsumersPerIp?: number;
  /** Outbox limit per consumer in bytes: live window share + socket buffer (default 32 MiB). */
  outboxMaxBytes?: number;
  /** Outbox limit per consumer in events (default 50,000). */
  outboxMaxEvents?: number;
  /** Ping interval; a peer that did not pong since the previous ping is dropped (default 30 s). */
  pingIntervalMs?: number;
  /** Bytes per log read during replay (default 1 MiB). */
  replayBatchBytes?: number;
  /** Replay hands over to live once within this many events of the head (default 1,000). */
  cutoverLagEvents?: number;
  /** Largest single socket write when sending live events (default 1 MiB). */
  maxWriteBytes?: number;
  /** Largest message accepted from a consumer (default 1 KiB; consumers send nothing). */
  maxPayload?: number;
  /**
   * The client's address for listings and logs, and (as its IPv4 address or
   * IPv6 /64) for the per-client limit; default: the socket's peer address
   * (src/http/client-address.ts; the relay passes its trusted-proxy resolver).
   */
  clientAddress?: (req: IncomingMessage) => string;
  registry?: Registry;
  logger?: Logger;
}

interface Metrics {
  drops: Counter<'reason'>;
  rejected: Counter<'reason'>;
  bytesSent: Counter;
  eventsSent: Counter;
}

export class FirehoseServer {
  readonly log: EventLog;
  readonly window = new LiveWindow();
  private readonly wss: WebSocketServer;
  private readonly consumers = new Map<number, Consumer>();
  private readonly live = new Set<Consumer>();
  /** Shutdown and the consumer limits (total, per client network). */
  private readonly admission: WsAdmission;
  private readonly unsubscribe: () => void;
  private readonly pingTimer?: NodeJS.Timeout;
  private readonly logger: Logger;
  private readonly metrics?: Metrics;
  private readonly host: ConsumerHost;
  private nextId = 1;
  private readonly outboxMaxBytes: number;
  private readonly outboxMaxEvents: number;
  private readonly clientAddress: (req: IncomingMessage) => string;

  constructor(opts: FirehoseOptions) {
    this.log = opts.log;
    this.outboxMaxBytes = opts.outboxMaxBytes ?? 32 * 1024 * 1024;
    this.outboxMaxEvents = opts.outboxMaxEvents ?? 50_000;
    this.clientAddress = opts.clientAddress ?? socketAddress;
    this.logger = (opts.logger ?? silentLogger).child({ module: 'firehose' });
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: opts.maxPayload ?? 1024,
      perMessageDeflate: false,
      clientTracking: false,
    });
    const server = this;
    this.host = {
      log: this.log,
      window: this.window,
      replayBatchBytes: opts.replayBatchBytes ?? 1024 * 1024,
      maxWriteBytes: opts.maxWriteBytes ?? 1024 * 1024,
      cutoverLag: opts.cutoverLagEvents ?? 1000,
      onSent: (_c, events, bytes) => {
        this.metrics?.eventsSent.inc(events);
        this.metrics?.bytesSent.inc(bytes);
      },
      onClosed: (c) => this.forget(c),
      enterLive: (c) => this.live.add(c),
    };
    this.unsubscribe = opts.events
      ? opts.events.subscribe('firehose', (records) => this.broadcast(records))
      : this.log.onDurable((records) => this.broadcast(records));
    const pingEvery = opts.pingIntervalMs ?? 30_000;
    if (pingEvery > 0) {
      this.pingTimer = setInterval(() => this.pingConsumers(), pingEvery);
      this.pingTimer.unref();
    }
    const r = opts.registry;
    if (r) {
      new Gauge({
        name: 'relay_firehose_consumers',
        help: 'Connected subscribeRepos consumers',
        registers: [r],
        collect() {
          this.set(server.consumers.size);
        },
      });
      new Gauge({
        name: 'relay_firehose_outbox_bytes',
        help: 'Bytes waiting in consumer outboxes (live window shares + socket buffers)',
        registers: [r],
        collect() {
          let n = 0;
          for (const c of server.consumers.values()) n += c.outboxBytes();
          this.set(n);
        },
      });
      new Gauge({
        name: 'relay_firehose_window_events',
        help: 'Events held in the shared live window',
        registers: [r],
        collect() {
          this.set(server.window.end - server.window.start);
        },
      });
      this.metrics = {
        drops: new Counter({
          name: 'relay_firehose_consumer_drops_total',
          help: 'Consumers dropped by the relay, by reason (slow, dead, admin)',
          labelNames: ['reason'],
          registers: [r],
        }),
        rejected: new Counter({
          name: 'relay_firehose_rejected_connections_total',
          help: 'subscribeRepos connections refused, by reason',
          labelNames: ['reason'],
          registers: [r],
        }),
        bytesSent: new Counter({
          name: 'relay_firehose_bytes_sent_total',
          help: 'Bytes written to consumer sockets',
          registers: [r],
        }),
        eventsSent: new Counter({
          name: 'relay_firehose_events_sent_total',
          help: 'Event messages written to consumer sockets',
          registers: [r],
        }),
      };
    }
    this.admission = new WsAdmission({
      maxConnections: opts.maxConsumers ?? 1000,
      maxPerClient: opts.maxConsumersPerIp ?? 20,
      totalLimit: { reason: 'max_consumers', message: 'the relay has reached its consumer limit' },
      perClientMessage: 'too many firehose connections from this address or IPv6 /64',
      rejected: this.metrics?.rejected,
    });
  }

  /**
   * Takes an HTTP upgrade if it is for subscribeRepos (returns true), else
   * returns false and leaves the socket alone. `opened` is called once the
   * WebSocket handshake has completed. Never throws: a target that cannot be
   * parsed is simply not this path.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, opened?: () => void): boolean {
    const target = parseRequestTarget(req.url);
    if (!target.ok || target.path !== SUBSCRIBE_REPOS_PATH) return false;
    const address = this.clientAddress(req);
    if (!this.admission.check(socket, address)) return true;
    const cursor = parseCursor(target.params.getAll('cursor'));
    // Hold the slot until the handshake completes; if ws refuses the
    // handshake (bad headers) it answers and destroys the socket itself.
    const admitted = this.admission.hold(socket, address);
    const id = this.nextId++;
    const ua = req.headers['user-agent'];
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      admitted();
      opened?.();
      this.accept(id, ws, socket, address, ua, cursor);
    });
    return true;
  }

  private accept(
    id: number,
    ws: WebSocket,
    socket: Duplex,
    address: string,
    userAgent: string | undefined,
    cursor: ParsedCursor,
  ): void {
    const consumer = new Consumer(
      id,
      this.host,
      ws,
      socket,
      address,
      userAgent,
      cursor.ok ? cursor.value : undefined,
    );
    this.consumers.set(id, consumer);
    if (!cursor.ok) {
      consumer.close(1008, 'InvalidRequest', encodeErrorFrame('InvalidRequest', cursor.message));
      return;
    }
    if (this.admission.closed) {
      consumer.close(1001, 'relay shutting down');
      return;
    }
    let startAfter = cursor.value;
    if (startAfter !== undefined) {
      const head = this.log.head();
      if (startAfter > head) {
        consumer.close(
          1008,
          'FutureCursor',
          encodeErrorFrame('FutureCursor', `cursor ${startAfter} is ahead of the current sequence ${head}`),
        );
        return;
      }
      const oldest = this.log.oldest();
      if (startAfter < oldest - 1) {
        consumer.sendFrame(
          encodeInfoFrame(
            'OutdatedCursor',
            `cursor ${startAfter} is older than the oldest event kept (${oldest}); starting there`,
          ),
        );
        startAfter = oldest - 1;
      }
    }
    this.logger.debug({ id, address, userAgent, cursor: cursor.value }, 'firehose consumer connected');
    consumer.run(startAfter).catch((err: unknown) => {
      this.logger.error({ err, id }, 'firehose consumer failed');
      consumer.close(1011, 'InternalError', encodeErrorFrame('InternalError', 'replay failed'));
    });
  }

  private broadcast(records: readonly LogRecord[]): void {
    if (this.live.size === 0) {
      // Nobody to hold events for: keep the window empty but advance its end.
      this.window.skip(records.length);
      return;
    }
    this.window.push(records);
    let minPos = this.window.end;
    for (const c of this.live) {
      // Write first (a healthy consumer takes the batch at once), then judge what is left.
      c.flush();
      if (
        c.outboxEvents() > this.outboxMaxEvents ||
        this.window.bytesFrom(c.pos) + c.socket.writableLength > this.outboxMaxBytes
      ) {
        this.metrics?.drops.inc({ reason: 'slow' });
        this.logger.info({ id: c.id, address: c.remoteAddress, lag: c.info().lag }, 'dropping slow consumer');
        c.close(1008, 'ConsumerTooSlow', encodeErrorFrame('ConsumerTooSlow', 'Stream consumer too slow'));
        continue;
      }
      if (c.pos < minPos) minPos = c.pos;
    }
    this.window.trimBefore(minPos);
  }

  /**
   * One liveness round (run every pingIntervalMs): drops the consumers that did
   * not answer the previous round's ping, and pings the others.
   */
  pingConsumers(): void {
    for (const c of this.consumers.values()) {
      if (c.pingRound()) continue;
      this.metrics?.drops.inc({ reason: 'dead' });
      this.logger.info(
        { id: c.id, address: c.remoteAddress },
        'dropping consumer that stopped answering pings',
      );
    }
  }

  private forget(c: Consumer): void {
    if (!this.consumers.delete(c.id)) return;
    this.live.delete(c);
    this.admission.release(c.remoteAddress);
    this.logger.debug({ id: c.id, eventsSent: c.eventsSent }, 'firehose consumer disconnected');
  }

  listConsumers(): ConsumerInfo[] {
    return [...this.consumers.values()].map((c) => c.info());
  }

  /** Closes one consumer (admin API); false if there is no such consumer. */
  disconnect(id: number): boolean {
    const c = this.consumers.get(id);
    if (!c) return false;
    this.metrics?.drops.inc({ reason: 'admin' });
    c.close(1000, 'disconnected by the relay operator');
    return true;
  }

  /** Stops accepting, closes every consumer and waits (briefly) for their sockets. */
  async close(): Promise<void> {
    if (this.admission.closed) return;
    this.admission.close();
    this.unsubscribe();
    if (this.pingTimer) clearInterval(this.pingTimer);
    const sockets = [...this.consumers.values()].map((c) => {
      const done = new Promise<void>((resolve) => {
        if (c.socket.destroyed) resolve();
        else c.socket.once('close', () => resolve());
      });
      c.close(1001, 'relay shutting down');
      return done;
    });
    await Promise.race([Promise.all(sockets), new Promise((r) => setTimeout(r, 2500).unref())]);
    for (const c of this.consumers.values()) c.terminate();
    this.wss.close();
  }
}

type ParsedCursor = { ok: true; value: number | undefined } | { ok: false; message: string };

/** The `cursor` query parameter: absent, or one non-negative integer. */
export function parseCursor(values: readonly string[]): ParsedCursor {
  if (values.length === 0) return { ok: true, value: undefined };
  if (values.length > 1) return { ok: false, message: 'cursor must be given once' };
  const raw = values[0];
  if (!/^\d+$/.test(raw))
    return { ok: false, message: `cursor must be a non-negative integer, got "${raw}"` };
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) return { ok: false, message: `cursor out of range: ${raw}` };
  return { ok: true, value: n };
}
