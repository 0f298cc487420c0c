// Response writers shared by every HTTP answer the relay writes with node:http
// (the API, the collection index's routes, probes, the servers' own 500): JSON
// bodies with their length and the relay's `server` header, and the lexicon
// error shape `{error, message}`, thrown anywhere as ApiError and answered by
// the dispatcher (src/http/dispatch.ts); empty answers (a redirect, a 200
// with no body) with the same `server` header; and rawResponse, the whole
// HTTP/1.1 error answer as text for a raw socket (a client error before a
// request exists, a refused WebSocket upgrade: refuseUpgrade).
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/** A lexicon-shaped error: the handler throws it, the dispatcher answers `{error, message}`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const invalidRequest = (message: string): ApiError => new ApiError(400, 'InvalidRequest', message);

export const SERVER_HEADER = 'atrelay (atproto-relay)';

/** Writes `body` as the whole JSON response with `headers`; content type, length and `server` are always these. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    server: SERVER_HEADER,
  });
  res.end(text);
}

export function sendError(
  res: ServerResponse,
  err: ApiError,
  extraHeaders: Record<string, string> = {},
): void {
  sendJson(res, err.status, { error: err.error, message: err.message }, { ...extraHeaders, ...err.headers });
}

/** An answer with no body (`content-length: 0`), e.g. a redirect's `location` in `headers`. */
export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { ...headers, server: SERVER_HEADER, 'content-length': '0' });
  res.end();
}

/** A complete HTTP/1.1 response with a JSON error body and `Connection: close`, for raw sockets. */
export function rawResponse(status: number, statusText: string, error: string, message: string): string {
  const body = JSON.stringify({ error, message });
  return (
    `HTTP/1.1 ${status} ${statusText}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

/** The relay's answer for a path nobody serves. */
export function notFound(res: ServerResponse): void {
  sendJson(res, 404, { error: 'NotFound', message: 'no such endpoint' });
}

/**
 * Answers a WebSocket upgrade the relay will not take (limits, shutdown, bad
 * query) on the raw socket and ends it; a socket error after that only
 * destroys it. Shared by the firehose and the Jetstream-compatible stream.
 */
export function refuseUpgrade(socket: Duplex, status: number, error: string, message: string): void {
  socket.end(rawResponse(status, STATUS_CODES[status] ?? 'Error', error, message));
  socket.on('error', () => socket.destroy());
}
