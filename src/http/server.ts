// The relay's HTTP servers (public and metrics) with every limit set and
// every error handled, so that no client can end the process or hold a
// connection for as long as it likes:
// - headers must arrive within headersTimeoutMs and the whole request within
//   requestTimeoutMs (a slowloris client trickling bytes is answered 408 and
//   cut off), an idle keep-alive connection is closed after
//   keepAliveTimeoutMs, and a connection with no traffic at all (e.g. a
//   client that stopped reading our response) after idleTimeoutMs;
// - the request head is bounded in bytes (maxHeaderBytes, 431 beyond) and
//   in header count (maxHeaders; more are dropped unread);
// - at most maxConnections sockets at once (WebSocket consumers included):
//   Node closes sockets past the cap as soon as they are accepted;
// - malformed requests, timeouts and resets (`clientError`), accept errors on
//   the listening socket and handler exceptions are answered or logged and
//   counted, never thrown.
// Each of these is counted in prom-client counters labelled by server.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { rawResponse, sendJson } from './response.ts';

export interface HttpServerLimits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  idleTimeoutMs: number;
  maxHeaderBytes: number;
  maxHeaders: number;
  maxConnections: number;
}

/** Counters shared by the relay's servers (label `server`: public, metrics). */
export class HttpServerMetrics {
  readonly refusedConnections: Counter<'server'>;
  readonly clientErrors: Counter<'server' | 'reason'>;
  readonly handlerErrors: Counter<'server'>;
  readonly serverErrors: Counter<'server'>;

  constructor(registry: Registry) {
    this.refusedConnections = new Counter({
      name: 'relay_http_connections_refused_total',
      help: 'Connections closed on accept because the server had maxConnections open',
      labelNames: ['server'],
      registers: [registry],
    });
    this.clientErrors = new Counter({
      name: 'relay_http_client_errors_total',
      help: 'Connections ended for a client-side fault: timeout (headers or request too slow), header_overflow, bad_request, reset',
      labelNames: ['server', 'reason'],
      registers: [registry],
    });
    this.handlerErrors = new Counter({
      name: 'relay_http_handler_errors_total',
      help: 'Requests whose handler threw; answered 500',
      labelNames: ['server'],
      registers: [registry],
    });
    this.serverErrors = new Counter({
      name: 'relay_http_server_errors_total',
      help: 'Errors of a listening socket (e.g. accept failing with EMFILE); the server keeps listening',
      labelNames: ['server'],
      registers: [registry],
    });
  }
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** How Node itself would answer a client error (see `clientError` in the node:http docs). */
function clientErrorReply(code: string | undefined): { reason: string; response?: string } {
  switch (code) {
    case 'ECONNRESET':
    case 'EPIPE':
      return { reason: 'reset' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return {
        reason: 'timeout',
        response: rawResponse(408, 'Request Timeout', 'RequestTimeout', 'request too slow'),
      };
    case 'HPE_HEADER_OVERFLOW':
      return {
        reason: 'header_overflow',
        response: rawResponse(
          431,
          'Request Header Fields Too Large',
          'InvalidRequest',
          'request head too large',
        ),
      };
    default:
      return {
        reason: 'bad_request',
        response: rawResponse(400, 'Bad Request', 'InvalidRequest', 'malformed request'),
      };
  }
}

/**
 * A node:http server with the limits applied and every error path handled.
 * `handler` rejections become a 500 JSON answer (or a dropped connection if
 * the answer had already started).
 */
export function createHttpServer(
  name: string,
  handler: RequestHandler,
  limits: HttpServerLimits,
  log: Logger,
  metrics: HttpServerMetrics,
): Server {
  const server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // How often Node looks for requests past their headers/request timeout:
      // often enough that a timeout is not overshot by much.
      connectionsCheckingInterval: Math.max(
        25,
        Math.min(1000, Math.floor(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4)),
      ),
    },
    (req, res) => {
      handler(req, res).catch((err: unknown) => {
        metrics.handlerErrors.inc({ server: name });
        log.error({ err, server: name, url: req.url?.slice(0, 200) }, 'unhandled error in HTTP handler');
        if (res.headersSent) {
          res.destroy();
          return;
        }
        sendJson(res, 500, { error: 'InternalServerError', message: 'internal error' });
      });
    },
  );
  server.maxHeadersCount = limits.maxHeaders;
  server.maxConnections = limits.maxConnections;
  server.timeout = limits.idleTimeoutMs;
  server.on('drop', () => metrics.refusedConnections.inc({ server: name }));
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const { reason, response } = clientErrorReply(err.code);
    metrics.clientErrors.inc({ server: name, reason });
    // Only answer on a socket that has not started an answer of its own.
    const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage
      ?.headersSent;
    if (response && socket.writable && !started) socket.write(response);
    socket.destroy();
  });
  return server;
}

/** Starts listening; resolves once bound. Later server errors are logged and counted. */
export function listen(
  server: Server,
  name: string,
  host: string,
  port: number,
  log: Logger,
  metrics: HttpServerMetrics,
): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', (err) => {
        metrics.serverErrors.inc({ server: name });
        log.error({ err, server: name }, 'HTTP server error');
      });
      resolve();
    });
  });
}

/** Stops listening and closes every open connection. */
export function closeServer(server: Server | undefined): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
