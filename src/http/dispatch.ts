// Serving routes: what happens between a matched route and the bytes on the
// wire, written once for every router the relay serves. A route's result
// becomes a 200 JSON answer (or nothing, when the route answered itself); an
// ApiError becomes its lexicon answer `{error, message}`; anything else is
// reported to the caller (to log) and answered 500 `internal error`, never a
// stack trace; a failure after the answer started cuts the connection. An
// answer given before the request body was read closes the connection, so a
// kept-alive socket never parses an unread body as the next request.
// `createRouteHandler` serves one router with just these rules (tests, and
// any server without the API's extra rules); the API's dispatcher
// (src/api/index.ts) adds authentication, CORS and metrics around the same
// functions.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { clientLimitKey, socketAddress } from './client-address.ts';
import { Query } from './request.ts';
import { parseRequestTarget } from './request-target.ts';
import { ApiError, sendError, sendJson } from './response.ts';
import type { RequestContext, Router } from './router.ts';

/** Handles a request if it is one of its paths; false hands it on (e.g. to a 404). */
export type PathHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** True when the request has a body that has not been read to its end. */
export function unreadBody(req: IncomingMessage): boolean {
  const declared = req.headers['content-length'];
  const hasBody =
    req.headers['transfer-encoding'] !== undefined || (declared !== undefined && declared !== '0');
  return hasBody && !req.complete;
}

/** The answer to a known path asked with a method it does not take. */
export function methodNotAllowed(method: string, allow: readonly string[]): ApiError {
  return new ApiError(405, 'InvalidRequest', `method ${method} not allowed`, { allow: allow.join(', ') });
}

/** Sends what a route returned: a body as 200 JSON; undefined means the route answered itself. */
export function sendRouteResult(
  res: ServerResponse,
  out: unknown,
  headers: Record<string, string> = {},
): void {
  if (out !== undefined) sendJson(res, 200, out, headers);
}

/**
 * Answers a failed request: an ApiError as itself, anything else (after
 * `onUnexpected`, to log it) as 500. Returns the status answered, or
 * undefined when the answer had already started and the connection was cut.
 */
export function answerFailure(
  req: IncomingMessage,
  res: ServerResponse,
  err: unknown,
  onUnexpected: (err: unknown) => void,
  headers: Record<string, string> = {},
): number | undefined {
  const apiError = err instanceof ApiError ? err : undefined;
  if (!apiError) onUnexpected(err);
  if (res.headersSent) {
    res.destroy();
    return undefined;
  }
  const answer = apiError ?? new ApiError(500, 'InternalServerError', 'internal error');
  // A body we did not read is not drained on a kept-alive connection: close it.
  const close: Record<string, string> = unreadBody(req) ? { connection: 'close' } : {};
  sendError(res, answer, { ...headers, ...close });
  return answer.status;
}

export interface RouteHandlerOptions {
  /** The client's address (default: the socket's peer address). */
  clientAddress?: (req: IncomingMessage) => string;
  /** Told of errors that are not ApiErrors (answered 500). */
  onUnexpected?: (err: unknown) => void;
}

/** Serves `router`'s paths with the rules above; other paths return false. */
export function createRouteHandler(router: Router, opts: RouteHandlerOptions = {}): PathHandler {
  const clientAddress = opts.clientAddress ?? socketAddress;
  const onUnexpected = opts.onUnexpected ?? (() => {});
  return async (req, res) => {
    const target = parseRequestTarget(req.url);
    if (!target.ok || !router.has(target.path)) return false;
    try {
      const match = router.match(req.method ?? 'GET', target.path);
      if (match.kind === 'none') return false;
      if (match.kind === 'method-not-allowed') throw methodNotAllowed(req.method ?? 'GET', match.allow);
      const address = clientAddress(req);
      const ctx: RequestContext = {
        req,
        res,
        path: target.path,
        query: new Query(target.params),
        clientAddress: address,
        clientKey: clientLimitKey(address),
      };
      sendRouteResult(res, await match.route.handler(ctx));
    } catch (err) {
      answerFailure(req, res, err, onUnexpected);
    }
    return true;
  };
}
