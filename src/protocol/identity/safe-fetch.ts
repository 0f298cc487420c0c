// Outbound HTTP(S) for URLs that come from the network: DID documents,
// handle well-known files, requestCrawl checks and backfill.
//
// The problem is SSRF: a hostile DID document or requestCrawl hostname can
// point the relay at loopback, cloud metadata or internal services. Checking
// the hostname's addresses and then letting node:http resolve it again is not
// enough (DNS rebinding: the second answer differs), so each hop here
// resolves the hostname once through an injectable `lookup`, refuses the hop
// if ANY address is non-public (ip-policy.ts), and then connects to the
// checked address by handing node:http a `lookup` that can only return it.
// TLS SNI, certificate checks and the Host header still use the hostname.
// Redirects are followed by hand so every hop gets the same checks, and the
// body is read with a byte cap and an overall deadline so a slow or huge
// response cannot tie the relay up.
//
// A fetcher can also lend its rules to a worker thread (`workerRules`): the
// plain settings travel to the worker, which makes the requests (and reads
// the bodies) itself, while each hop's hostname resolution and address
// check still run on the owner's thread through `resolveHost` (the injected
// lookup and policy are functions and stay where they are). The worker pins
// the addresses it is given exactly as above, so the refusal happens before
// any connection either way. The repo fetcher uses this to keep getRepo
// downloads off the main thread (src/validate/repo-digest.ts).
import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { dnsLookup } from './dns-lookup.ts';
import { addressRefusalReason } from './ip-policy.ts';

export type LookupFn = (hostname: string) => Promise<ReadonlyArray<{ address: string; family: number }>>;

export interface SafeFetcherOptions {
  /** Skip the address checks and the port allow-list (local development and tests only). */
  allowPrivate?: boolean;
  /** Permit plain http:// URLs (local development and tests only). */
  allowInsecure?: boolean;
  /** Hostname resolution; defaults to DNS through c-ares (dns-lookup.ts), all addresses. */
  lookup?: LookupFn;
  /** Overrides the public-address policy: return a reason to refuse, or undefined to allow. */
  addressPolicy?: (address: string) => string | undefined;
  /** Ports that may be contacted; defaults to 80 and 443, or any port with allowPrivate. */
  allowedPorts?: readonly number[];
  /** Deadline (ms) for the DNS lookup, and again for the TCP/TLS connect, of each hop. */
  connectTimeoutMs?: number;
  /** Deadline for the whole request including redirects and the body (ms). */
  timeoutMs?: number;
  maxResponseBytes?: number;
  maxRedirects?: number;
  userAgent?: string;
  /** Extra trusted CA certificates (PEM), replacing the system set: for tests with a self-signed server. */
  ca?: string | readonly string[];
  /** Reuse connections (then call close() when done). Off by default. */
  keepAlive?: boolean;
  /**
   * Resolves and checks each hop's host instead of `lookup` + the address
   * policy (a worker's fetcher asking its owner's `resolveHost`).
   */
  resolveHost?: (host: string) => Promise<HostResolution>;
}

/** What resolving and checking one hop's host came to: the addresses to pin, or why not. */
export type HostResolution =
  | { ok: true; addresses: { address: string; family: number }[] }
  | { ok: false; refused: true; reason: string; address?: string }
  | { ok: false; refused: false; message: string };

/** The settings of a fetcher that can be sent to another thread (structured-clonable). */
export interface PortableFetchSettings {
  allowInsecure: boolean;
  /** undefined: any port. */
  allowedPorts?: number[];
  connectTimeoutMs: number;
  maxRedirects: number;
  userAgent: string;
  ca?: string | string[];
}

/**
 * A fetcher's rules for another thread: make a fetcher there with
 * `createWorkerSafeFetcher(settings, resolveHost)`, where that
 * `resolveHost` asks this one (over a message port).
 */
