// The operator's dashboard on the public port, as one handler that answers
// the paths it owns and returns false for the rest (like the API's handler):
//
//   GET  /                          the plain landing page (landing.ts)
//   GET  /admin, /admin/            the login page, or the single-page
//                                   dashboard once logged in (static/)
//   POST /admin/login, /admin/logout   session cookie in, out (sessions.ts)
//   GET  /admin/dashboard/static/*  the page's JS and CSS, uPlot from
//                                   node_modules/uplot/dist (no CDN)
//   GET  /admin/dashboard/api/overview   chart points (overview.ts)
//   GET  /admin/dashboard/api/hosts      one page of the host table (hosts-table.ts)
//   GET  /admin/dashboard/api/resolve-handle   handle → DID for the Accounts page
//
// Every other /admin/ request is the admin API's. A browser holding a live
// session cookie (and no Authorization header) gets the admin password put
// into that request's Authorization header before the API sees it, so the
// dashboard calls the same routes, checks and errors as curl does; the API
// still applies its cross-site and JSON-only rules (src/http/admin-guard.ts).
// An expired or unknown cookie is answered 401 here, without the Basic
// challenge that would pop up the browser's password prompt.
//
// Logins: the admin guard's cross-site rules first, then a lock-out of
// failed attempts per client network (as the admin API's), then the
// password. The cookie is SameSite=Strict, so no other site can make the
// browser send it; HTML answers carry a Content-Security-Policy that allows
// only the relay's own scripts.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminAuth } from '../api/auth.ts';
import { RateLimiter } from '../api/rate-limit.ts';
import { adminRequestRefusal } from '../http/admin-guard.ts';
import { clientLimitKey, socketAddress } from '../http/client-address.ts';
import { parseRequestTarget } from '../http/request-target.ts';
import { isValidHandle, normalizeHandle } from '../protocol/syntax.ts';
import { HOST_SORT_KEYS, type HostSortKey, type HostsTable } from './hosts-table.ts';
import { landingPage } from './landing.ts';
import type { OverviewSampler } from './overview.ts';
import {
  passwordMatches,
  readCookie,
  requestIsHttps,
  SESSION_COOKIE,
  SessionStore,
  sessionCookie,
} from './sessions.ts';

export type DashboardHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

export interface DashboardDeps {
  /** RELAY_ADMIN_PASSWORD; unset or empty: /admin/ answers 404 (the landing page still works). */
  adminPassword?: string;
  sampler: OverviewSampler;
  hostsTable: HostsTable;
  /** Handle → DID (the relay's handle resolver); without it handle lookups answer 501. */
  resolveHandle?: (handle: string) => Promise<string | null | undefined>;
  version: string;
  /** Seconds since the relay started (default: process uptime). */
  uptimeSeconds?: () => number;
  clientAddress?: (req: IncomingMessage) => string;
  /** Failed logins allowed per client network per minute (default 10, as the admin API). */
  loginFailuresPerMinute?: number;
  sessions?: SessionStore;
}

const STATIC_DIR = join(dirname(fileURLToPath(import.meta.url)), 'static');
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot'));

/** What /admin/dashboard/static/ serves: a fixed list, read once, never a path from the URL. */
const STATIC_FILES: Record<string, { file: string; type: string }> = {
  'app.js': { file: join(STATIC_DIR, 'app.js'), type: 'text/javascript' },
  'login.js': { file: join(STATIC_DIR, 'login.js'), type: 'text/javascript' },
  'app.css': { file: join(STATIC_DIR, 'app.css'), type: 'text/css' },
  'uPlot.min.js': { file: join(UPLOT_DIR, 'uPlot.iife.min.js'), type: 'text/javascript' },
  'uPlot.min.css': { file: join(UPLOT_DIR, 'uPlot.min.css'), type: 'text/css' },
};
const STATIC_PREFIX = '/admin/dashboard/static/';
const API_PREFIX = '/admin/dashboard/api/';

const HTML_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string>): void {
  res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  send(res, status, JSON.stringify(body), {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
  });
}

const error = (res: ServerResponse, status: number, name: string, message: string, headers = {}): void =>
  sendJson(res, status, { error: name, message }, headers);

