// Admission of WebSocket connections to one streaming endpoint (the firehose,
// /subscribe): the one place that decides whether an upgrade may start its
// handshake, and that counts it from then until it ends. Each endpoint has
// its own WsAdmission, so each admits its own maxConnections and
// maxPerClient (RELAY_MAX_CONSUMERS, RELAY_MAX_CONSUMERS_PER_IP);
// RELAY_MAX_CONNECTIONS is the HTTP server's socket cap above both
// (src/http/server.ts).
//
// - While the endpoint shuts down every upgrade is refused: 503
//   ServiceUnavailable (not counted as a rejection).
// - The total counts admitted connections plus handshakes in flight, so a
//   burst of handshakes cannot overshoot it: 503 TooManyConsumers at the
//   limit, counted under the endpoint's own reason label.
// - The per-client limit counts the client's network (IPv4 address or IPv6
//   /64, clientLimitKey), so one IPv6 customer cannot take every slot: 429
//   RateLimitExceeded, counted as `per_ip`.
// - A held slot is counted from `hold` on. If the socket closes before the
//   handshake completes (ws refused it, the client left, the upgrade guard's
//   timeout), the slot is freed then; once the handshake completed it belongs
//   to the connection until the endpoint calls `release`.
import type { Duplex } from 'node:stream';
import type { Counter } from 'prom-client';
import { clientLimitKey } from './client-address.ts';
import { refuseUpgrade } from './response.ts';

export interface WsAdmissionOptions {
  /** Connections (and handshakes) allowed at once. */
  maxConnections: number;
  /** Connections (and handshakes) allowed per client network: IPv4 address or IPv6 /64. */
  maxPerClient: number;
  /** The refusal at maxConnections: its metric reason label and its message. */
  totalLimit: { reason: string; message: string };
  /** The message of the refusal at maxPerClient (metric reason `per_ip`). */
  perClientMessage: string;
  /** The endpoint's counter of refused connections, by reason. */
  rejected?: Counter<'reason'>;
}

export class WsAdmission {
  /** Connections whose handshake completed and that have not been released. */
  private admitted = 0;
  /** Held slots whose handshake has not completed yet. */
  private handshakes = 0;
  /** Held slots (handshakes and admitted connections) per client network, keyed by clientLimitKey. */
  private readonly perClient = new Map<string, number>();
  private closing = false;

  constructor(private readonly opts: WsAdmissionOptions) {}

  /** True once `close` was called: every upgrade is refused from then on. */
  get closed(): boolean {
    return this.closing;
  }

  /** Refuses every later upgrade (the endpoint is shutting down). */
  close(): void {
    this.closing = true;
  }

  /**
   * Whether a connection from `address` may start its handshake now. If not,
   * the upgrade is answered (503 or 429, see the file comment), counted, and
   * false returned.
   */
  check(socket: Duplex, address: string): boolean {
    if (this.closing) {
      refuseUpgrade(socket, 503, 'ServiceUnavailable', 'relay is shutting down');
      return false;
    }
    if (this.admitted + this.handshakes >= this.opts.maxConnections) {
      this.opts.rejected?.inc({ reason: this.opts.totalLimit.reason });
      refuseUpgrade(socket, 503, 'TooManyConsumers', this.opts.totalLimit.message);
      return false;
    }
    if ((this.perClient.get(clientLimitKey(address)) ?? 0) >= this.opts.maxPerClient) {
      this.opts.rejected?.inc({ reason: 'per_ip' });
      refuseUpgrade(socket, 429, 'RateLimitExceeded', this.opts.perClientMessage);
      return false;
    }
    return true;
  }

  /**
   * Holds a slot for a connection from `address` while its handshake runs
   * (call after `check` said yes). Returns what to call once the handshake
   * completed: from then on the connection keeps the slot until `release`.
   * If the socket closes first, the slot is freed at once.
   */
  hold(socket: Duplex, address: string): () => void {
    const key = clientLimitKey(address);
    this.perClient.set(key, (this.perClient.get(key) ?? 0) + 1);
    this.handshakes++;
    let handshaking = true;
    socket.once('close', () => {
      if (!handshaking) return;
      handshaking = false;
      this.handshakes--;
      this.free(key);
    });
    return () => {
      if (handshaking) {
        handshaking = false;
        this.handshakes--;
      } else {
        // The socket closed first and freed the slot (ws does not complete a
        // handshake on a closed socket); take it again so `release` balances.
        this.perClient.set(key, (this.perClient.get(key) ?? 0) + 1);
      }
      this.admitted++;
    };
  }

  /** A connection from `address` whose handshake completed has ended: frees its slot. Call once per connection. */
  release(address: string): void {
    this.admitted--;
    this.free(clientLimitKey(address));
  }

  private free(key: string): void {
    const n = (this.perClient.get(key) ?? 1) - 1;
    if (n <= 0) this.perClient.delete(key);
    else this.perClient.set(key, n);
  }
}