export interface WorkerFetchRules {
  settings: PortableFetchSettings;
  /** Resolves `host` and applies the address policy, on the owner's thread (rejects when the lookup fails). */
  resolveHost(host: string): Promise<HostResolution>;
}

export interface RequestOptions {
  method?: 'GET' | 'HEAD' | 'POST';
  headers?: Record<string, string>;
  body?: Uint8Array | string;
  /** Statuses that count as success; anything else throws HttpStatusError. Default 2xx. */
  acceptStatus?: (status: number) => boolean;
  timeoutMs?: number;
  maxResponseBytes?: number;
  signal?: AbortSignal;
}

export interface SafeResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The URL of the last hop (after redirects). */
  url: string;
  body: Uint8Array;
}

export interface SafeJsonResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  url: string;
  json: unknown;
}

export interface SafeTextResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  url: string;
  text: string;
}

export interface SafeFetcher {
  request(url: string, opts?: RequestOptions): Promise<SafeResponse>;
  getJson(url: string, opts?: RequestOptions): Promise<SafeJsonResponse>;
  getText(url: string, opts?: RequestOptions): Promise<SafeTextResponse>;
  /** Destroys pooled connections (only matters with keepAlive). */
  close(): void;
  /** The rules for a worker thread that makes these requests itself (absent: requests stay here). */
  workerRules?(): WorkerFetchRules;
}

export class SafeFetchError extends Error {
  constructor(
    message: string,
    readonly url: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SafeFetchError';
  }
}

/** The URL, its scheme, port or one of its addresses is not allowed. Thrown before any connection. */
export class SsrfRefusedError extends SafeFetchError {
  constructor(
    url: string,
    readonly reason: string,
    readonly address?: string,
  ) {
    super(`refused ${url}: ${reason}${address ? ` (${address})` : ''}`, url);
    this.name = 'SsrfRefusedError';
  }
}

export class FetchTimeoutError extends SafeFetchError {
  constructor(
    url: string,
    readonly phase: 'connect' | 'total',
    readonly timeoutMs: number,
  ) {
    super(`${phase} timeout after ${timeoutMs}ms fetching ${url}`, url);
    this.name = 'FetchTimeoutError';
  }
}

export class ResponseTooLargeError extends SafeFetchError {
  constructor(
    url: string,
    readonly limit: number,
  ) {
    super(`response from ${url} exceeds ${limit} bytes`, url);
    this.name = 'ResponseTooLargeError';
  }
}

export class HttpStatusError extends SafeFetchError {
  constructor(
    url: string,
    readonly status: number,
    readonly bodyPreview: string,
  ) {
    super(`HTTP ${status} from ${url}`, url);
    this.name = 'HttpStatusError';
  }
}

export class TooManyRedirectsError extends SafeFetchError {
  constructor(url: string, limit: number) {
    super(`more than ${limit} redirects fetching ${url}`, url);
    this.name = 'TooManyRedirectsError';
  }
}

/** The body of a successful response is not what was asked for (e.g. not JSON). */
export class InvalidBodyError extends SafeFetchError {
  constructor(url: string, message: string, cause?: unknown) {
    super(`${message} (${url})`, url, { cause });
    this.name = 'InvalidBodyError';
  }
}

/** DNS failure, connection refused/reset, TLS failure or abort. */
export class FetchNetworkError extends SafeFetchError {
  constructor(url: string, message: string, cause?: unknown) {
    super(`${message} (${url})`, url, { cause });
    this.name = 'FetchNetworkError';
  }
}

/** DNS through c-ares, off libuv's threadpool (dns-lookup.ts says why). */
export const defaultLookup: LookupFn = dnsLookup;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const is2xx = (s: number): boolean => s >= 200 && s < 300;

