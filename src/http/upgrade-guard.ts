// Owns every socket the public server hands over with an HTTP `upgrade`
// event until it is a WebSocket consumer or gone. Node detaches such a socket
// from the HTTP server: no error listener (an ECONNRESET on it would end the
// process), no timeouts, no connection accounting beyond the raw count. So
// here, for each one:
// - an `error` listener goes on first, before anything can write to it;
// - the request target is parsed without throwing (src/http/request-target.ts);
// - at most maxPending sockets may be between the upgrade request and a
//   finished WebSocket handshake (or the end of a refusal) at once; more are
//   answered 503 and destroyed at once;
// - each gets timeoutMs to finish the handshake (or, once refused, to read
//   our answer and close); then it is destroyed. A consumer that completed
//   its handshake is the firehose's from then on (ping/pong, slow-consumer
//   limits);
// - anything the upgrade handler throws is logged and counted and the
//   socket answered 500 and destroyed.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { parseRequestTarget } from './request-target.ts';
import { rawResponse } from './response.ts';

/**
 * Takes the upgrade if it is for one of its paths: returns true and calls
 * `opened` once the WebSocket handshake has completed (a refusal it answers
 * itself never calls it). Returns false to leave the socket to the guard (404).
 */
export type UpgradeHandler = (
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  opened: () => void,
) => boolean;

export interface UpgradeGuardOptions {
  handler: UpgradeHandler;
  /** Sockets between the upgrade request and a completed handshake (or closed refusal) at once. */
  maxPending: number;
  /** Time a socket may take from the upgrade request to a completed handshake or to closing after a refusal. */
  timeoutMs: number;
  log: Logger;
  registry?: Registry;
}

type FailureReason =
  | 'pending_limit'
  | 'timeout'
  | 'bad_target'
  | 'not_found'
  | 'socket_error'
  | 'handler_error';

export class UpgradeGuard {
  private readonly pending = new Map<Duplex, NodeJS.Timeout>();
  private readonly failures?: Counter<'reason'>;
  private closed = false;

  constructor(private readonly opts: UpgradeGuardOptions) {
    const r = opts.registry;
    if (r) {
      const guard = this;
      this.failures = new Counter({
        name: 'relay_http_upgrade_failures_total',
        help: 'Upgrade requests that did not become WebSocket consumers, by reason (pending_limit, timeout, bad_target, not_found, socket_error, handler_error)',
        labelNames: ['reason'],
        registers: [r],
      });
      new Gauge({
        name: 'relay_http_pending_upgrades',
        help: 'Sockets between an upgrade request and a completed WebSocket handshake (or a closed refusal)',
        registers: [r],
        collect() {
          this.set(guard.pending.size);
        },
      });
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** The server's `upgrade` listener. Never throws. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (this.pending.has(socket)) this.fail('socket_error');
      this.opts.log.debug({ err: err.code ?? err.message }, 'upgrade socket error');
      socket.destroy();
    });
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.pending.size >= this.opts.maxPending) {
      this.fail('pending_limit');
      this.refuse(
        socket,
        503,
        'Service Unavailable',
        'TooManyConnections',
        'too many connections in handshake',
      );
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => {
      if (!this.pending.has(socket)) return;
      this.fail('timeout');
      // No longer pending from now on, not only once 'close' has been emitted.
      this.settle(socket);
      socket.destroy();
    }, this.opts.timeoutMs);
    this.pending.set(socket, timer);
    socket.once('close', () => this.settle(socket));

    const target = parseRequestTarget(req.url);
    if (!target.ok) {
      this.fail('bad_target');
      this.refuse(
        socket,
        target.status,
        target.status === 414 ? 'URI Too Long' : 'Bad Request',
        'InvalidRequest',
        target.message,
      );
      return;
    }
    try {
      const taken = this.opts.handler(req, socket, head, () => this.opened(socket));
      if (!taken) {
        this.fail('not_found');
        this.refuse(socket, 404, 'Not Found', 'NotFound', 'no WebSocket endpoint at this path');
      }
    } catch (err) {
      this.fail('handler_error');
      this.opts.log.error({ err, url: req.url?.slice(0, 200) }, 'error handling an upgrade request');
      this.refuse(socket, 500, 'Internal Server Error', 'InternalServerError', 'internal error');
      socket.destroy();
    }
  }

  /** Destroys every socket still pending (shutdown). */
  close(): void {
    this.closed = true;
    for (const socket of [...this.pending.keys()]) socket.destroy();
  }

  private opened(socket: Duplex): void {
    this.settle(socket);
    // The consumer's liveness is the firehose's ping/pong from now on; make sure
    // no socket-level idle timeout from the HTTP server cuts a quiet stream.
    (socket as Duplex & { setTimeout?: (ms: number) => void }).setTimeout?.(0);
  }

  private settle(socket: Duplex): void {
    const timer = this.pending.get(socket);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.pending.delete(socket);
  }

  private refuse(socket: Duplex, status: number, statusText: string, error: string, message: string): void {
    // end(), not destroy(): the client should read the answer. If it never
    // closes its side, the pending timer destroys the socket.
    if (socket.writable) socket.end(rawResponse(status, statusText, error, message));
  }

  private fail(reason: FailureReason): void {
    this.failures?.inc({ reason });
  }
}
