// Admin endpoints of the collection index (the relay mounts them behind its
// admin authentication; this module does not check credentials):
//   GET  /admin/collections?limit=&cursor=    known collections with pair counts
//   GET  /admin/collections/backfill          backfill status
//   POST /admin/collections/backfill          start a backfill (JSON BackfillSource);
//                                             202, or 409 if one is running
//   POST /admin/collections/backfill/stop     stop it (progress is kept)
// The collection list is admin-only: counts reveal little, but listing every
// NSID ever seen (including junk ones) is not something to expose publicly.
// The routes are registered on the API's admin router (`collectionsAdminRoutes`,
// wired in src/relay.ts), which authenticates and answers errors. Like every
// admin route they are under the cross-site rule (src/http/admin-guard.ts: no
// cross-site requests, writes only as application/json), which they apply
// themselves too, so they stay safe on whatever router serves them. A backfill started here may name its
// known-NSID list (`collectionsFrom`) only as an http(s) URL: a local file is
// read only when the operator's own config names it
// (RELAY_COLLECTIONS_KNOWN_NSIDS), never because a request asked for it.
import { adminRequestRefusal } from '../http/admin-guard.ts';
import { readJsonBody } from '../http/request.ts';
import { ApiError, invalidRequest, sendJson } from '../http/response.ts';
import type { Handler, RouteRegistrar } from '../http/router.ts';
import type { BackfillSource, CollectionBackfiller } from './backfill.ts';
import type { CollectionIndexStore } from './index-store.ts';

export const ADMIN_COLLECTIONS_PATH = '/admin/collections';
/** Largest backfill source accepted (a long `collections` list fits). */
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * Why a backfill source from the admin API must be refused beyond what the
 * backfiller itself checks: `collectionsFrom` must be an http(s) URL, read
 * the way the backfiller tells URLs from file paths (a case-sensitive
 * `http://` or `https://` prefix), so that nothing it would read as a path
 * gets through.
 */
function sourceRefusal(body: Record<string, unknown>): string | undefined {
  const from = body.collectionsFrom;
  if (from === undefined) return undefined;
  if (typeof from !== 'string' || !/^https?:\/\//.test(from) || !URL.canParse(from)) {
    return 'collectionsFrom must be an http(s) URL here; a local file can only be named by RELAY_COLLECTIONS_KNOWN_NSIDS';
  }
  return undefined;
}

export interface CollectionsAdminOptions {
  store: CollectionIndexStore;
  backfiller: CollectionBackfiller;
}

/** The cross-site rule, then `handler`. */
function guarded(handler: Handler): Handler {
  return (ctx) => {
    const refusal = adminRequestRefusal(ctx.req);
    if (refusal) throw new ApiError(refusal.status, refusal.error, refusal.message);
    return handler(ctx);
  };
}

/** A failure of the index itself, answered without its details. */
function unavailable(): ApiError {
  return new ApiError(500, 'InternalServerError', 'collection index unavailable');
}

/** Reads a backfill source; a bad body's error says so (same status, headers and name). */
async function readSource(ctx: Parameters<Handler>[0]): Promise<Record<string, unknown>> {
  try {
    return await readJsonBody(ctx.req, MAX_BODY_BYTES);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    throw new ApiError(err.status, err.error, `bad JSON body: ${err.message}`, err.headers);
  }
}

/** Registers the /admin/collections routes (on the API's admin router). */
export function collectionsAdminRoutes(opts: CollectionsAdminOptions): RouteRegistrar {
  const { store, backfiller } = opts;
  return (router) => {
    router.get(
      ADMIN_COLLECTIONS_PATH,
      guarded(async ({ query }) => {
        const raw = query.optional('limit') ?? '1000';
        const limit = /^[0-9]{1,5}$/.test(raw) ? Number(raw) : 0;
        if (limit < 1 || limit > 10_000) throw invalidRequest('limit must be 1..10000');
        const cursor = query.optional('cursor');
        try {
          const page = await store.listCollections(limit, cursor);
          return {
            collections: page.items,
            ...(page.cursor ? { cursor: page.cursor } : {}),
            totalPairs: await store.countPairs(),
            pendingChecks: await store.countPendingChecks(),
          };
        } catch {
          throw unavailable();
        }
      }),
    );
    router.get(
      `${ADMIN_COLLECTIONS_PATH}/backfill`,
      guarded(async () => backfiller.status()),
    );
    router.post(
      `${ADMIN_COLLECTIONS_PATH}/backfill`,
      guarded(async (ctx) => {
        const body = await readSource(ctx);
        const bad = sourceRefusal(body);
        if (bad) throw invalidRequest(bad);
        const r = backfiller.start(body as unknown as BackfillSource);
        if (r.ok) {
          sendJson(ctx.res, 202, { job: r.job, status: backfiller.status() });
          return undefined;
        }
        if (r.reason === 'running') throw new ApiError(409, 'BackfillRunning', r.message);
        throw invalidRequest(r.message);
      }),
    );
    router.post(
      `${ADMIN_COLLECTIONS_PATH}/backfill/stop`,
      guarded(async () => {
        await backfiller.stop();
        return backfiller.status();
      }),
    );
  };
}