export function createSafeFetcher(opts: SafeFetcherOptions = {}): SafeFetcher {
  const allowPrivate = opts.allowPrivate ?? false;
  const allowInsecure = opts.allowInsecure ?? false;
  const lookup = opts.lookup ?? defaultLookup;
  const policy = opts.addressPolicy ?? (allowPrivate ? () => undefined : addressRefusalReason);
  const allowedPorts = opts.allowedPorts ?? (allowPrivate ? undefined : [80, 443]);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
  const defaultTimeoutMs = opts.timeoutMs ?? 10_000;
  const defaultMaxBytes = opts.maxResponseBytes ?? 1024 * 1024;
  const maxRedirects = opts.maxRedirects ?? 3;
  const userAgent = opts.userAgent ?? 'atrelay';
  const httpAgent = opts.keepAlive ? new http.Agent({ keepAlive: true }) : undefined;
  const httpsAgent = opts.keepAlive ? new https.Agent({ keepAlive: true }) : undefined;
  const sensitiveHeaders = ['authorization', 'cookie', 'proxy-authorization'];

  /** Resolves a hop's host (a literal address is itself) and applies the address policy; a failed lookup throws. */
  async function resolveLocally(host: string): Promise<HostResolution> {
    let addresses: { address: string; family: number }[];
    const literalFamily = isIP(host);
    if (literalFamily !== 0) {
      addresses = [{ address: host, family: literalFamily }];
    } else {
      // a failed lookup throws as it did (checkHop wraps it, the error as its cause)
      addresses = (await lookup(host)).map((a) => ({ address: a.address, family: a.family }));
      if (addresses.length === 0)
        return { ok: false, refused: false, message: `DNS lookup of ${host} returned no addresses` };
    }
    for (const a of addresses) {
      const reason = policy(a.address);
      if (reason !== undefined)
        return { ok: false, refused: true, reason: `address is ${reason}`, address: a.address };
    }
    return { ok: true, addresses };
  }
  const resolveHost = opts.resolveHost ?? resolveLocally;

  /** Scheme, port and address checks for one hop; returns the address to pin. */
  async function checkHop(url: URL, deadline: Deadline): Promise<{ address: string; family: number }> {
    const href = url.href;
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && allowInsecure)) {
      throw new SsrfRefusedError(href, `scheme ${url.protocol} not allowed`);
    }
    if (url.username !== '' || url.password !== '') throw new SsrfRefusedError(href, 'credentials in URL');
    const port = effectivePort(url);
    if (allowedPorts && !allowedPorts.includes(port))
      throw new SsrfRefusedError(href, `port ${port} not allowed`);
    const host = bareHost(url.hostname);
    if (host === '') throw new SsrfRefusedError(href, 'empty hostname');
    let resolved: HostResolution;
    try {
      resolved = await deadline.race(resolveHost(host), connectTimeoutMs);
    } catch (err) {
      if (err instanceof SafeFetchError) throw err;
      throw new FetchNetworkError(href, `DNS lookup of ${host} failed`, err);
    }
    if (resolved.ok) return resolved.addresses[0];
    if (resolved.refused) throw new SsrfRefusedError(href, resolved.reason, resolved.address);
    throw new FetchNetworkError(href, resolved.message);
  }

  function once(
    url: URL,
    pinned: { address: string; family: number },
    ro: RequestOptions,
    method: string,
    body: Uint8Array | string | undefined,
    deadline: Deadline,
    maxBytes: number,
  ): Promise<SafeResponse & { location?: string }> {
    const href = url.href;
    const host = bareHost(url.hostname);
    const isLiteral = isIP(host) !== 0;
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = {
      'user-agent': userAgent,
      'accept-encoding': 'identity',
      ...ro.headers,
      host: url.host,
    };
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    const pinnedLookup = (
      _hostname: string,
      options: { all?: boolean },
      cb: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
    ): void => {
      if (options?.all) cb(null, [{ address: pinned.address, family: pinned.family }]);
      else cb(null, pinned.address, pinned.family);
    };
    const requestOptions: https.RequestOptions = {
      protocol: url.protocol,
      hostname: isLiteral ? pinned.address : host,
      port: effectivePort(url),
      path: `${url.pathname}${url.search}`,
      method,
      headers,
      lookup: pinnedLookup as unknown as https.RequestOptions['lookup'],
      agent: secure ? (httpsAgent ?? false) : (httpAgent ?? false),
    };
    if (secure && !isLiteral) requestOptions.servername = host;
    if (secure && opts.ca !== undefined) requestOptions.ca = opts.ca as string | string[];

    return new Promise((resolve, reject) => {
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const finish = (err: Error | undefined, value?: SafeResponse & { location?: string }): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        ro.signal?.removeEventListener('abort', onAbort);
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(value!);
      };
      const onAbort = (): void => finish(new FetchNetworkError(href, 'aborted', ro.signal?.reason));
      const req = (secure ? https : http).request(requestOptions);
      timers.push(
        setTimeout(
          () => finish(new FetchTimeoutError(href, 'total', deadline.totalMs)),
          Math.max(0, deadline.remaining()),
        ),
      );
      const connectTimer = setTimeout(
        () => finish(new FetchTimeoutError(href, 'connect', connectTimeoutMs)),
        Math.min(connectTimeoutMs, Math.max(0, deadline.remaining())),
      );
      timers.push(connectTimer);
      if (ro.signal) {
        if (ro.signal.aborted) return onAbort();
        ro.signal.addEventListener('abort', onAbort, { once: true });
      }
      req.on('socket', (socket) => {
        if (!socket.connecting) clearTimeout(connectTimer);
        else socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
      });
      req.on('error', (err) => finish(new FetchNetworkError(href, `request failed: ${err.message}`, err)));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const location = res.headers.location;
        if (REDIRECT_STATUSES.has(status) && typeof location === 'string') {
          res.resume();
          finish(undefined, { status, headers: res.headers, url: href, body: new Uint8Array(0), location });
          return;
        }
        const declared = Number(res.headers['content-length']);
        if (Number.isFinite(declared) && declared > maxBytes) {
          finish(new ResponseTooLargeError(href, maxBytes));
          return;
        }
        const chunks: Buffer[] = [];
        let total = 0;
        res.on('data', (chunk: Buffer) => {
          total += chunk.length;
          if (total > maxBytes) finish(new ResponseTooLargeError(href, maxBytes));
          else chunks.push(chunk);
        });
        res.on('error', (err) => finish(new FetchNetworkError(href, `response failed: ${err.message}`, err)));
        res.on('aborted', () => finish(new FetchNetworkError(href, 'response aborted')));
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          finish(undefined, {
            status,
            headers: res.headers,
            url: href,
            body: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength),
          });
        });
      });
      req.end(body);
    });
  }

  async function request(rawUrl: string, ro: RequestOptions = {}): Promise<SafeResponse> {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new SsrfRefusedError(rawUrl, 'not a valid URL');
    }
    const deadline = new Deadline(ro.timeoutMs ?? defaultTimeoutMs, rawUrl);
    const maxBytes = ro.maxResponseBytes ?? defaultMaxBytes;
    let method: string = ro.method ?? 'GET';
    let body = ro.body;
    let hopOpts = ro;
    for (let hop = 0; ; hop++) {
      const pinned = await checkHop(url, deadline);
      const res = await once(url, pinned, hopOpts, method, body, deadline, maxBytes);
      if (res.location === undefined) {
        if (!(ro.acceptStatus ?? is2xx)(res.status)) {
          const preview = Buffer.from(res.body.subarray(0, 200)).toString('utf8');
          throw new HttpStatusError(res.url, res.status, preview);
        }
        return { status: res.status, headers: res.headers, url: res.url, body: res.body };
      }
      if (hop >= maxRedirects) throw new TooManyRedirectsError(rawUrl, maxRedirects);
      let next: URL;
      try {
        next = new URL(res.location, url);
      } catch {
        throw new SsrfRefusedError(url.href, `invalid redirect location ${res.location}`);
      }
      if (next.origin !== url.origin && hopOpts.headers) {
        // credentials meant for one origin are not forwarded to another
        const kept = Object.entries(hopOpts.headers).filter(
          ([k]) => !sensitiveHeaders.includes(k.toLowerCase()),
        );
        hopOpts = { ...hopOpts, headers: Object.fromEntries(kept) };
      }
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
      url = next;
    }
  }

  async function getText(url: string, ro: RequestOptions = {}): Promise<SafeTextResponse> {
    const res = await request(url, ro);
    return {
      status: res.status,
      headers: res.headers,
      url: res.url,
      text: new TextDecoder().decode(res.body),
    };
  }

  async function getJson(url: string, ro: RequestOptions = {}): Promise<SafeJsonResponse> {
    const res = await request(url, { ...ro, headers: { accept: 'application/json', ...ro.headers } });
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(res.body));
    } catch (err) {
      throw new InvalidBodyError(res.url, 'response is not valid JSON', err);
    }
    return { status: res.status, headers: res.headers, url: res.url, json };
  }

  return {
    request,
    getJson,
    getText,
    workerRules: () => ({
      settings: {
        allowInsecure,
        allowedPorts: allowedPorts ? [...allowedPorts] : undefined,
        connectTimeoutMs,
        maxRedirects,
        userAgent,
        ca: typeof opts.ca === 'string' || opts.ca === undefined ? opts.ca : [...opts.ca],
      },
      resolveHost,
    }),
    close() {
      httpAgent?.destroy();
      httpsAgent?.destroy();
    },
  };
}

