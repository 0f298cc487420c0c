// The public com.atproto.sync query endpoints a relay implements (listRepos,
// getRepoStatus, getLatestCommit, getRepo, listHosts, getHostStatus) and the
// requestCrawl procedure. Output shapes and error names follow the lexicons;
// HTTP statuses follow indigo's relay (404 for RepoNotFound / HostNotFound,
// 403 for inactive repos). Everything is read from the metadata store; host
// actions go through HostControl (ingest).
import type { ServerResponse } from 'node:http';
import { effectiveStatus, isActive } from '../accounts/status.ts';
import { Body, decodeCursor, encodeCursor, type Query, readJsonBody, truncate } from '../http/request.ts';
import { ApiError, invalidRequest, sendEmpty } from '../http/response.ts';
import type { RequestContext, Router } from '../http/router.ts';
import type { HostControl } from '../ingest/host-control.ts';
import { isValidDid } from '../protocol/syntax.ts';
import { normaliseHostname } from '../store/hostname.ts';
import type { Account, Host, MetadataStore, RepoHead } from '../store/metadata-store.ts';
import { inactiveRepoError, lexiconHostStatus } from './account-status.ts';
import type { RateLimiter } from './rate-limit.ts';

export const XRPC = {
  listRepos: '/xrpc/com.atproto.sync.listRepos',
  getRepoStatus: '/xrpc/com.atproto.sync.getRepoStatus',
  getLatestCommit: '/xrpc/com.atproto.sync.getLatestCommit',
  getRepo: '/xrpc/com.atproto.sync.getRepo',
  listHosts: '/xrpc/com.atproto.sync.listHosts',
  getHostStatus: '/xrpc/com.atproto.sync.getHostStatus',
  requestCrawl: '/xrpc/com.atproto.sync.requestCrawl',
} as const;

export interface XrpcDeps {
  store: MetadataStore;
  hosts?: HostControl;
  /** Per-client limiter for requestCrawl (keyed by RequestContext.clientKey: IPv4 address or IPv6 /64). */
  crawlLimiter: RateLimiter;
  /** Whether requestCrawl is on when the setting was never written. */
  requestCrawlDefault: boolean;
  maxBodyBytes: number;
  /** A head newer than the stored one, not yet written (Validator.unwrittenHead); absent: the store's. */
  unwrittenHead?: (did: string) => RepoHead | undefined;
}

export function requireDid(query: Query, name = 'did'): string {
  const did = query.required(name);
  if (!isValidDid(did)) throw invalidRequest(`${name} is not a valid DID: "${truncate(did, 80)}"`);
  return did;
}

export function parseHostnameParam(raw: string, name = 'hostname'): string {
  try {
    return normaliseHostname(raw);
  } catch {
    throw invalidRequest(`${name} is not a valid hostname: "${truncate(raw, 80)}"`);
  }
}

async function findAccount(store: MetadataStore, did: string): Promise<Account> {
  const account = await store.getAccountByDid(did);
  if (!account) throw new ApiError(404, 'RepoNotFound', `repo not found: ${did}`);
  return account;
}

function hostView(h: Host): { hostname: string; seq: number; accountCount: number; status: string } {
  return {
    hostname: h.hostname,
    seq: h.cursor,
    accountCount: h.accountCount,
    status: lexiconHostStatus(h.status),
  };
}

