// The public POST /xrpc/com.atproto.sync.requestCrawl endpoint. Anyone may
// call it, so the body is read with a small byte cap and a deadline, and
// every refusal is an XRPC error body ({error, message}) with the status the
// HostManager chose (400 InvalidRequest / HostBanned, 429 RateLimitExceeded).
// Success is 200 with an empty JSON object. The relay mounts it; the pure
// requestCrawlResponse() is there for routers that read bodies themselves.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HostManager } from './host-manager.ts';
import { CrawlRefusedError } from './host-policy.ts';

export const REQUEST_CRAWL_PATH = '/xrpc/com.atproto.sync.requestCrawl';

const MAX_BODY_BYTES = 8 * 1024;
const BODY_TIMEOUT_MS = 10_000;

export interface XrpcReply {
  status: number;
  body: Record<string, unknown>;
}

/** Runs requestCrawl for a request body (already read) and returns the reply. */
export async function requestCrawlResponse(
  manager: Pick<HostManager, 'requestCrawl'>,
  method: string,
  body: Uint8Array,
): Promise<XrpcReply> {
  if (method !== 'POST') {
    return { status: 405, body: { error: 'InvalidRequest', message: 'requestCrawl takes POST' } };
  }
  let input: unknown;
  try {
    input = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return { status: 400, body: { error: 'InvalidRequest', message: 'body must be JSON {"hostname": "…"}' } };
  }
  const hostname = (input as { hostname?: unknown } | null)?.hostname;
  try {
    await manager.requestCrawl(hostname);
    return { status: 200, body: {} };
  } catch (err) {
    if (err instanceof CrawlRefusedError) {
      return { status: err.status, body: { error: err.error, message: err.message } };
    }
    return { status: 500, body: { error: 'InternalServerError', message: 'requestCrawl failed' } };
  }
}

function readBody(req: IncomingMessage): Promise<Uint8Array | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('body timeout'));
    }, BODY_TIMEOUT_MS);
    req.on('data', (c: Buffer) => {
      total += c.length;
      if (total > MAX_BODY_BYTES) {
        clearTimeout(timer);
        req.removeAllListeners('data');
        req.resume();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function send(res: ServerResponse, reply: XrpcReply): void {
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** HTTP handler for POST /xrpc/com.atproto.sync.requestCrawl (the caller matches the path). */
export async function handleRequestCrawl(
  manager: Pick<HostManager, 'requestCrawl'>,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== 'POST') {
    req.resume();
    send(res, { status: 405, body: { error: 'InvalidRequest', message: 'requestCrawl takes POST' } });
    return;
  }
  let body: Uint8Array | undefined;
  try {
    body = await readBody(req);
  } catch {
    if (!res.headersSent) send(res, { status: 400, body: { error: 'InvalidRequest', message: 'bad body' } });
    return;
  }
  if (body === undefined) {
    send(res, { status: 413, body: { error: 'InvalidRequest', message: 'body too large' } });
    return;
  }
  send(res, await requestCrawlResponse(manager, 'POST', body));
}
