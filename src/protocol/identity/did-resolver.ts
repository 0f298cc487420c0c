// DID → parsed identity, for the two DID methods atproto allows: did:plc
// (GET `${plcUrl}/${did}` from the PLC directory) and did:web (GET
// `https://<host>/.well-known/did.json`, hostname-level only, as the atproto
// DID spec requires).
//
// All fetching goes through the SSRF-safe fetcher, because did:web hosts
// are chosen by whoever publishes the DID. Failures are sorted into what the
// cache needs to know: `DidNotFoundError` (404/410; definitive, cache it),
// `DidDocumentError` (the document is wrong; definitive) and
// `DidResolutionError`, whose `transient` flag says whether retrying later can
// help (timeouts, 5xx, connection errors) or not (refused address, oversize).
import { isValidDid } from '../syntax.ts';
import { type AtprotoIdentity, DidDocumentError, parseDidDocument } from './did-document.ts';
import {
  FetchNetworkError,
  FetchTimeoutError,
  HttpStatusError,
  InvalidBodyError,
  type SafeFetcher,
  SsrfRefusedError,
} from './safe-fetch.ts';

/** Anything that turns a DID into an identity: DidResolver, IdentityCache, or a simulated network. */
export interface IdentityResolver {
  resolve(did: string): Promise<AtprotoIdentity>;
}

export class DidNotFoundError extends Error {
  constructor(
    readonly did: string,
    readonly tombstoned: boolean,
  ) {
    super(tombstoned ? `DID is tombstoned: ${did}` : `DID not found: ${did}`);
    this.name = 'DidNotFoundError';
  }
}

export class DidResolutionError extends Error {
  constructor(
    readonly did: string,
    message: string,
    readonly transient: boolean,
    options?: { cause?: unknown },
  ) {
    super(`cannot resolve ${did}: ${message}`, options);
    this.name = 'DidResolutionError';
  }
}

export interface DidResolverOptions {
  fetcher: SafeFetcher;
  /**
   * Fetcher for the PLC directory, which the operator configures and so may
   * trust (e.g. a mirror on a private network). Defaults to `fetcher`.
   */
  plcFetcher?: SafeFetcher;
  /** PLC directory base URL. Default https://plc.directory */
  plcUrl?: string;
  /** Per-resolution deadline (ms). Default 10s. */
  timeoutMs?: number;
  /** Largest DID document accepted. Default 64 KiB. */
  maxDocumentBytes?: number;
  /**
   * Development only: accept `did:web:localhost%3A<port>` and fetch it over
   * plain http. The fetcher must also allow insecure/private targets.
   */
  allowInsecureDidWeb?: boolean;
}

const PLC_DID = /^did:plc:[a-z2-7]{24}$/;
const WEB_HOST = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const WEB_LOCALHOST_PORT = /^localhost%3a(\d{1,5})$/i;

export class DidResolver implements IdentityResolver {
  private readonly fetcher: SafeFetcher;
  private readonly plcFetcher: SafeFetcher;
  private readonly plcUrl: string;
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  private readonly allowInsecureDidWeb: boolean;

  constructor(opts: DidResolverOptions) {
    this.fetcher = opts.fetcher;
    this.plcFetcher = opts.plcFetcher ?? opts.fetcher;
    this.plcUrl = (opts.plcUrl ?? 'https://plc.directory').replace(/\/+$/, '');
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxBytes = opts.maxDocumentBytes ?? 64 * 1024;
    this.allowInsecureDidWeb = opts.allowInsecureDidWeb ?? false;
  }

  /** The URL a DID document is fetched from; throws DidResolutionError for unsupported DIDs. */
  documentUrl(did: string): string {
    if (did.startsWith('did:plc:')) {
      if (!PLC_DID.test(did)) throw new DidResolutionError(did, 'malformed did:plc', false);
      return `${this.plcUrl}/${did}`;
    }
    if (did.startsWith('did:web:')) {
      const host = did.slice('did:web:'.length);
      const local = WEB_LOCALHOST_PORT.exec(host);
      if (local) {
        if (!this.allowInsecureDidWeb) {
          throw new DidResolutionError(did, 'did:web with a port is only allowed in development', false);
        }
        return `http://localhost:${local[1]}/.well-known/did.json`;
      }
      if (host.includes(':')) throw new DidResolutionError(did, 'path-based did:web is not supported', false);
      if (!WEB_HOST.test(host)) throw new DidResolutionError(did, 'did:web hostname is not valid', false);
      return `https://${host}/.well-known/did.json`;
    }
    throw new DidResolutionError(did, 'unsupported DID method', false);
  }

  async resolve(did: string, opts: { signal?: AbortSignal } = {}): Promise<AtprotoIdentity> {
    if (!isValidDid(did)) throw new DidResolutionError(did, 'not a valid DID', false);
    const url = this.documentUrl(did);
    let json: unknown;
    try {
      const fetcher = did.startsWith('did:plc:') ? this.plcFetcher : this.fetcher;
      const res = await fetcher.getJson(url, {
        timeoutMs: this.timeoutMs,
        maxResponseBytes: this.maxBytes,
        signal: opts.signal,
        headers: { accept: 'application/did+ld+json, application/json' },
      });
      json = res.json;
    } catch (err) {
      throw classifyFetchError(did, err);
    }
    return parseDidDocument(json, did);
  }
}

function classifyFetchError(did: string, err: unknown): Error {
  if (err instanceof HttpStatusError) {
    if (err.status === 404) return new DidNotFoundError(did, false);
    if (err.status === 410) return new DidNotFoundError(did, true);
    const transient = err.status >= 500 || err.status === 429 || err.status === 408;
    return new DidResolutionError(did, `HTTP ${err.status}`, transient, { cause: err });
  }
  if (err instanceof FetchTimeoutError) return new DidResolutionError(did, err.message, true, { cause: err });
  if (err instanceof SsrfRefusedError) return new DidResolutionError(did, err.message, false, { cause: err });
  if (err instanceof InvalidBodyError) return new DidDocumentError(did, 'not valid JSON');
  if (err instanceof FetchNetworkError) return new DidResolutionError(did, err.message, true, { cause: err });
  if (err instanceof Error) return new DidResolutionError(did, err.message, false, { cause: err });
  return new DidResolutionError(did, String(err), false);
}