/** Reads a small JSON body ({password}); null when it is not one or is larger than maxBytes. */
async function readSmallJson(
  req: IncomingMessage,
  maxBytes: number,
): Promise<Record<string, unknown> | null> {
  if (Number(req.headers['content-length'] ?? 0) > maxBytes) {
    req.resume();
    return null;
  }
  // Listeners, not for-await: leaving an async iterator early destroys the
  // request and with it the socket the answer goes out on.
  const raw = await new Promise<Buffer | null>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) over = true;
      else chunks.push(chunk);
    });
    req.once('end', () => resolve(over ? null : Buffer.concat(chunks)));
    req.once('error', () => resolve(null));
  });
  if (raw === null) return null;
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function createDashboardHandler(deps: DashboardDeps): DashboardHandler {
  const password = deps.adminPassword || undefined;
  const sessions = deps.sessions ?? new SessionStore();
  const auth = password ? new AdminAuth(password) : undefined;
  const failures = new RateLimiter({ perMinute: deps.loginFailuresPerMinute ?? 10 });
  const clientAddress = deps.clientAddress ?? socketAddress;
  const uptime = deps.uptimeSeconds ?? (() => process.uptime());
  const staticCache = new Map<string, { body: Buffer; etag: string }>();
  const page = (name: string): string => readFileSync(join(STATIC_DIR, name), 'utf8');
  const pages = { app: page('index.html'), login: page('login.html') };

  const sessionOf = (req: IncomingMessage): string | undefined => readCookie(req, SESSION_COOKIE);

  /** Session cookie or the admin API's own credentials; counts wrong passwords. */
  const authorized = (req: IncomingMessage): 'ok' | 'missing' | 'invalid' | 'locked' => {
    if (sessions.valid(sessionOf(req))) return 'ok';
    if (!auth || req.headers.authorization === undefined) return 'missing';
    const key = clientLimitKey(clientAddress(req));
    if (failures.exhausted(key)) return 'locked';
    const verdict = auth.check(req);
    if (verdict === 'invalid') failures.take(key);
    return verdict;
  };

  const login = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (!password)
      return error(res, 404, 'NotFound', 'the admin API is disabled (RELAY_ADMIN_PASSWORD unset)');
    const key = clientLimitKey(clientAddress(req));
    if (failures.exhausted(key)) {
      req.resume();
      return error(res, 429, 'RateLimitExceeded', 'too many failed logins; try again later', {
        'retry-after': '60',
      });
    }
    const body = await readSmallJson(req, 4096);
    const candidate = body?.password;
    if (typeof candidate !== 'string' || candidate.length === 0 || candidate.length > 1024) {
      return error(res, 400, 'InvalidRequest', 'give {"password": "..."} as JSON');
    }
    if (!passwordMatches(password, candidate)) {
      failures.take(key);
      return error(res, 401, 'InvalidCredentials', 'wrong admin password');
    }
    const { token } = sessions.create();
    sendJson(
      res,
      200,
      { success: true },
      {
        'set-cookie': sessionCookie(token, sessions.ttlMs / 1000, requestIsHttps(req)),
      },
    );
  };

  const api = async (res: ServerResponse, name: string, params: URLSearchParams): Promise<void> => {
    if (name === 'overview') {
      const since = Number(params.get('since') ?? '0');
      await deps.sampler.refresh();
      const points = deps.sampler.pointsSince(Number.isFinite(since) ? since : 0);
      return sendJson(res, 200, { now: Date.now(), points });
    }
    if (name === 'hosts') {
      const sort = params.get('sort') ?? 'hostname';
      if (!(HOST_SORT_KEYS as readonly string[]).includes(sort)) {
        return error(res, 400, 'InvalidRequest', `sort must be one of ${HOST_SORT_KEYS.join(', ')}`);
      }
      const int = (n: string, fallback: number): number => {
        const v = params.get(n);
        return v !== null && /^\d{1,9}$/.test(v) ? Number(v) : fallback;
      };
      if (params.get('fresh') === '1') deps.hostsTable.invalidate();
      await deps.sampler.refresh();
      const result = await deps.hostsTable.query({
        search: (params.get('q') ?? '').slice(0, 200),
        sort: sort as HostSortKey,
        descending: params.get('dir') === 'desc',
        offset: int('offset', 0),
        limit: int('limit', 50),
      });
      return sendJson(res, 200, result);
    }
    if (name === 'resolve-handle') {
      const raw = (params.get('handle') ?? '').trim().replace(/^@/, '');
      if (!isValidHandle(raw)) return error(res, 400, 'InvalidRequest', 'not a valid handle');
      if (!deps.resolveHandle) return error(res, 501, 'NotImplemented', 'handle resolution is not available');
      const handle = normalizeHandle(raw);
      const did = await deps.resolveHandle(handle).catch(() => undefined);
      if (!did) return error(res, 404, 'HandleNotFound', `could not resolve ${handle}`);
      return sendJson(res, 200, { handle, did });
    }
    return error(res, 404, 'NotFound', 'no such dashboard endpoint');
  };

  return async (req, res) => {
    const target = parseRequestTarget(req.url);
    if (!target.ok) return false;
    const { path, params } = target;
    const method = req.method ?? 'GET';
    const read = method === 'GET' || method === 'HEAD';

    if (path === '/') {
      if (!read) return false;
      send(
        res,
        200,
        landingPage({
          version: deps.version,
          uptimeSeconds: uptime(),
          host: req.headers.host,
          https: requestIsHttps(req),
        }),
        {
          'content-type': 'text/html; charset=utf-8',
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
        },
      );
      return true;
    }
    if (path !== '/admin' && !path.startsWith('/admin/')) return false;

    if (path.startsWith(STATIC_PREFIX) && read) {
      const entry = STATIC_FILES[path.slice(STATIC_PREFIX.length)];
      if (!entry) return false; // the API's 404
      let file = staticCache.get(entry.file);
      if (!file) {
        const body = readFileSync(entry.file);
        file = { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
        staticCache.set(entry.file, file);
      }
      // Revalidated on each load (no-cache), answered 304 while unchanged.
      const headers = { etag: file.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
      if (req.headers['if-none-match'] === file.etag) {
        res.writeHead(304, headers).end();
        return true;
      }
      res.writeHead(200, {
        ...headers,
        'content-type': `${entry.type}; charset=utf-8`,
        'content-length': String(file.body.length),
      });
      res.end(method === 'HEAD' ? undefined : file.body);
      return true;
    }

    const ownPath =
      path === '/admin' ||
      path === '/admin/' ||
      path === '/admin/login' ||
      path === '/admin/logout' ||
      path.startsWith(API_PREFIX);
    if (ownPath) {
      if (!password) {
        error(res, 404, 'NotFound', 'the admin API is disabled (RELAY_ADMIN_PASSWORD unset)');
        return true;
      }
      const refusal = adminRequestRefusal(req);
      if (refusal) {
        req.resume();
        error(res, refusal.status, refusal.error, refusal.message);
        return true;
      }
    }

    if (path === '/admin') {
      res.writeHead(302, { location: '/admin/', 'content-length': '0' }).end();
      return true;
    }
    if (path === '/admin/') {
      if (!read) return false;
      send(res, 200, sessions.valid(sessionOf(req)) ? pages.app : pages.login, HTML_HEADERS);
      return true;
    }
    if (path === '/admin/login') {
      if (method !== 'POST') {
        error(res, 405, 'InvalidRequest', 'POST {"password"} to log in', { allow: 'POST' });
        return true;
      }
      await login(req, res);
      return true;
    }
    if (path === '/admin/logout') {
      req.resume();
      if (method !== 'POST') {
        error(res, 405, 'InvalidRequest', 'POST to log out', { allow: 'POST' });
        return true;
      }
      sessions.revoke(sessionOf(req));
      sendJson(res, 200, { success: true }, { 'set-cookie': sessionCookie('', 0, requestIsHttps(req)) });
      return true;
    }
    if (path.startsWith(API_PREFIX)) {
      if (!read) {
        error(res, 405, 'InvalidRequest', 'dashboard endpoints are GET only', { allow: 'GET' });
        return true;
      }
      const verdict = authorized(req);
      if (verdict === 'locked') {
        error(res, 429, 'RateLimitExceeded', 'too many failed logins; try again later', {
          'retry-after': '60',
        });
      } else if (verdict !== 'ok') {
        error(res, 401, verdict === 'missing' ? 'AuthRequired' : 'InvalidCredentials', 'log in at /admin/');
      } else {
        await api(res, path.slice(API_PREFIX.length), params);
      }
      return true;
    }

    // The admin API's routes: a session stands in for the password.
    const token = sessionOf(req);
    if (token !== undefined && req.headers.authorization === undefined) {
      if (!sessions.valid(token)) {
        req.resume();
        error(res, 401, 'SessionExpired', 'the dashboard session has ended; log in again at /admin/');
        return true;
      }
      if (password) req.headers.authorization = `Bearer ${password}`;
    }
    return false;
  };
}
