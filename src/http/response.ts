// Response writers shared by every HTTP answer the relay writes with node:http
// (the API, the collection index's routes, probes, the servers' own 500): JSON
// bodies with their length and the relay's `server` header, and the lexicon
// error shape `{error, message}`, thrown anywhere as ApiError and answered by
// the dispatcher (src/http/dispatch.ts). Raw-socket answers (before a request
// exists, or on an upgrade) are src/http/server.ts's rawResponse.
import type { ServerResponse } from 'node:http';

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

/** Writes `body` as the whole JSON response (headers given here win over ones set before, except these three). */
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

/** The relay's answer for a path nobody serves. */
export function notFound(res: ServerResponse): void {
  sendJson(res, 404, { error: 'NotFound', message: 'no such endpoint' });
}
