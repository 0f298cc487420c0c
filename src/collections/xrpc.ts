// GET /xrpc/com.atproto.sync.listReposByCollection: the DIDs with at least
// one record in a collection, DID order, from the index. The cursor is the
// last DID of the previous page and the next page starts strictly after it,
// so pagination is stable while writes continue: a DID present for the whole
// walk is returned exactly once, none twice, and the walk always ends.
// Parameters are checked as the lexicon says (collection: NSID, required;
// limit: integer 1–2000, default 500; cursor: string — ours are DIDs) and bad
// input gets the XRPC error shape `{error: 'InvalidRequest', message}`.
// The route is registered on the API's XRPC router (`listReposByCollectionRoutes`,
// wired in src/relay.ts), which answers errors, CORS, 405s and metrics.
import { ApiError, invalidRequest } from '../http/response.ts';
import type { RouteRegistrar } from '../http/router.ts';
import { isValidDid, isValidNsid } from '../protocol/syntax.ts';
import type { CollectionIndexStore } from './index-store.ts';

export const LIST_REPOS_BY_COLLECTION_PATH = '/xrpc/com.atproto.sync.listReposByCollection';
export const DEFAULT_LIMIT = 500;
export const MAX_LIMIT = 2000;

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

/** Registers GET listReposByCollection, answered from `store`. */
export function listReposByCollectionRoutes(store: CollectionIndexStore): RouteRegistrar {
  return (router) => {
    router.get(LIST_REPOS_BY_COLLECTION_PATH, async ({ query }) => {
      const p = parseListParams(query.params);
      if ('error' in p) throw invalidRequest(p.error);
      let page: Awaited<ReturnType<CollectionIndexStore['listRepos']>>;
      try {
        page = await store.listRepos(p.collection, p.limit, p.cursor);
      } catch {
        throw new ApiError(500, 'InternalServerError', 'collection index unavailable');
      }
      const repos = page.items.map((did) => ({ did }));
      return page.cursor ? { cursor: page.cursor, repos } : { repos };
    });
  };
}
