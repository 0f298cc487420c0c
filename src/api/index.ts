// The relay's HTTP API on the public port: com.atproto.sync XRPC endpoints,
// the admin API under /admin/ and `/_stats`, plus the routes other modules
// register on its routers (`routes`: the collection index's
// listReposByCollection and /admin/collections*). `createApiHandler` returns
// one async handler that answers the paths it owns and returns false for the
// rest (probes, the firehose upgrade path, 404s stay with the relay's server).
// The HTTP plumbing (router, request readers, response writers, the
// route-running and error-answering rules) is src/http/; what this module
// adds around it are the API's own rules: the request target bounded and
// parsed without throwing (src/http/request-target.ts), CORS on GET XRPC
// routes, the admin API's cross-site rule (src/http/admin-guard.ts) and
// authentication (with a lock-out for repeated bad passwords, per client
// network), and per-route metrics. "Who is the client" (trusted proxies, IPv6
// /64) comes from src/http/client-address.ts.
import type { IncomingMessage } from 'node:http';
import type { Registry } from 'prom-client';
import type { EventLog } from '../eventlog/types.ts';
import type { FirehoseServer } from '../firehose/server.ts';
import { adminRequestRefusal } from '../http/admin-guard.ts';
import { clientLimitKey, socketAddress } from '../http/client-address.ts';
import { answerFailure, methodNotAllowed, type PathHandler, sendRouteResult } from '../http/dispatch.ts';
import { Query } from '../http/request.ts';
import { parseRequestTarget } from '../http/request-target.ts';
import { ApiError } from '../http/response.ts';
import { type RequestContext, type RouteRegistrar, Router } from '../http/router.ts';
import type { HostControl } from '../ingest/host-control.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { MetadataStore, RepoHead } from '../store/metadata-store.ts';
import { registerAdmin } from './admin.ts';
import { AdminAuth } from './auth.ts';
import { type ApiMetrics, createApiMetrics, type IdentityStatsSource, noMetrics } from './metrics.ts';
import { RateLimiter } from './rate-limit.ts';
import { createStatsProvider, type RelayStats } from './stats.ts';
import type { AccountActions } from './takedown.ts';
import { registerXrpc } from './xrpc.ts';

export type {
  HostControl,
  HostControlResult,
  HostLiveState,
  RateLimitOverride,
} from '../ingest/host-control.ts';
export { type CacheMetricSources, type IdentityStatsSource, registerCacheMetrics } from './metrics.ts';
export { createStatsProvider, type RelayStats } from './stats.ts';
export { type AccountActions, reverseTakedown, takeDown } from './takedown.ts';

export interface ApiDeps {
  store: MetadataStore;
  eventLog: EventLog;
  /** Operator actions on accounts, taken in the account's order (the Validator). */
  accounts: AccountActions;
  /** Repo heads newer than the stored ones, not yet written (Validator.unwrittenHead). */
  unwrittenHead?: (did: string) => RepoHead | undefined;
  firehose?: Pick<FirehoseServer, 'listConsumers' | 'disconnect'>;
  /** Host actions (ingest); without it requestCrawl and host changes answer 501. */
  hosts?: HostControl;
  /** RELAY_ADMIN_PASSWORD; unset or empty: the admin API answers 404. */
  adminPassword?: string;
  /** requestCrawl calls allowed per client network (IPv4 address or IPv6 /64) per minute (0: no limit; default 10). */
  requestCrawlPerIpPerMinute?: number;
  /** Failed admin logins allowed per client network per minute before a 429 lock-out (default 10). */
  adminFailuresPerMinute?: number;
  /** Largest request body accepted (default 64 KiB). */
  maxBodyBytes?: number;
  /** Defaults for settings that were never written (RELAY_NEW_HOSTS_PER_DAY). */
  newHostsPerDay?: number;
  /**
   * The client's address (default: the socket's peer address, normalised);
   * the relay passes its trusted-proxy resolver. Limits key on its IPv4
   * address or IPv6 /64 (clientLimitKey).
   */
  clientAddress?: (req: IncomingMessage) => string;
  /** The identity cache: its size and hit rate appear in the default `/_stats`. */
  identity?: IdentityStatsSource;
  /** Serves `/_stats` (default: built from store, event log, firehose and identity cache). */
  stats?: () => Promise<RelayStats>;
  /**
   * Routes of other modules, registered on this API's routers so that they
   * are served under the same rules: `admin` ones (paths under /admin/) only
   * after admin authentication (e.g. the collection index's
   * /admin/collections), `xrpc` ones (paths under /xrpc/) like this module's
   * XRPC methods, with CORS for GET (e.g. listReposByCollection).
   */
  routes?: { admin?: readonly RouteRegistrar[]; xrpc?: readonly RouteRegistrar[] };
  /**
   * Told an account's effective status after an admin takedown (`takendown`)
   * or its reversal (`active` or the account's other status), e.g. to hide
   * it in the collection index; errors are ignored.
   */
  onAccountStatus?: (did: string, status: string) => void | Promise<void>;
  registry?: Registry;
  logger?: Logger;
}

export type ApiHandler = PathHandler;

const SUBSCRIBE_REPOS = '/xrpc/com.atproto.sync.subscribeRepos';
const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, HEAD, OPTIONS',
  'access-control-allow-headers': '*',
  'access-control-max-age': '86400',
};

