// The HTTP side of a simulated PDS: the sync and server XRPC endpoints a
// relay calls (describeServer, getRepo, getRepoStatus, listRepos,
// getLatestCommit) plus identity.resolveHandle, with the lexicons' error
// names (RepoNotFound, RepoTakendown, RepoSuspended, RepoDeactivated) so the
// relay's error handling is exercised as against a real PDS.
//
// A test can hold a method's replies (`XrpcHolds`): the reply is computed
// when the request arrives, from the state at that moment, and sent only when
// the test releases it. That pins a request "in flight" at a known point, so
// a test can change the PDS meanwhile without racing the relay's timing.
// getRepo serves a test's hostile CAR instead of the real export where one is
// set (`pds.hostileRepos`, hostile-repo.ts), possibly in chunks (a CAR bomb of
// hundreds of MB sent by reference, with or without a Content-Length).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ChunkedCar } from './hostile-repo.ts';
import type { HostedAccount, SimPds } from './pds.ts';

interface Reply {
  status: number;
  contentType: string;
  body: string | Uint8Array | ChunkedCar;
}

/** Replies held per XRPC method until released. */
export class XrpcHolds {
  private readonly held = new Map<string, (() => void)[]>();

  /** From now on, replies to `method` wait for release(method). */
  hold(method: string): void {
    if (!this.held.has(method)) this.held.set(method, []);
  }

  /** Requests to `method` whose replies are waiting. */
  waiting(method: string): number {
    return this.held.get(method)?.length ?? 0;
  }

  /** Sends the waiting replies and stops holding `method`. */
  release(method: string): void {
    const waiting = this.held.get(method) ?? [];
    this.held.delete(method);
    for (const send of waiting) send();
  }

  /** Queues `send` if `method` is held; false when it should be sent now. */
  defer(method: string, send: () => void): boolean {
    const q = this.held.get(method);
    if (!q) return false;
    q.push(send);
    return true;
  }
}

class XrpcError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
  }
}

function json(status: number, body: unknown): Reply {
  return { status, contentType: 'application/json; charset=utf-8', body: JSON.stringify(body) };
}

function send(res: ServerResponse, reply: Reply): void {
  const body = reply.body;
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
    sendChunks(res, reply.status, reply.contentType, body);
    return;
  }
  res.writeHead(reply.status, {
    'content-type': reply.contentType,
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** Writes the chunks in order, waiting for the socket to drain; stops if the client goes away. */
function sendChunks(res: ServerResponse, status: number, contentType: string, car: ChunkedCar): void {
  const headers: Record<string, string | number> = { 'content-type': contentType };
  if (car.declareLength) headers['content-length'] = car.chunks.reduce((n, c) => n + c.length, 0);
  res.writeHead(status, headers);
  let i = 0;
  let gone = false;
  res.on('close', () => {
    gone = true;
  });
  const next = (): void => {
    while (!gone && i < car.chunks.length) {
      if (!res.write(car.chunks[i++])) {
        res.once('drain', next);
        return;
      }
    }
    if (!gone) res.end();
  };
  next();
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

function route(pds: SimPds, method: string, params: URLSearchParams): Reply {
  switch (method) {
    case 'com.atproto.server.describeServer': {
      return json(200, {
        did: pds.serviceDid,
        availableUserDomains: [pds.userDomain],
        inviteCodeRequired: false,
        phoneVerificationRequired: false,
        links: {},
        contact: {},
      });
    }
    case 'com.atproto.sync.getRepo': {
      const a = servableAccount(pds, requireDid(params));
      const body = pds.hostileRepos.serve(a.did, () => a.repo.exportCar());
      return { status: 200, contentType: 'application/vnd.ipld.car', body };
    }
    case 'com.atproto.sync.getLatestCommit': {
      const a = servableAccount(pds, requireDid(params));
      const head = a.repo.head()!;
      return json(200, { cid: head.commitCid.$link, rev: head.rev });
    }
    case 'com.atproto.sync.getRepoStatus': {
      const did = requireDid(params);
      const a = pds.accounts.get(did);
      if (!a || a.status === 'deleted')
        throw new XrpcError(400, 'RepoNotFound', `Could not find repo for DID: ${did}`);
      const head = a.repo.head();
      return json(200, {
        did,
        ...statusFields(a),
        ...(a.status === 'active' && head ? { rev: head.rev } : {}),
      });
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
      return json(200, more ? { cursor: page[page.length - 1].did, repos } : { repos });
    }
    case 'com.atproto.identity.resolveHandle': {
      const handle = params.get('handle') ?? '';
      const did = pds.plc.resolveHandle(handle);
      if (!did) throw new XrpcError(400, 'HandleNotFound', 'Unable to resolve handle');
      return json(200, { did });
    }
    case '_health': {
      return json(200, { version: 'atrelay-sim' });
    }
    default:
      throw new XrpcError(501, 'MethodNotImplemented', `Method Not Implemented: ${method}`);
  }
}

export function handleXrpc(pds: SimPds, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://x');
  if (!url.pathname.startsWith('/xrpc/')) {
    send(res, json(404, { error: 'NotFound', message: 'not found' }));
    return;
  }
  if (req.method !== 'GET') {
    send(res, json(405, { error: 'InvalidRequest', message: 'method not allowed' }));
    return;
  }
  const method = url.pathname.slice(6);
  let reply: Reply;
  try {
    reply = route(pds, method, url.searchParams);
  } catch (err) {
    reply =
      err instanceof XrpcError
        ? json(err.status, { error: err.error, message: err.message })
        : json(500, { error: 'InternalServerError', message: (err as Error).message });
  }
  if (!pds.xrpcHolds.defer(method, () => send(res, reply))) send(res, reply);
}
