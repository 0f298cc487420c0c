// Admin endpoints of the collection index (the relay mounts them behind its
// admin authentication; this module does not check credentials):
//   GET  /admin/collections?limit=&cursor=    known collections with pair counts
//   GET  /admin/collections/backfill          backfill status
//   POST /admin/collections/backfill          start a backfill (JSON BackfillSource);
//                                             202, or 409 if one is running
//   POST /admin/collections/backfill/stop     stop it (progress is kept)
// The collection list is admin-only: counts reveal little, but listing every
// NSID ever seen (including junk ones) is not something to expose publicly.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BackfillSource, CollectionBackfiller } from './backfill.ts';
import type { CollectionIndexStore } from './index-store.ts';
import { sendJson, sendXrpcError } from './xrpc.ts';

export const ADMIN_COLLECTIONS_PATH = '/admin/collections';
const MAX_BODY = 1024 * 1024;

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('request body too large');
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? {} : JSON.parse(text);
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
    const url = new URL(req.url ?? '/', 'http://relay.invalid');
    const path = url.pathname;
    if (path !== ADMIN_COLLECTIONS_PATH && !path.startsWith(`${ADMIN_COLLECTIONS_PATH}/`)) return false;
    const method = req.method ?? 'GET';
    try {
      if (path === ADMIN_COLLECTIONS_PATH && method === 'GET') {
        const raw = url.searchParams.get('limit') ?? '1000';
        const limit = /^[0-9]{1,5}$/.test(raw) ? Number(raw) : 0;
        if (limit < 1 || limit > 10_000) {
          sendXrpcError(res, 400, 'InvalidRequest', 'limit must be 1..10000');
          return true;
        }
        const page = await store.listCollections(limit, url.searchParams.get('cursor') ?? undefined);
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
        let body: unknown;
        try {
          body = await readJsonBody(req);
        } catch (err) {
          sendXrpcError(res, 400, 'InvalidRequest', `bad JSON body: ${(err as Error).message}`);
          return true;
        }
        const r = backfiller.start(body as BackfillSource);
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
      sendXrpcError(res, 404, 'NotFound', `no ${method} ${path}`);
    } catch {
      sendXrpcError(res, 500, 'InternalServerError', 'collection index unavailable');
    }
    return true;
  };
}