/**
 * The fetcher a worker thread makes from another fetcher's `workerRules()`:
 * the same scheme, port, redirect and size rules, every hop's host resolved
 * and checked by `resolveHost` (the owner's, asked over a message port).
 */
export function createWorkerSafeFetcher(
  settings: PortableFetchSettings,
  resolveHost: (host: string) => Promise<HostResolution>,
): SafeFetcher {
  return createSafeFetcher({
    // allowPrivate only lifts the port allow-list here (no policy runs: resolveHost checks addresses)
    allowPrivate: settings.allowedPorts === undefined,
    allowInsecure: settings.allowInsecure,
    allowedPorts: settings.allowedPorts,
    connectTimeoutMs: settings.connectTimeoutMs,
    maxRedirects: settings.maxRedirects,
    userAgent: settings.userAgent,
    ca: settings.ca,
    resolveHost,
  });
}

/** The overall deadline of one request across DNS, redirects and body. */
class Deadline {
  private readonly end: number;
  constructor(
    readonly totalMs: number,
    private readonly url: string,
  ) {
    this.end = Date.now() + totalMs;
  }
  remaining(): number {
    return this.end - Date.now();
  }
  /** Settles like `p`, or rejects with a timeout after `limitMs` or the overall deadline, whichever is first. */
  race<T>(p: Promise<T>, limitMs: number): Promise<T> {
    const remaining = Math.max(0, this.remaining());
    const connect = limitMs < remaining;
    return new Promise<T>((resolve, reject) => {
      // the error only when it happens: capturing its stack costs ~6 µs, on every lookup of every request
      const t = setTimeout(
        () =>
          reject(
            connect
              ? new FetchTimeoutError(this.url, 'connect', limitMs)
              : new FetchTimeoutError(this.url, 'total', this.totalMs),
          ),
        Math.min(limitMs, remaining),
      );
      p.then(
        (v) => {
          clearTimeout(t);
          resolve(v);
        },
        (e: unknown) => {
          clearTimeout(t);
          reject(e);
        },
      );
    });
  }
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function effectivePort(url: URL): number {
  if (url.port !== '') return Number(url.port);
  return url.protocol === 'http:' ? 80 : 443;
}