export function createApiHandler(deps: ApiDeps): ApiHandler {
  const logger = (deps.logger ?? silentLogger).child({ module: 'api' });
  const metrics: ApiMetrics = deps.registry ? createApiMetrics(deps.registry) : noMetrics;
  const maxBodyBytes = deps.maxBodyBytes ?? 64 * 1024;
  const clientAddress = deps.clientAddress ?? socketAddress;
  const stats = deps.stats ?? createStatsProvider(deps);

  const xrpc = new Router();
  registerXrpc(xrpc, {
    store: deps.store,
    hosts: deps.hosts,
    crawlLimiter: new RateLimiter({ perMinute: deps.requestCrawlPerIpPerMinute ?? 10 }),
    requestCrawlDefault: true,
    maxBodyBytes,
    unwrittenHead: deps.unwrittenHead,
  });
  xrpc.get('/_stats', () => stats());
  for (const register of deps.routes?.xrpc ?? []) xrpc.use(register);

  const admin = new Router();
  registerAdmin(admin, {
    store: deps.store,
    accounts: deps.accounts,
    firehose: deps.firehose,
    hosts: deps.hosts,
    maxBodyBytes,
    settingDefaults: { requestCrawlEnabled: true, newHostsPerDay: deps.newHostsPerDay ?? 50 },
    onAccountStatus: deps.onAccountStatus,
  });
  for (const register of deps.routes?.admin ?? []) admin.use(register);
  // The dispatcher picks the router by path prefix: a route elsewhere would never be reached.
  const astray = [
    ...admin.routes().filter((r) => !r.path.startsWith('/admin/')),
    ...xrpc.routes().filter((r) => r.path.startsWith('/admin/') || r.path === SUBSCRIBE_REPOS),
  ];
  if (astray.length > 0)
    throw new Error(`API route on the wrong router: ${astray[0].method} ${astray[0].path}`);
  const auth = deps.adminPassword ? new AdminAuth(deps.adminPassword) : undefined;
  const adminFailures = new RateLimiter({ perMinute: deps.adminFailuresPerMinute ?? 10 });

  return async (req, res) => {
    const target = parseRequestTarget(req.url);
    // An unparseable target cannot be one of ours; the relay's 404 answers it
    // unless it looks like an API path (then the error says what is wrong).
    const path = target.ok ? target.path : (req.url ?? '/').split('?', 1)[0].slice(0, 200);
    const isAdmin = path === '/admin' || path.startsWith('/admin/');
    const isXrpc = path.startsWith('/xrpc/') && path !== SUBSCRIBE_REPOS;
    if (!isAdmin && !isXrpc && !xrpc.has(path)) return false;

    const started = performance.now();
    let route = 'other';
    const method = req.method ?? 'GET';
    const cors =
      (isXrpc || path === '/_stats') && (method === 'GET' || method === 'HEAD' || method === 'OPTIONS');
    const finish = (status: number): void => {
      metrics.observe(route, method, status, (performance.now() - started) / 1000);
    };
    const address = clientAddress(req);

    try {
      if (!target.ok) throw new ApiError(target.status, 'InvalidRequest', target.message);
      const router = isAdmin ? admin : xrpc;
      if (cors && method === 'OPTIONS' && router.has(path)) {
        res.writeHead(204, CORS_HEADERS).end();
        finish(204);
        return true;
      }
      if (isAdmin) {
        if (!auth)
          throw new ApiError(404, 'NotFound', 'the admin API is disabled (RELAY_ADMIN_PASSWORD unset)');
        // Cross-site and non-JSON writes are refused before the credentials
        // are looked at, so a hostile page cannot spend the lock-out budget.
        const refusal = adminRequestRefusal(req);
        if (refusal) throw new ApiError(refusal.status, refusal.error, refusal.message);
        const key = clientLimitKey(address);
        if (adminFailures.exhausted(key)) {
          throw new ApiError(429, 'RateLimitExceeded', 'too many failed admin logins; try again later', {
            'retry-after': '60',
          });
        }
        const verdict = auth.check(req);
        if (verdict !== 'ok') {
          if (verdict === 'invalid') {
            adminFailures.take(key);
            // debug, not warn: counted in relay_api_requests_total{status="401"}; a log line per guess would let many clients flood the log.
            logger.debug({ client: address }, 'failed admin login');
          }
          throw new ApiError(
            401,
            verdict === 'missing' ? 'AuthRequired' : 'InvalidCredentials',
            verdict === 'missing' ? 'admin credentials required' : 'wrong admin credentials',
            { 'www-authenticate': 'Basic realm="atrelay admin", charset="UTF-8"' },
          );
        }
      }
      const match = router.match(method, path);
      if (match.kind === 'none') {
        throw isAdmin
          ? new ApiError(404, 'NotFound', 'no such admin endpoint')
          : new ApiError(501, 'MethodNotImplemented', 'method not implemented by this relay');
      }
      if (match.kind === 'method-not-allowed') {
        route = path;
        throw methodNotAllowed(method, match.allow);
      }
      route = match.route.path;
      const ctx: RequestContext = {
        req,
        res,
        path,
        query: new Query(target.params),
        clientAddress: address,
        clientKey: clientLimitKey(address),
      };
      const out = await match.route.handler(ctx);
      sendRouteResult(res, out, cors && match.route.method === 'GET' ? CORS_HEADERS : {});
      finish(res.statusCode);
    } catch (err) {
      const status = answerFailure(
        req,
        res,
        err,
        (unexpected) =>
          logger.error({ err: unexpected, path, method, client: address }, 'API request failed'),
        cors ? CORS_HEADERS : {},
      );
      if (status !== undefined) finish(status);
    }
    return true;
  };
}
