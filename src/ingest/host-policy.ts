// Which hostnames the relay will crawl, and how it reaches them. A
// requestCrawl hostname comes from anyone on the internet, so it is
// normalised (store/hostname.ts) and then held to production rules: a DNS
// name with at least two labels, no IP literal, no port, TLS (wss/https).
// Local development and tests (RELAY_ALLOW_INSECURE_HOSTS) may use
// `localhost:PORT` / `127.0.0.1:PORT` over plain ws/http. Trusted domains
// (suffix match on whole labels, like domain bans) get higher rate limits
// and no account limit.
import { isIP } from 'node:net';
import { domainSuffixes, normaliseHostname } from '../store/hostname.ts';
import type { Host } from '../store/metadata-store.ts';

/** A requestCrawl or admin addition refused; `error` is the XRPC error name. */
export class CrawlRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    message: string,
  ) {
    super(message);
    this.name = 'CrawlRefusedError';
  }
}

export interface CrawlTarget {
  /** Normalised: lower case, no scheme, optional `:port` (development only). */
  hostname: string;
  /** wss/https when true; ws/http only with allowInsecure. */
  tls: boolean;
}

const invalid = (message: string) => new CrawlRefusedError(400, 'InvalidRequest', message);

/** Validates a hostname from requestCrawl, an admin or a seed relay's listHosts. */
export function validateCrawlHostname(raw: unknown, opts: { allowInsecure: boolean }): CrawlTarget {
  if (typeof raw !== 'string' || raw.trim() === '') throw invalid('hostname is required');
  if (raw.length > 300) throw invalid('hostname is too long');
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw.trim())?.[1]?.toLowerCase();
  if (scheme !== undefined && !['https', 'wss', 'http', 'ws'].includes(scheme)) {
    throw invalid(`unsupported scheme ${scheme}`);
  }
  const insecureScheme = scheme === 'http' || scheme === 'ws';
  let hostname: string;
  try {
    hostname = normaliseHostname(raw);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  const portMatch = /:(\d+)$/.exec(hostname);
  const name = portMatch ? hostname.slice(0, -portMatch[0].length) : hostname;
  const ipLiteral = isIP(name) !== 0;
  const local = name === 'localhost' || name.endsWith('.localhost');
  if (!opts.allowInsecure) {
    if (insecureScheme) throw invalid('hosts must use TLS (https/wss)');
    if (portMatch) throw invalid('hostname may not include a port');
    if (ipLiteral) throw invalid('hostname may not be an IP address');
    if (local) throw invalid('localhost is not a public host');
    if (!name.includes('.')) throw invalid('hostname needs at least two labels');
    if (/^\d+$/.test(name.slice(name.lastIndexOf('.') + 1))) throw invalid('top-level label is numeric');
    return { hostname, tls: true };
  }
  const tls = !(insecureScheme || portMatch !== null || ipLiteral || local);
  return { hostname, tls };
}

/** Parses RELAY_TRUSTED_DOMAINS: comma-separated, optional `*.` prefixes, lower-cased. */
export function parseTrustedDomains(list: string | readonly string[]): string[] {
  const items = typeof list === 'string' ? list.split(',') : list;
  return items
    .map((d) => d.trim().toLowerCase().replace(/^\*\./, '').replace(/\.$/, ''))
    .filter((d) => d !== '');
}

/** True when the hostname (port ignored) is a trusted domain or under one. */
export function isTrustedHostname(hostname: string, trusted: readonly string[]): boolean {
  if (trusted.length === 0) return false;
  let suffixes: string[];
  try {
    suffixes = domainSuffixes(hostname);
  } catch {
    return false;
  }
  return suffixes.some((s) => trusted.includes(s));
}

/** The account limit the validation stage applies to a host: none for trusted hosts. */
export function hostAccountLimit(
  host: Pick<Host, 'accountLimit' | 'trusted'>,
  trustedDomain: boolean,
): number {
  return host.trusted || trustedDomain ? Number.POSITIVE_INFINITY : host.accountLimit;
}

/** The subscribeRepos URL of a host, with the cursor when there is one (0 = live only). */
export function subscribeUrl(target: CrawlTarget, cursor: number): string {
  const base = `${target.tls ? 'wss' : 'ws'}://${target.hostname}/xrpc/com.atproto.sync.subscribeRepos`;
  return cursor > 0 ? `${base}?cursor=${cursor}` : base;
}

/** The base https:// (or http:// in development) URL of a host. */
export function httpBase(target: CrawlTarget): string {
  return `${target.tls ? 'https' : 'http'}://${target.hostname}`;
}
