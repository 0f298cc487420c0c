// The relay process: wires the stages together, owns the two HTTP servers
// (public: XRPC + firehose + probes; internal: metrics + probes) and shuts
// everything down in reverse order. Tests start it in-process with port 0.
import { mkdirSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { RelayConfig } from './config/config.ts';
import type { Logger } from './log.ts';
import { type HealthState, handleMetrics, handleProbe, notFound } from './server/health.ts';

export class Relay {
  readonly registry = new Registry();
  readonly health: HealthState = { ready: false, checks: [] };
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
    mkdirSync(this.config.dataDir, { recursive: true });
    this.publicServer = await listen(
      (req, res) => this.handlePublic(req, res),
      this.config.host,
      this.config.port,
    );
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
      await Promise.all([close(this.publicServer), close(this.metricsServer)]);
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
