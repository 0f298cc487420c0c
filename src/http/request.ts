// Request readers shared by every route (API, collection index, and whatever
// else mounts on src/http/router.ts): strict query parameter parsing (each bad
// parameter becomes a 400 InvalidRequest, never a stack trace), opaque page
// cursors, and a JSON body reader with a hard size cap so a client cannot make
// the relay buffer an unbounded request. Errors are ApiErrors
// (src/http/response.ts), answered by the dispatcher.
import type { IncomingMessage } from 'node:http';
import { ApiError, invalidRequest } from './response.ts';

/** Query parameters of one request, with typed, validating getters. */
export class Query {
  /** `params`: the raw parameters, for parsers with rules of their own. */
  constructor(readonly params: URLSearchParams) {}

  /** The single value of `name`, or undefined; given twice is an error. */
  optional(name: string): string | undefined {
    const all = this.params.getAll(name);
    if (all.length === 0) return undefined;
    if (all.length > 1) throw invalidRequest(`parameter ${name} must be given once`);
    return all[0];
  }

  required(name: string): string {
    const v = this.optional(name);
    if (v === undefined || v === '') throw invalidRequest(`missing required parameter: ${name}`);
    return v;
  }

  /** An integer in [min, max]; `fallback` when absent. */
  int(name: string, min: number, max: number, fallback: number): number {
    const raw = this.optional(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d{1,16}$/.test(raw)) throw invalidRequest(`${name} must be an integer, got "${raw}"`);
    const n = Number(raw);
    if (n < min || n > max) throw invalidRequest(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  }

  bool(name: string): boolean | undefined {
    const raw = this.optional(name);
    if (raw === undefined) return undefined;
    if (raw === 'true') return true;
    if (raw === 'false') return false;
    throw invalidRequest(`${name} must be true or false, got "${raw}"`);
  }
}

/**
 * Page cursors are opaque to clients; inside they are the decimal id/uid of the
 * last row of the previous page. Anything else is a 400, not an empty page.
 */
export function decodeCursor(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d{1,15}$/.test(raw)) throw invalidRequest(`invalid cursor: "${truncate(raw, 40)}"`);
  return Number(raw);
}

export function encodeCursor(n: number): string {
  return String(n);
}

export function truncate(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

/**
 * Reads the request body as JSON (an object), refusing bodies larger than
 * `maxBytes` with 413 as soon as the declared or received size exceeds it.
 * An empty body reads as `{}`.
 */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<Record<string, unknown>> {
  const tooLarge = (): ApiError =>
    new ApiError(413, 'PayloadTooLarge', `request body larger than ${maxBytes} bytes`, {
      connection: 'close',
    });
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBytes) {
    req.resume();
    throw tooLarge();
  }
  // Listeners rather than for-await: leaving an async iterator early destroys
  // the request, and with it the socket the 413 answer has to go out on.
  const raw = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        req.resume(); // discard the rest
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
  if (raw.length === 0) return {};
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new ApiError(415, 'InvalidRequest', 'request body must be application/json');
  }
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'));
  } catch {
    throw invalidRequest('request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidRequest('request body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** Field getters for a parsed JSON body, same error style as Query. */
export class Body {
  constructor(private readonly body: Record<string, unknown>) {}

  has(name: string): boolean {
    return this.body[name] !== undefined;
  }

  string(name: string): string {
    const v = this.body[name];
    if (v === undefined || v === null || v === '') throw invalidRequest(`missing required field: ${name}`);
    if (typeof v !== 'string') throw invalidRequest(`field ${name} must be a string`);
    return v;
  }

  optionalString(name: string): string | undefined {
    return this.has(name) ? this.string(name) : undefined;
  }

  int(name: string, min: number, max: number): number {
    const v = this.body[name];
    if (v === undefined || v === null) throw invalidRequest(`missing required field: ${name}`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
      throw invalidRequest(`field ${name} must be an integer between ${min} and ${max}`);
    }
    return v;
  }

  optionalInt(name: string, min: number, max: number): number | undefined {
    return this.has(name) ? this.int(name, min, max) : undefined;
  }

  bool(name: string): boolean {
    const v = this.body[name];
    if (typeof v !== 'boolean') throw invalidRequest(`field ${name} must be true or false`);
    return v;
  }

  optionalBool(name: string): boolean | undefined {
    return this.has(name) ? this.bool(name) : undefined;
  }
}
