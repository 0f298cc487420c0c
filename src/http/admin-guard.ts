// The cross-site request rule for the admin API, in one place: the main admin
// routes (src/api) and the collection index's admin routes both apply it.
//
// A browser that has cached Basic credentials for the relay sends them with
// any request a hostile page makes it send, and a plain HTML form can POST
// `application/x-www-form-urlencoded`, `multipart/form-data` or `text/plain`
// cross-site without a CORS preflight. So an admin request is refused when
// - the browser says it is cross-site (`Sec-Fetch-Site: cross-site` or
//   `same-site`: another site, or a sibling subdomain), or
// - it carries an `Origin` that is not this relay (its host and port differ
//   from the request's `Host`, or it is the opaque `null` origin), or
// - it changes state (any method but GET, HEAD, OPTIONS) without
//   `Content-Type: application/json`: a form cannot send that type, and a
//   script that sets it needs a preflight, which the admin API never grants.
// Command-line clients (curl, the backfill CLI) send no Origin and no
// Sec-Fetch-Site and are not affected.
import type { IncomingMessage } from 'node:http';

export interface AdminRefusal {
  status: 403 | 415;
  error: string;
  message: string;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** `host[:port]` lowercased, with the default port of the scheme dropped. */
function canonicalHost(host: string, scheme: 'http:' | 'https:' | undefined): string {
  const h = host.trim().toLowerCase();
  if (scheme === 'https:' && h.endsWith(':443')) return h.slice(0, -4);
  if (scheme === 'http:' && h.endsWith(':80')) return h.slice(0, -3);
  return h;
}

function sameOriginAsHost(origin: string, hostHeader: string | undefined): boolean {
  if (hostHeader === undefined || hostHeader === '') return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  // URL.host already omits the scheme's default port; the Host header may not
  // (a client, or a TLS proxy forwarding to plain HTTP, may write :443).
  const originHost = url.host.toLowerCase();
  return originHost === canonicalHost(hostHeader, url.protocol);
}

/** Why an admin request must be refused, or undefined when it may go on. */
export function adminRequestRefusal(req: IncomingMessage): AdminRefusal | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return {
      status: 403,
      error: 'CrossSiteRequest',
      message: `the admin API refuses cross-site requests (Sec-Fetch-Site: ${String(site).slice(0, 40)})`,
    };
  }
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOriginAsHost(origin, req.headers.host)) {
    return {
      status: 403,
      error: 'CrossSiteRequest',
      message: 'the admin API refuses requests whose Origin is not this relay',
    };
  }
  const method = req.method ?? 'GET';
  if (!SAFE_METHODS.has(method)) {
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(?:;|$)/i.test(type)) {
      return {
        status: 415,
        error: 'InvalidRequest',
        message: 'admin requests that change state need Content-Type: application/json',
      };
    }
  }
  return undefined;
}
