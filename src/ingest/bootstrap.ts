// Start-up bootstrap: page through a seed relay's com.atproto.sync.listHosts
// (default bsky.network) and add every active host it lists, with the same
// checks as requestCrawl (hostname rules, domain bans, describeServer,
// SSRF guard) but without the new-hosts-per-day limit. A fresh relay thus
// knows the network's ~2,500 hosts without waiting for each PDS to call
// requestCrawl. describeServer checks run a few at a time; pages are capped
// and a repeated cursor ends the walk, so a misbehaving seed cannot keep
// the relay paging forever.
import type { Logger } from '../log.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { CrawlRefusedError, httpBase, validateCrawlHostname } from './host-policy.ts';

export interface BootstrapOptions {
  /** Hostname of the seed relay, optionally with a scheme (http:// only with allowInsecure). */
  upstream: string;
  fetcher: SafeFetcher;
  allowInsecure: boolean;
  log: Logger;
  /** Adds one host (requestCrawl with the bootstrap flag); rejects with CrawlRefusedError when refused. */
  add: (hostname: string) => Promise<unknown>;
  isStopping: () => boolean;
  pageSize?: number;
  maxPages?: number;
  concurrency?: number;
}

export interface BootstrapStats {
  listed: number;
  added: number;
  refused: number;
  failed: number;
}

interface ListHostsPage {
  cursor?: unknown;
  hosts?: unknown;
}

/** The hostnames of the active hosts in one listHosts page. */
function activeHostnames(page: ListHostsPage): string[] {
  if (!Array.isArray(page.hosts)) throw new Error('listHosts response has no hosts array');
  const out: string[] = [];
  for (const h of page.hosts as { hostname?: unknown; status?: unknown }[]) {
    // longer than any hostname validateCrawlHostname accepts: not worth a check or a log line
    if (!h || typeof h.hostname !== 'string' || h.hostname.length > 300) continue;
    if (h.status !== undefined && h.status !== 'active') continue;
    out.push(h.hostname);
  }
  return out;
}

export async function bootstrapFromUpstream(opts: BootstrapOptions): Promise<BootstrapStats> {
  const seed = validateCrawlHostname(opts.upstream, { allowInsecure: opts.allowInsecure });
  const base = `${httpBase(seed)}/xrpc/com.atproto.sync.listHosts`;
  const pageSize = opts.pageSize ?? 1000;
  const maxPages = opts.maxPages ?? 200;
  const concurrency = opts.concurrency ?? 8;
  const stats: BootstrapStats = { listed: 0, added: 0, refused: 0, failed: 0 };
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (let page = 0; page < maxPages && !opts.isStopping(); page++) {
    const url = `${base}?limit=${pageSize}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await opts.fetcher.getJson(url, { timeoutMs: 30_000, maxResponseBytes: 16 * 1024 * 1024 });
    const body = res.json as ListHostsPage;
    const names = activeHostnames(body);
    stats.listed += names.length;
    let next = 0;
    const worker = async () => {
      while (next < names.length && !opts.isStopping()) {
        const name = names[next++];
        try {
          await opts.add(name);
          stats.added++;
        } catch (err) {
          if (err instanceof CrawlRefusedError) stats.refused++;
          else stats.failed++;
          opts.log.debug({ host: name, err: (err as Error).message }, 'bootstrap: host not added');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));
    const c = typeof body.cursor === 'string' && body.cursor !== '' ? body.cursor : undefined;
    if (!c || seen.has(c) || names.length === 0) break;
    seen.add(c);
    cursor = c;
  }
  opts.log.info({ upstream: opts.upstream, ...stats }, 'bootstrap from upstream relay done');
  return stats;
}
