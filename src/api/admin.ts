// The operator API under /admin/ (authentication is checked by the
// dispatcher before any of these run). Route names follow zlay's
// (`/admin/hosts`, `/admin/hosts/add`, `/admin/hosts/block`, …) and extend it
// in the same style for domain bans, repos (takedowns), consumers and
// settings. Reads come from the metadata store; host actions go through
// HostControl (src/ingest/host-control.ts; the HostManager itself) so ingest
// can drop or re-dial connections; takedowns go through
// takedown.ts so the firehose stays consistent. Writes take a JSON body, reads
// take query parameters.

import { effectiveStatus, isActive } from '../accounts/status.ts';
import type { FirehoseServer } from '../firehose/server.ts';
import { Body, decodeCursor, encodeCursor, type Query, readJsonBody, truncate } from '../http/request.ts';
import { ApiError, invalidRequest } from '../http/response.ts';
import type { RequestContext, Router } from '../http/router.ts';
import type {
  HostControl,
  HostControlResult,
  HostLiveState,
  RateLimitOverride,
} from '../ingest/host-control.ts';
import { isValidDid } from '../protocol/syntax.ts';
import { normaliseDomain } from '../store/hostname.ts';
import type { Account, Host, HostStatus, MetadataStore } from '../store/metadata-store.ts';
import { HOST_STATUSES } from '../store/metadata-store.ts';
import { type AccountActions, reverseTakedown, takeDown } from './takedown.ts';
import { parseHostnameParam, requireDid } from './xrpc.ts';

export interface AdminDeps {
  store: MetadataStore;
  /** Takes takedowns and reversals in the account's order (the Validator: the one log writer). */
  accounts: AccountActions;
  firehose?: Pick<FirehoseServer, 'listConsumers' | 'disconnect'>;
  hosts?: HostControl;
  maxBodyBytes: number;
  /** Values used when a setting was never written. */
  settingDefaults: { requestCrawlEnabled: boolean; newHostsPerDay: number };
  /** Told an account's effective status after an admin takedown or reversal (takedown.ts). */
  onAccountStatus?: (did: string, status: string) => void | Promise<void>;
}

const OK = { success: true } as const;

function adminHostView(h: Host, hosts: HostControl | undefined): Record<string, unknown> {
  const live = hosts?.liveState?.(h.id);
  return {
    id: h.id,
    hostname: h.hostname,
    tls: h.tls,
    status: h.status,
    cursor: h.cursor,
    accountCount: h.accountCount,
    accountLimit: h.accountLimit,
    trusted: h.trusted,
    failures: h.failures,
    connected: live?.connected ?? false,
    ...(live?.rateLimits ? { rateLimits: live.rateLimits } : {}),
    ...(live?.rateLimitOverride ? { rateLimitOverride: live.rateLimitOverride } : {}),
    ...(live?.defaultRateLimits ? { defaultRateLimits: live.defaultRateLimits } : {}),
    ...(live?.eventsReceived !== undefined ? { eventsReceived: live.eventsReceived } : {}),
    ...(live?.state !== undefined ? { live: liveView(live) } : {}),
    createdAt: h.createdAt.toISOString(),
    updatedAt: h.updatedAt.toISOString(),
  };
}

/** The subscriber's in-memory state, apart from the stored fields it can run ahead of. */
function liveView(live: HostLiveState): Record<string, unknown> {
  return {
    state: live.state,
    cursor: live.cursor,
    inFlight: live.inFlight,
    queued: live.queued,
    pastCursor: live.pastCursor,
    paused: live.paused,
    failures: live.failures,
    ...(live.lastError !== undefined ? { lastError: live.lastError } : {}),
  };
}

function accountView(a: Account, host: Host | undefined, takenDown: boolean): Record<string, unknown> {
  return {
    uid: a.uid,
    did: a.did,
    hostId: a.hostId,
    hostname: host?.hostname ?? null,
    active: isActive(a),
    status: effectiveStatus(a),
    localStatus: a.status,
    upstreamStatus: a.upstreamStatus,
    takenDown,
    head: a.head,
    createdAt: a.createdAt.toISOString(),
  };
}

async function requireHost(store: MetadataStore, hostname: string): Promise<Host> {
  const host = await store.getHostByHostname(hostname);
  if (!host) throw new ApiError(404, 'HostNotFound', `host not found: ${hostname}`);
  return host;
}

function requireHostControl(hosts: HostControl | undefined): HostControl {
  if (!hosts) throw new ApiError(501, 'NotImplemented', 'host control is not available in this relay');
  return hosts;
}

async function hostResult(
  store: MetadataStore,
  hostname: string,
  r: HostControlResult,
  hosts: HostControl | undefined,
): Promise<Record<string, unknown>> {
  if (!r.ok) throw new ApiError(r.status, r.error, r.message);
  const host = r.host ?? (await store.getHostByHostname(hostname));
  return host ? { ...OK, host: adminHostView(host, hosts) } : { ...OK };
}