export function registerXrpc(router: Router, deps: XrpcDeps): void {
  const { store } = deps;
  // Heads are written to the store in batches after their events are served:
  // the validator's unwritten head, when there is one, is the current one.
  const headOf = (a: Account): RepoHead | null => deps.unwrittenHead?.(a.did) ?? a.head;

  router.get(XRPC.listRepos, async ({ query }) => {
    const limit = query.int('limit', 1, 1000, 500);
    const after = decodeCursor(query.optional('cursor'));
    const rows = await store.listAccounts({ after, limit, activeOnly: true });
    const repos = [];
    for (const a of rows) {
      // The lexicon requires head and rev: an account with no accepted commit yet is skipped.
      const head = headOf(a);
      if (!head) continue;
      repos.push({ did: a.did, head: head.commitCid, rev: head.rev, active: true });
    }
    const out: { cursor?: string; repos: typeof repos } = { repos };
    if (rows.length === limit) out.cursor = encodeCursor(rows[rows.length - 1].uid);
    return out;
  });

  router.get(XRPC.getRepoStatus, async ({ query }) => {
    const did = requireDid(query);
    const account = await findAccount(store, did);
    const active = isActive(account);
    const out: { did: string; active: boolean; status?: string; rev?: string } = { did, active };
    if (!active) out.status = effectiveStatus(account);
    else {
      const head = headOf(account);
      if (head) out.rev = head.rev;
    }
    return out;
  });

  router.get(XRPC.getLatestCommit, async ({ query }) => {
    const did = requireDid(query);
    const account = await findAccount(store, did);
    if (!isActive(account)) throw inactiveRepoError(effectiveStatus(account));
    const head = headOf(account);
    if (!head) throw new ApiError(404, 'RepoNotFound', `the relay has not seen a commit for ${did} yet`);
    return { cid: head.commitCid, rev: head.rev };
  });

  router.get(XRPC.getRepo, async ({ query, res }) => {
    const did = requireDid(query);
    const since = query.optional('since');
    const account = await findAccount(store, did);
    if (!isActive(account)) throw inactiveRepoError(effectiveStatus(account));
    const host = await store.getHost(account.hostId);
    if (!host) throw new ApiError(404, 'RepoNotFound', `no host known for ${did}`);
    const target = new URL(`${host.tls ? 'https' : 'http'}://${host.hostname}${XRPC.getRepo}`);
    target.searchParams.set('did', did);
    if (since) target.searchParams.set('since', since);
    redirect(res, target.toString());
    return undefined;
  });

  router.get(XRPC.listHosts, async ({ query }) => {
    const limit = query.int('limit', 1, 1000, 200);
    const after = decodeCursor(query.optional('cursor'));
    const rows = await store.listHosts({ after, limit });
    const out: { cursor?: string; hosts: ReturnType<typeof hostView>[] } = { hosts: rows.map(hostView) };
    if (rows.length === limit) out.cursor = encodeCursor(rows[rows.length - 1].id);
    return out;
  });

  router.get(XRPC.getHostStatus, async ({ query }) => {
    const hostname = parseHostnameParam(query.required('hostname'));
    const host = await store.getHostByHostname(hostname);
    if (!host) throw new ApiError(404, 'HostNotFound', `host not found: ${hostname}`);
    return hostView(host);
  });

  router.post(XRPC.requestCrawl, async (ctx) => requestCrawl(ctx, deps));
}

async function requestCrawl(ctx: RequestContext, deps: XrpcDeps): Promise<undefined> {
  const decision = deps.crawlLimiter.take(ctx.clientKey);
  if (!decision.ok) {
    throw new ApiError(
      429,
      'RateLimitExceeded',
      'too many requestCrawl calls from this address or IPv6 /64',
      {
        'retry-after': String(decision.retryAfterSeconds),
      },
    );
  }
  const body = new Body(await readJsonBody(ctx.req, deps.maxBodyBytes));
  const raw = body.string('hostname').trim();
  parseHostnameParam(raw);
  const enabled = (await deps.store.getSetting('requestCrawlEnabled')) ?? deps.requestCrawlDefault;
  if (!enabled) throw new ApiError(403, 'Forbidden', 'public requestCrawl is disabled on this relay');
  if (!deps.hosts) throw new ApiError(501, 'MethodNotImplemented', 'this relay does not crawl new hosts');
  // Passed as given: a scheme (http://, ws://) carries the TLS choice ingest needs.
  const result = await deps.hosts.requestCrawl(raw, { admin: false });
  if (!result.ok) throw new ApiError(result.status, result.error, result.message);
  sendEmpty(ctx.res, 200);
  return undefined;
}

function redirect(res: ServerResponse, location: string): void {
  sendEmpty(res, 302, { location });
}
