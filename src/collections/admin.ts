// Admin endpoints of the collection index (the relay mounts them behind its
// admin authentication; this module does not check credentials):
//   GET  /admin/collections?limit=&cursor=    known collections with pair counts
//   GET  /admin/collections/backfill          backfill status
//   POST /admin/collections/backfill          start a backfill (JSON BackfillSource);
//                                             202, or 409 if one is running
//   POST /admin/collections/backfill/stop     stop it (progress is kept)
// The collection list is admin-only: counts reveal little, but listing every
// NSID ever seen (including junk ones) is not something to expose publicly.
// Like every admin route it applies the cross-site rule (src/http/admin-guard.ts:
// no cross-site requests, writes only as application/json) itself too, so it
// stays safe wherever it is mounted. A backfill started here may name its
// known-NSID list (`collectionsFrom`) only as an http(s) URL: a local file is
// read only when the operator's own config names it
// (RELAY_COLLECTIONS_KNOWN_NSIDS), never because a request asked for it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError, readJsonBody } from '../api/http.ts';
import { adminRequestRefusal } from '../http/admin-guard.ts';
import { parseRequestTarget } from '../http/request-target.ts';
import type { BackfillSource, CollectionBackfiller } from './backfill.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { sendJson, sendXrpcError } from './xrpc.ts';

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

/** Handles /admin/collections*; returns false for other paths. */
export function createCollectionsAdminHandler(
  opts: CollectionsAdminOptions,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const { store, backfiller } = opts;
  return async (req, res) => {
    const target = parseRequestTarget(req.url);
    if (!target.ok) return false;
    const { path, params } = target;
    if (path !== ADMIN_COLLECTIONS_PATH && !path.startsWith(`${ADMIN_COLLECTIONS_PATH}/`)) return false;
    const method = req.method ?? 'GET';
    const refusal = adminRequestRefusal(req);
    if (refusal) {
      sendXrpcError(res, refusal.status, refusal.error, refusal.message);
      return true;
    }
    try {
      if (path === ADMIN_COLLECTIONS_PATH && method === 'GET') {
        const raw = params.get('limit') ?? '1000';
        const limit = /^[0-9]{1,5}$/.test(raw) ? Number(raw) : 0;
        if (limit < 1 || limit > 10_000) {
          sendXrpcError(res, 400, 'InvalidRequest', 'limit must be 1..10000');
          return true;
        }
        const page = await store.listCollections(limit, params.get('cursor') ?? undefined);
        sendJson(res, 200, {
          collections: page.items,
          ...(page.cursor ? { cursor: page.cursor } : {}),
          totalPairs: await store.countPairs(),
          pendingChecks: await store.countPendingChecks(),
        });
        return true;
      }
      if (path === `${ADMIN_COLLECTIONS_PATH}/backfill` && method === 'GET') {
        sendJson(res, 200, backfiller.status());
        return true;
      }
      if (path === `${ADMIN_COLLECTIONS_PATH}/backfill` && method === 'POST') {
        const body = await readJsonBody(req, MAX_BODY_BYTES);
        const bad = sourceRefusal(body);
        if (bad) {
          sendXrpcError(res, 400, 'InvalidRequest', bad);
          return true;
        }
        const r = backfiller.start(body as unknown as BackfillSource);
        if (r.ok) sendJson(res, 202, { job: r.job, status: backfiller.status() });
        else if (r.reason === 'running') sendXrpcError(res, 409, 'BackfillRunning', r.message);
        else sendXrpcError(res, 400, 'InvalidRequest', r.message);
        return true;
      }
      if (path === `${ADMIN_COLLECTIONS_PATH}/backfill/stop` && method === 'POST') {
        await backfiller.stop();
        sendJson(res, 200, backfiller.status());
        return true;
      }
      sendXrpcError(res, 404, 'NotFound', `no ${method} ${path.slice(0, 200)}`);
    } catch (err) {
      if (err instanceof ApiError) {
        // Bad JSON, wrong type, too large: the request's fault.
        if (res.headersSent) {
          res.destroy();
        } else {
          for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
          sendXrpcError(res, err.status, err.error, `bad JSON body: ${err.message}`);
        }
      } else if (!res.headersSent) {
        sendXrpcError(res, 500, 'InternalServerError', 'collection index unavailable');
      } else {
        res.destroy();
      }
    }
    return true;
  };
}
