// Handle → DID, and the bidirectional handle check (atproto.com/specs/handle).
//
// A handle is only trustworthy when both directions agree: the DID document
// claims the handle in alsoKnownAs, AND the handle's domain points back at
// that DID, either by a DNS TXT record `_atproto.<handle>` = `did=<did>` or by
// `https://<handle>/.well-known/atproto-did` returning the DID. DNS is tried
// first (one cheap query); HTTPS goes through the SSRF-safe fetcher since the
// domain is chosen by the account. Both transports are injectable so tests
// and the simulated network need no real DNS. Any failure (no record,
// conflicting records, timeout, refused address) means "no DID", never an
// exception, because an unverifiable handle is a normal state of the world.
//
// Resolutions run through a FIFO concurrency limiter (32 at once, like DID
// resolution): every #identity a host sends asks for one, and DNS lookups go
// through c-ares (dns-lookup.ts), so nothing else caps how many DNS queries
// and HTTPS requests a burst of them opens. A full queue (100,000 waiting)
// is "no DID" too.
import { promises as dns } from 'node:dns';
import { isValidDid, isValidHandle, normalizeHandle } from '../syntax.ts';
import { ConcurrencyLimiter } from './concurrency-limiter.ts';
import type { AtprotoIdentity } from './did-document.ts';
import type { SafeFetcher } from './safe-fetch.ts';

export type ResolveTxtFn = (hostname: string) => Promise<string[][]>;

export interface HandleResolverOptions {
  fetcher: SafeFetcher;
  /** Default: node's dns.promises.resolveTxt. */
  resolveTxt?: ResolveTxtFn;
  /** Default: `https://<handle>/.well-known/atproto-did`. Tests point this at a loopback server. */
  wellKnownUrl?: (handle: string) => string;
  /** Deadline for each of the DNS query and the HTTPS request (ms). Default 5s. */
  timeoutMs?: number;
  /**
   * Resolve handles under TLDs the spec reserves (.test, .local, .localhost,
   * .internal, ...). Off in production; on for development and tests.
   */
  allowReservedTlds?: boolean;
  /** Resolutions at once (default 32); the rest wait in order. */
  maxConcurrent?: number;
  /** Resolutions waiting at most (default 100,000); beyond, resolve answers undefined at once. */
  maxQueued?: number;
}

const RESERVED_TLDS = new Set([
  'alt',
  'arpa',
  'example',
  'internal',
  'invalid',
  'local',
  'localhost',
  'onion',
  'test',
]);

export class HandleResolver {
  private readonly fetcher: SafeFetcher;
  private readonly resolveTxt: ResolveTxtFn;
  private readonly wellKnownUrl: (handle: string) => string;
  private readonly timeoutMs: number;
  private readonly allowReservedTlds: boolean;
  private readonly limiter: ConcurrencyLimiter;

  constructor(opts: HandleResolverOptions) {
    this.fetcher = opts.fetcher;
    this.resolveTxt = opts.resolveTxt ?? ((h) => dns.resolveTxt(h));
    this.wellKnownUrl = opts.wellKnownUrl ?? ((h) => `https://${h}/.well-known/atproto-did`);
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.allowReservedTlds = opts.allowReservedTlds ?? false;
    this.limiter = new ConcurrencyLimiter(opts.maxConcurrent ?? 32, opts.maxQueued ?? 100_000);
  }

  /** The DID the handle's domain points at, or undefined. DNS first, then HTTPS. */
  async resolve(handle: string): Promise<string | undefined> {
    const h = this.resolvableHandle(handle);
    if (h === undefined) return undefined;
    return this.limiter
      .run(async () => (await this.resolveDns(h)) ?? (await this.resolveHttp(h)))
      .catch(() => undefined); // only a full queue rejects: both lookups answer undefined on failure
  }

  /** `_atproto.<handle>` TXT lookup; exactly one distinct valid `did=` value counts. */
  async resolveDns(handle: string): Promise<string | undefined> {
    const h = this.resolvableHandle(handle);
    if (h === undefined) return undefined;
    let records: string[][];
    try {
      records = await withTimeout(this.resolveTxt(`_atproto.${h}`), this.timeoutMs);
    } catch {
      return undefined;
    }
    const dids = new Set<string>();
    for (const chunks of records) {
      const txt = chunks.join('');
      if (!txt.startsWith('did=')) continue;
      const did = txt.slice(4).trim();
      if (isValidDid(did)) dids.add(did);
    }
    return dids.size === 1 ? [...dids][0] : undefined;
  }

  /** `https://<handle>/.well-known/atproto-did`: the body, trimmed, must be a DID. */
  async resolveHttp(handle: string): Promise<string | undefined> {
    const h = this.resolvableHandle(handle);
    if (h === undefined) return undefined;
    try {
      const res = await this.fetcher.getText(this.wellKnownUrl(h), {
        timeoutMs: this.timeoutMs,
        maxResponseBytes: 4096,
        headers: { accept: 'text/plain' },
      });
      const did = res.text.split('\n')[0].trim();
      return isValidDid(did) ? did : undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Bidirectional check: `identity` (the resolved document of `did`) claims
   * `handle`, and `handle` resolves back to `did`.
   */
  async verifyHandle(handle: string, did: string, identity: AtprotoIdentity): Promise<boolean> {
    if (!isValidHandle(handle)) return false;
    const h = normalizeHandle(handle);
    if (identity.did !== did || identity.handle !== h) return false;
    return (await this.resolve(h)) === did;
  }

  private resolvableHandle(handle: string): string | undefined {
    if (!isValidHandle(handle)) return undefined;
    const h = normalizeHandle(handle);
    const tld = h.slice(h.lastIndexOf('.') + 1);
    if (!this.allowReservedTlds && RESERVED_TLDS.has(tld)) return undefined;
    return h;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms}ms`)), ms);
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
