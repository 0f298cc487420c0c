// The HTTP side of a simulated PDS: the sync and server XRPC endpoints a
// relay calls (describeServer, getRepo, getRepoStatus, listRepos,
// getLatestCommit) plus identity.resolveHandle, with the lexicons' error
// names (RepoNotFound, RepoTakendown, RepoSuspended, RepoDeactivated) so the
// relay's error handling is exercised as against a real PDS.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostedAccount, SimPds } from './pds.ts';

class XrpcError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function requireDid(params: URLSearchParams): string {
  const did = params.get('did');
  if (!did?.startsWith('did:')) throw new XrpcError(400, 'InvalidRequest', 'did is required');
  return did;
}

/** The account whose repo may be served: errors as com.atproto.sync.getRepo defines them. */
function servableAccount(pds: SimPds, did: string): HostedAccount {
  const a = pds.accounts.get(did);
  if (!a || a.status === 'deleted')
    throw new XrpcError(400, 'RepoNotFound', `Could not find repo for DID: ${did}`);
  if (a.status === 'takendown') throw new XrpcError(400, 'RepoTakendown', `Repo has been takendown: ${did}`);
  if (a.status === 'suspended') throw new XrpcError(400, 'RepoSuspended', `Repo has been suspended: ${did}`);
  if (a.status === 'deactivated')
    throw new XrpcError(400, 'RepoDeactivated', `Repo has been deactivated: ${did}`);
  return a;
}

function statusFields(a: HostedAccount): { active: boolean; status?: string } {
  return a.status === 'active' ? { active: true } : { active: false, status: a.status };
}

function route(pds: SimPds, method: string, params: URLSearchParams, res: ServerResponse): void {
  switch (method) {
    case 'com.atproto.server.describeServer': {
      sendJson(res, 200, {
        did: pds.serviceDid,
        availableUserDomains: [pds.userDomain],
        inviteCodeRequired: false,
        phoneVerificationRequired: false,
        links: {},
        contact: {},
      });
      return;
    }
    case 'com.atproto.sync.getRepo': {
      const a = servableAccount(pds, requireDid(params));
      const car = a.repo.exportCar();
      res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': car.length });
      res.end(car);
      return;
    }
    case 'com.atproto.sync.getLatestCommit': {
      const a = servableAccount(pds, requireDid(params));
      const head = a.repo.head()!;
      sendJson(res, 200, { cid: head.commitCid.$link, rev: head.rev });
      return;
    }
    case 'com.atproto.sync.getRepoStatus': {
      const did = requireDid(params);
      const a = pds.accounts.get(did);
      if (!a || a.status === 'deleted')
        throw new XrpcError(400, 'RepoNotFound', `Could not find repo for DID: ${did}`);
      const head = a.repo.head();
      sendJson(res, 200, {
        did,
        ...statusFields(a),
        ...(a.status === 'active' && head ? { rev: head.rev } : {}),
      });
      return;
    }
    case 'com.atproto.sync.listRepos': {
      const limitRaw = params.get('limit');
      const limit = limitRaw === null ? 500 : Number(limitRaw);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000)
        throw new XrpcError(400, 'InvalidRequest', 'limit must be an integer between 1 and 1000');
      const cursor = params.get('cursor');
      const all = [...pds.accounts.values()].filter((a) => a.status !== 'deleted' && a.repo.head());
      all.sort((x, y) => (x.did < y.did ? -1 : x.did > y.did ? 1 : 0));
      const start = cursor ? all.findIndex((a) => a.did > cursor) : 0;
      const page = start < 0 ? [] : all.slice(start, start + limit);
      const repos = page.map((a) => {
        const head = a.repo.head()!;
        return { did: a.did, head: head.commitCid.$link, rev: head.rev, ...statusFields(a) };
      });
      const more = start >= 0 && start + limit < all.length;
      sendJson(res, 200, more ? { cursor: page[page.length - 1].did, repos } : { repos });
      return;
    }
    case 'com.atproto.identity.resolveHandle': {
      const handle = params.get('handle') ?? '';
      const did = pds.plc.resolveHandle(handle);
      if (!did) throw new XrpcError(400, 'HandleNotFound', 'Unable to resolve handle');
      sendJson(res, 200, { did });
      return;
    }
    case '_health': {
      sendJson(res, 200, { version: 'atrelay-sim' });
      return;
    }
    default:
      throw new XrpcError(501, 'MethodNotImplemented', `Method Not Implemented: ${method}`);
  }
}

export function handleXrpc(pds: SimPds, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  if (!url.pathname.startsWith('/xrpc/')) {
    sendJson(res, 404, { error: 'NotFound', message: 'not found' });
    return;
  }
  if (req.method !== 'GET') {
    sendJson(res, 405, { error: 'InvalidRequest', message: 'method not allowed' });
    return;
  }
  try {
    route(pds, url.pathname.slice(6), url.searchParams, res);
  } catch (err) {
    if (err instanceof XrpcError) {
      sendJson(res, err.status, { error: err.error, message: err.message });
      return;
    }
    sendJson(res, 500, { error: 'InternalServerError', message: (err as Error).message });
  }
}
