// The request target (`req.url`) of an HTTP request or upgrade, parsed
// without anything that can throw: `new URL('//', base)` throws
// ERR_INVALID_URL, and a throw inside an `upgrade` listener ends the process.
// The target is bounded before any parsing (length, number of query
// parameters), must be origin-form (`/path?query`), and may not contain dot
// segments (`/a/../b`, also percent-encoded): URL parsers would normalise
// them away, so a path checked here and a path used elsewhere could differ.
// Every refusal is a status and a message the caller sends as it sees fit.

/** Longest request target accepted (bytes, request line). */
export const MAX_TARGET_LENGTH = 8192;
/** Most query parameters accepted. */
export const MAX_QUERY_PARAMS = 64;

export type ParsedTarget =
  | { ok: true; path: string; params: URLSearchParams }
  | { ok: false; status: 400 | 414; message: string };

const DOT_SEGMENT = /(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i;

export function parseRequestTarget(raw: string | undefined): ParsedTarget {
  const target = raw ?? '/';
  if (target.length > MAX_TARGET_LENGTH) {
    return { ok: false, status: 414, message: `request URL longer than ${MAX_TARGET_LENGTH} bytes` };
  }
  if (!target.startsWith('/')) {
    return { ok: false, status: 400, message: 'request target must be a path (origin-form)' };
  }
  const q = target.indexOf('?');
  const path = q >= 0 ? target.slice(0, q) : target;
  if (DOT_SEGMENT.test(path)) {
    return { ok: false, status: 400, message: 'request path must not contain . or .. segments' };
  }
  const query = q >= 0 ? target.slice(q + 1) : '';
  // Count before parsing: each parameter is at least one '&'-separated piece.
  let pieces = query === '' ? 0 : 1;
  for (let i = query.indexOf('&'); i >= 0 && pieces <= MAX_QUERY_PARAMS; i = query.indexOf('&', i + 1))
    pieces++;
  if (pieces > MAX_QUERY_PARAMS) {
    return { ok: false, status: 400, message: `more than ${MAX_QUERY_PARAMS} query parameters` };
  }
  // URLSearchParams never throws (bad percent escapes stay as they are).
  return { ok: true, path, params: new URLSearchParams(query) };
}
