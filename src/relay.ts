// The relay process: wires the stages together, owns the two HTTP servers
// (public: XRPC + firehose + probes; internal: metrics + probes) and shuts
// everything down in reverse order of start-up: stop taking consumers, close
// the firehose, flush and close the event log, then flush cursors and close
// the metadata store. Tests start it in-process with port 0.
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { RelayConfig } from './config/config.ts';
import { type EventLog, openEventLog } from './eventlog/index.ts';
import { FirehoseServer } from './firehose/index.ts';
import type { Logger } from './log.ts';
import { type HealthState, handleMetrics, handleProbe, notFound } from './server/health.ts';
import type { MetadataStore } from './store/metadata-store.ts';
import { openMetadataStore } from './store/open-store.ts';

export class Relay {
  readonly registry = new Registry();
  readonly health: HealthState = { ready: false, checks: [] };
  store?: MetadataStore;
  eventLog?: EventLog;
  firehose?: FirehoseServer;
  private publicServer?: Server;
  private metricsServer?: Server;
  private stopping?: Promise<void>;

  constructor(
    readonly config: RelayConfig,
    readonly log: Logger,
  ) {
    collectDefaultMetrics({ register: this.registry });
  }

  async start(): Promise<void> {
    const cfg = this.config;
    mkdirSync(cfg.dataDir, { recursive: true });
    const store = await openMetadataStore({
      databaseUrl: cfg.databaseUrl,
      dataDir: cfg.dataDir,
      log: this.log.child({ module: 'store' }),
    });
    this.store = store;
    const eventLog = await openEventLog({
      dir: join(cfg.dataDir, 'events'),
      retentionMs: cfg.retentionHours * 3600_000,
      retentionBytes: cfg.maxEventsGb > 0 ? Math.floor(cfg.maxEventsGb * 1024 ** 3) : undefined,
      fsync: cfg.eventLogFsync,
      registry: this.registry,
      logger: this.log,
    });
    this.eventLog = eventLog;
    this.log.info({ head: eventLog.head(), oldest: eventLog.oldest() }, 'event log open');
    this.firehose = new FirehoseServer({
      log: eventLog,
      maxConsumers: cfg.maxConsumers,
      maxConsumersPerIp: cfg.maxConsumersPerIp,
      outboxMaxBytes: Math.floor(cfg.consumerOutboxMb * 1024 * 1024),
      outboxMaxEvents: cfg.consumerOutboxEvents,
      registry: this.registry,
      logger: this.log,
    });
    this.health.checks.push(
      { name: 'metadata_store', check: () => store.healthCheck() },
      {
        name: 'event_log',
        check: () => {
          if (eventLog.head() < 0) throw new Error('event log not open');
        },
      },
    );
    new Gauge({
      name: 'relay_up_since_seconds',
      help: 'Unix time the relay finished starting',
      registers: [this.registry],
    }).set(Date.now() / 1000);

    this.publicServer = await listen(
      (req, res) => this.handlePublic(req, res),
      this.config.host,
      this.config.port,
    );
    const firehose = this.firehose;
    this.publicServer.on('upgrade', (req, socket, head) => {
      if (!firehose.handleUpgrade(req, socket, head)) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    });
    this.metricsServer = await listen(
      (req, res) => this.handleInternal(req, res),
      this.config.host,
      this.config.metricsPort,
    );
    this.health.ready = true;
    this.log.info(
      { port: this.port, metricsPort: this.metricsPort, dataDir: this.config.dataDir },
      'relay started',
    );
  }

  get port(): number {
    return (this.publicServer?.address() as AddressInfo | null)?.port ?? 0;
  }

  get metricsPort(): number {
    return (this.metricsServer?.address() as AddressInfo | null)?.port ?? 0;
  }

  private async handlePublic(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (await handleProbe(req, res, this.health)) return;
    notFound(res);
  }

  private async handleInternal(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (await handleProbe(req, res, this.health)) return;
    if (await handleMetrics(req, res, this.registry)) return;
    notFound(res);
  }

  /** Graceful shutdown; safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.health.ready = false;
      this.log.info('relay stopping');
      await this.firehose?.close();
      await Promise.all([close(this.publicServer), close(this.metricsServer)]);
      await this.eventLog?.close();
      await this.store?.close();
      this.log.info('relay stopped');
    })();
    return this.stopping;
  }
}

function listen(
  handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
  host: string,
  port: number,
): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      handler(req, res).catch((err: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'InternalServerError', message: 'internal error' }));
        void err;
      });
    });
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function close(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