function parseStatus(query: Query): HostStatus | undefined {
  const s = query.optional('status');
  if (s === undefined) return undefined;
  if (!(HOST_STATUSES as readonly string[]).includes(s)) {
    throw invalidRequest(`status must be one of ${HOST_STATUSES.join(', ')}`);
  }
  return s as HostStatus;
}

async function body(ctx: RequestContext, deps: AdminDeps): Promise<Body> {
  return new Body(await readJsonBody(ctx.req, deps.maxBodyBytes));
}

export function registerAdmin(router: Router, deps: AdminDeps): void {
  const { store } = deps;

  // --- hosts ---

  router.get('/admin/hosts', async ({ query }) => {
    const limit = query.int('limit', 1, 1000, 500);
    const after = decodeCursor(query.optional('cursor'));
    const status = parseStatus(query);
    const rows = await store.listHosts({ after, limit, status });
    const out: { cursor?: string; hosts: Record<string, unknown>[] } = {
      hosts: rows.map((h) => adminHostView(h, deps.hosts)),
    };
    if (rows.length === limit) out.cursor = encodeCursor(rows[rows.length - 1].id);
    return out;
  });

  router.get('/admin/hosts/get', async ({ query }) => {
    const host = await requireHost(store, parseHostnameParam(query.required('hostname')));
    return adminHostView(host, deps.hosts);
  });

  const hostAction = (
    path: string,
    act: (hc: HostControl, hostname: string, b: Body) => Promise<HostControlResult>,
  ): void => {
    router.post(path, async (ctx) => {
      const b = await body(ctx, deps);
      const hostname = parseHostnameParam(b.string('hostname'));
      const hc = requireHostControl(deps.hosts);
      await requireHost(store, hostname);
      return hostResult(store, hostname, await act(hc, hostname, b), deps.hosts);
    });
  };

  router.post('/admin/hosts/add', async (ctx) => {
    const raw = (await body(ctx, deps)).string('hostname').trim();
    const hostname = parseHostnameParam(raw);
    // Passed as given: a scheme (http://, ws://) carries the TLS choice ingest needs.
    const r = await requireHostControl(deps.hosts).addHost(raw);
    return hostResult(store, hostname, r, deps.hosts);
  });
  hostAction('/admin/hosts/block', (hc, h) => hc.blockHost(h));
  hostAction('/admin/hosts/unblock', (hc, h) => hc.unblockHost(h));
  hostAction('/admin/hosts/reconnect', (hc, h) => hc.reconnectHost(h));
  hostAction('/admin/hosts/account-limit', (hc, h, b) =>
    hc.setAccountLimit(h, b.int('accountLimit', 0, 1_000_000_000)),
  );
  hostAction('/admin/hosts/trusted', (hc, h, b) => hc.setTrusted(h, b.bool('trusted')));
  hostAction('/admin/hosts/rate-limits', (hc, h, b) => {
    if (!hc.setRateLimits) {
      throw new ApiError(501, 'NotImplemented', 'per-host rate limits cannot be changed in this relay');
    }
    const limits: RateLimitOverride = {};
    for (const k of ['perSecond', 'perHour', 'perDay'] as const) {
      const v = b.optionalInt(k, 0, 1_000_000_000); // 0: back to the default
      if (v !== undefined) limits[k] = v;
    }
    if (Object.keys(limits).length === 0) {
      throw invalidRequest('give at least one of perSecond, perHour, perDay');
    }
    return hc.setRateLimits(h, limits);
  });

  // Cursor reset: a PDS that reset its sequence (FutureCursor, host idle) or an
  // event over the frame limit (host offline). `cursor` null or absent: none
  // (live); 0 means the same, as the relay stores "no cursor" as 0.
  router.post('/admin/hosts/reset-cursor', async (ctx) => {
    const raw = await readJsonBody(ctx.req, deps.maxBodyBytes);
    const b = new Body(raw);
    const hostname = parseHostnameParam(b.string('hostname'));
    const cursor =
      raw.cursor === undefined || raw.cursor === null ? null : b.int('cursor', 0, Number.MAX_SAFE_INTEGER);
    const hc = requireHostControl(deps.hosts);
    if (!hc.resetCursor) {
      throw new ApiError(501, 'NotImplemented', 'host cursors cannot be reset in this relay');
    }
    await requireHost(store, hostname);
    const r = await hc.resetCursor(hostname, cursor);
    if (!r.ok) throw new ApiError(r.status, r.error, r.message);
    const host = r.host ?? (await requireHost(store, hostname));
    return {
      ...OK,
      hostname: host.hostname,
      cursor: host.cursor > 0 ? host.cursor : null,
      status: host.status,
    };
  });

  router.get('/admin/hosts/throttled', async ({ query }) => {
    const host = await requireHost(store, parseHostnameParam(query.required('hostname')));
    const limit = query.int('limit', 1, 1000, 500);
    const after = decodeCursor(query.optional('cursor'));
    const rows = await store.listThrottledAccounts(host.id, { after, limit });
    const out: { cursor?: string; hostname: string; accounts: Record<string, unknown>[] } = {
      hostname: host.hostname,
      accounts: rows.map((a) => ({ uid: a.uid, did: a.did, status: a.status, head: a.head })),
    };
    if (rows.length === limit) out.cursor = encodeCursor(rows[rows.length - 1].uid);
    return out;
  });

  // --- domain bans ---

  router.get('/admin/domains/bans', async () => {
    const bans = await store.listDomainBans();
    return { domains: bans.map((b) => ({ domain: b.domain, createdAt: b.createdAt.toISOString() })) };
  });

  const parseDomain = (raw: string): string => {
    try {
      return normaliseDomain(raw);
    } catch {
      throw invalidRequest(`domain is not a valid domain name: "${truncate(raw, 80)}"`);
    }
  };

  router.post('/admin/domains/ban', async (ctx) => {
    const domain = parseDomain((await body(ctx, deps)).string('domain'));
    await store.addDomainBan(domain);
    return { ...OK, domain };
  });

  router.post('/admin/domains/unban', async (ctx) => {
    const domain = parseDomain((await body(ctx, deps)).string('domain'));
    const removed = await store.removeDomainBan(domain);
    if (!removed) throw new ApiError(404, 'NotFound', `no ban on ${domain}`);
    return { ...OK, domain };
  });

  // --- repos ---

  const bodyDid = (b: Body): string => {
    const did = b.string('did');
    if (!isValidDid(did)) throw invalidRequest(`did is not a valid DID: "${truncate(did, 80)}"`);
    return did;
  };

  router.post('/admin/repos/takedown', async (ctx) => {
    const b = await body(ctx, deps);
    const did = bodyDid(b);
    const reason = b.optionalString('reason');
    const outcome = await takeDown(deps, did, reason);
    return { ...OK, did, known: outcome.known, ...(outcome.seq !== undefined ? { seq: outcome.seq } : {}) };
  });

  router.post('/admin/repos/reverse-takedown', async (ctx) => {
    const did = bodyDid(await body(ctx, deps));
    const outcome = await reverseTakedown(deps, did);
    if (!outcome) throw new ApiError(404, 'NotFound', `no takedown recorded for ${did}`);
    return { ...OK, did, known: outcome.known, ...(outcome.seq !== undefined ? { seq: outcome.seq } : {}) };
  });

  router.get('/admin/repos/takedowns', async ({ query }) => {
    const limit = query.int('limit', 1, 1000, 500);
    const cursor = query.optional('cursor');
    if (cursor !== undefined && !isValidDid(cursor)) throw invalidRequest('invalid cursor');
    const rows = await store.listTakedowns({ after: cursor, limit });
    const out: { cursor?: string; takedowns: Record<string, unknown>[] } = {
      takedowns: rows.map((t) => ({ did: t.did, reason: t.reason, createdAt: t.createdAt.toISOString() })),
    };
    if (rows.length === limit) out.cursor = rows[rows.length - 1].did;
    return out;
  });

  router.get('/admin/repos/get', async ({ query }) => {
    const did = requireDid(query);
    const [account, takenDown] = await Promise.all([store.getAccountByDid(did), store.isTakenDown(did)]);
    if (!account) {
      if (takenDown) return { did, known: false, takenDown: true };
      throw new ApiError(404, 'RepoNotFound', `repo not found: ${did}`);
    }
    const host = await store.getHost(account.hostId);
    return { known: true, ...accountView(account, host, takenDown) };
  });

  // --- consumers ---

  router.get('/admin/consumers', async () => {
    const consumers = deps.firehose?.listConsumers() ?? [];
    return { consumers };
  });

  router.post('/admin/consumers/disconnect', async (ctx) => {
    const id = (await body(ctx, deps)).int('id', 1, Number.MAX_SAFE_INTEGER);
    if (!deps.firehose?.disconnect(id)) throw new ApiError(404, 'NotFound', `no consumer with id ${id}`);
    return { ...OK, id };
  });

  // --- settings ---

  const readSettings = async (): Promise<{ requestCrawlEnabled: boolean; newHostsPerDay: number }> => ({
    requestCrawlEnabled:
      (await store.getSetting('requestCrawlEnabled')) ?? deps.settingDefaults.requestCrawlEnabled,
    newHostsPerDay: (await store.getSetting('newHostsPerDay')) ?? deps.settingDefaults.newHostsPerDay,
  });

  router.get('/admin/settings', readSettings);

  router.post('/admin/settings', async (ctx) => {
    const b = await body(ctx, deps);
    const requestCrawlEnabled = b.optionalBool('requestCrawlEnabled');
    const newHostsPerDay = b.optionalInt('newHostsPerDay', 0, 1_000_000);
    if (requestCrawlEnabled === undefined && newHostsPerDay === undefined) {
      throw invalidRequest('give requestCrawlEnabled and/or newHostsPerDay');
    }
    if (requestCrawlEnabled !== undefined) await store.setSetting('requestCrawlEnabled', requestCrawlEnabled);
    if (newHostsPerDay !== undefined) await store.setSetting('newHostsPerDay', newHostsPerDay);
    return { ...OK, settings: await readSettings() };
  });
}
