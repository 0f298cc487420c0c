// GET /xrpc/com.atproto.sync.listReposByCollection: the DIDs with at least
// one record in a collection, DID order, from the index. The cursor is the
// last DID of the previous page and the next page starts strictly after it,
// so pagination is stable while writes continue: a DID present for the whole
// walk is returned exactly once, none twice, and the walk always ends.
// Parameters are checked as the lexicon says (collection: NSID, required;
// limit: integer 1–2000, default 500; cursor: string — ours are DIDs) and bad
// input gets the XRPC error shape `{error: 'InvalidRequest', message}`.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isValidDid, isValidNsid } from '../protocol/syntax.ts';
import type { CollectionIndexStore } from './index-store.ts';

export const LIST_REPOS_BY_COLLECTION_PATH = '/xrpc/com.atproto.sync.listReposByCollection';
export const DEFAULT_LIMIT = 500;
export const MAX_LIMIT = 2000;

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export function sendXrpcError(res: ServerResponse, status: number, error: string, message: string): void {
  sendJson(res, status, { error, message });
}

export type ListParams = { collection: string; limit: number; cursor?: string } | { error: string };

/** Parses and validates the query parameters. */
export function parseListParams(params: URLSearchParams): ListParams {
  const collections = params.getAll('collection');
  if (collections.length !== 1) return { error: 'collection is required (exactly once)' };
  const collection = collections[0];
  if (!isValidNsid(collection)) return { error: 'collection must be a valid NSID' };
  let limit = DEFAULT_LIMIT;
  const rawLimit = params.get('limit');
  if (rawLimit !== null) {
    if (!/^[0-9]{1,9}$/.test(rawLimit)) return { error: 'limit must be an integer' };
    limit = Number(rawLimit);
    if (limit < 1 || limit > MAX_LIMIT) return { error: `limit must be between 1 and ${MAX_LIMIT}` };
  }
  const cursor = params.get('cursor');
  if (cursor === null || cursor === '') return { collection, limit };
  if (!isValidDid(cursor)) return { error: 'invalid cursor' };
  return { collection, limit, cursor };
}

/**
 * Handles the listReposByCollection path; returns false for any other path
 * (so the relay's router can try its other handlers).
 */
export function createListReposByCollectionHandler(
  store: CollectionIndexStore,
): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://relay.invalid');
    if (url.pathname !== LIST_REPOS_BY_COLLECTION_PATH) return false;
    if (req.method !== 'GET') {
      res.setHeader('allow', 'GET');
      sendXrpcError(res, 405, 'InvalidRequest', 'method not allowed');
      return true;
    }
    const p = parseListParams(url.searchParams);
    if ('error' in p) {
      sendXrpcError(res, 400, 'InvalidRequest', p.error);
      return true;
    }
    try {
      const page = await store.listRepos(p.collection, p.limit, p.cursor);
      const repos = page.items.map((did) => ({ did }));
      sendJson(res, 200, page.cursor ? { cursor: page.cursor, repos } : { repos });
    } catch {
      sendXrpcError(res, 500, 'InternalServerError', 'collection index unavailable');
    }
    return true;
  };
}
