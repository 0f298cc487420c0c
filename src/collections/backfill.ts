// Fills the collection index from outside the firehose, for the pairs that
// predate the relay. Two sources, one run at a time (a second start is
// refused: the admin API answers 409), resumable: progress is a row per unit
// of work in the index store (coll_backfill), saved after every imported
// page, so a stopped or crashed run continues from its last page. Imports
// only add pairs (idempotent), so a page re-imported after a crash is
// harmless, and pairs the firehose added meanwhile are never removed.
//
// - relay: pages another relay's com.atproto.sync.listReposByCollection for
//   every collection in a known-NSID list (inline, a file or a URL: any text,
//   NSID-shaped tokens are taken, so a lexicon list like llms.txt works) plus
//   the collections this index has already observed — zlay's design. One
//   collection at a time, rate-limited, so the source relay is not hammered.
// - hosts: for every account of every PDS host (com.atproto.sync.listRepos),
//   its collections from com.atproto.repo.describeRepo, or from the repo CAR
//   (com.atproto.sync.getRepo) when the host does not implement describeRepo.
//   A few hosts in parallel; per host a small concurrency and a request rate
//   limit. Progress per host is its listRepos cursor after a finished page.
//   Repo CARs go through the relay's repo fetch (validate/repo-fetch.ts:
//   byte and block limits, read in a worker thread), not the main thread.
//
// All HTTP goes through the SSRF-safe fetcher.
import { readFile } from 'node:fs/promises';
import { HttpStatusError, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { isValidDid, isValidNsid } from '../protocol/syntax.ts';
import { RepoFetchError, RepoFetcher } from '../validate/repo-fetch.ts';
import type { BackfillItem, CollectionIndexStore, CollectionPair } from './index-store.ts';

export interface RelaySource {
  kind: 'relay';
  /** base URL of the source relay, e.g. https://relay1.us-east.bsky.network */
  url: string;
  /** known NSIDs to backfill (besides the collections already in the index) */
  collections?: string[];
  /** a file path or http(s) URL with more known NSIDs */
  collectionsFrom?: string;
  /** page size asked of the source (default 2000, its maximum) */
  pageLimit?: number;
  /** requests per second to the source (default 10) */
  ratePerSec?: number;
}

export interface HostsSource {
  kind: 'hosts';
  /** base URLs of the PDS hosts (e.g. https://pds.example.com) */
  hosts: string[];
  /** hosts worked on at once (default 4) */
  hostConcurrency?: number;
  /** requests in flight per host (default 2) */
  perHostConcurrency?: number;
  /** requests per second per host (default 5) */
  perHostRatePerSec?: number;
  /** how to learn an account's collections (default auto: describeRepo, else getRepo) */
  method?: 'auto' | 'describeRepo' | 'getRepo';
  /** largest repo CAR fetched (default and ceiling: the relay's repo limit, RELAY_MAX_REPO_MB) */
  maxRepoBytes?: number;
  /** listRepos page size (default 1000); progress is saved after each page */
  listReposLimit?: number;
}

export type BackfillSource = (RelaySource | HostsSource) & {
  /** forget saved progress for this source and start over */
  restart?: boolean;
};

export type BackfillState = 'idle' | 'running' | 'done' | 'stopped' | 'failed';

export interface BackfillStatus {
  state: BackfillState;
  job: string | null;
  source: 'relay' | 'hosts' | null;
  startedAt: string | null;
  finishedAt: string | null;
  /** collections (relay) or hosts (hosts) in this job */
  itemsTotal: number;
  itemsDone: number;
  /** items being worked on */
  current: string[];
  /** pairs sent to the index in this run (some may have existed already) */
  pairsImported: number;
  /** pairs over all runs of this job, from the saved progress */
  pairsImportedTotal: number;
  /** accounts looked at (hosts source) */
  accountsScanned: number;
  pairsPerSec: number;
  /** from this run's time per finished item; null until an item finishes */
  etaSeconds: number | null;
  errors: number;
  lastError: string | null;
}

export type StartResult =
  | { ok: true; job: string }
  | { ok: false; reason: 'running' | 'invalid'; message: string };

export interface BackfillerOptions {
  store: CollectionIndexStore;
  fetcher: SafeFetcher;
  /** repo CARs (getRepo); default: a RepoFetcher over `fetcher` with the default limits */
  repos?: Pick<RepoFetcher, 'fetchRepo'>;
  /** reads a collections file (default fs.readFile as UTF-8) */
  readTextFile?: (path: string) => Promise<string>;
  /** retries per request before the item is given up for this run (default 3) */
  retries?: number;
  /** base backoff between retries, ms (default 1000) */
  retryBackoffMs?: number;
  requestTimeoutMs?: number;
  /** pairs per store transaction while importing (default 500) */
  importChunk?: number;
  /** known-NSID file or URL for a relay source that names no `collectionsFrom` (RELAY_COLLECTIONS_KNOWN_NSIDS) */
  defaultCollectionsFrom?: string;
}

const NSID_TOKEN = /[a-zA-Z][a-zA-Z0-9-]*(?:\.[a-zA-Z0-9-]+){2,}/g;

/** NSID-shaped tokens of a text (one per line, markdown links, anything), valid NSIDs only, deduplicated. */
export function parseNsidList(text: string): string[] {
  const out = new Set<string>();
  for (const m of text.matchAll(NSID_TOKEN)) if (isValidNsid(m[0])) out.add(m[0]);
  return [...out];
}

export function jobKey(source: RelaySource | HostsSource): string {
  return source.kind === 'relay' ? `relay:${new URL(source.url).origin}` : 'hosts';
}

/** Spaces request starts at least 1/rate seconds apart. */
class Pacer {
  private next = 0;
  constructor(private readonly ratePerSec: number) {}
  async wait(signal: AbortSignal): Promise<void> {
    const now = Date.now();
    const at = Math.max(now, this.next);
    this.next = at + 1000 / this.ratePerSec;
    if (at > now) await sleep(at - now, signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

class StoppedError extends Error {}

function xrpcUrl(base: string, method: string, params: Record<string, string | undefined>): string {
  const u = new URL(`/xrpc/${method}`, base);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** An XRPC error name from a failed response, if the body carried one. */
function xrpcErrorName(err: unknown): string | undefined {
  if (!(err instanceof HttpStatusError)) return undefined;
  try {
    return (JSON.parse(err.bodyPreview) as { error?: string }).error;
  } catch {
    return /"error"\s*:\s*"([A-Za-z]+)"/.exec(err.bodyPreview)?.[1];
  }
}

export class CollectionBackfiller {
  private st: BackfillStatus = idleStatus();
  private run: Promise<void> | null = null;
  private abort: AbortController | null = null;
  private startMs = 0;
  private itemsDoneThisRun = 0;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly repos: Pick<RepoFetcher, 'fetchRepo'>;

  constructor(private readonly opts: BackfillerOptions) {
    this.retries = opts.retries ?? 3;
    this.backoffMs = opts.retryBackoffMs ?? 1000;
    // An own RepoFetcher starts its worker only when a repo is read, and lets it exit when idle.
    this.repos = opts.repos ?? new RepoFetcher({ fetcher: opts.fetcher });
  }

  isRunning(): boolean {
    return this.run !== null;
  }

  /** Starts a run in the background; refuses while one is running. */
  start(source: BackfillSource): StartResult {
    if (this.run) return { ok: false, reason: 'running', message: `backfill ${this.st.job} is running` };
    const invalid = validateSource(source);
    if (invalid) return { ok: false, reason: 'invalid', message: invalid };
    const job = jobKey(source);
    this.abort = new AbortController();
    this.startMs = Date.now();
    this.itemsDoneThisRun = 0;
    this.st = {
      ...idleStatus(),
      state: 'running',
      job,
      source: source.kind,
      startedAt: new Date(this.startMs).toISOString(),
    };
    const signal = this.abort.signal;
    this.run = (async () => {
      try {
        if (source.restart) await this.opts.store.clearBackfill(job);
        if (source.kind === 'relay') await this.runRelay(job, source, signal);
        else await this.runHosts(job, source, signal);
        // Items that kept failing stay unfinished (a later start resumes them).
        if (signal.aborted) this.st.state = 'stopped';
        else this.st.state = this.st.itemsDone < this.st.itemsTotal ? 'failed' : 'done';
      } catch (err) {
        this.st.state = signal.aborted || err instanceof StoppedError ? 'stopped' : 'failed';
        if (this.st.state === 'failed') this.noteError(err);
      } finally {
        this.st.current = [];
        this.st.finishedAt = new Date().toISOString();
        this.run = null;
      }
    })();
    return { ok: true, job };
  }

  status(): BackfillStatus {
    const s = { ...this.st, current: [...this.st.current] };
    const elapsed =
      ((this.st.finishedAt ? Date.parse(this.st.finishedAt) : Date.now()) - this.startMs) / 1000;
    if (this.st.startedAt && elapsed > 0) s.pairsPerSec = Math.round(s.pairsImported / elapsed);
    if (this.st.state === 'running' && this.itemsDoneThisRun > 0) {
      const perItem = elapsed / this.itemsDoneThisRun;
      s.etaSeconds = Math.round(perItem * Math.max(0, s.itemsTotal - s.itemsDone));
    } else if (this.st.state === 'done') s.etaSeconds = 0;
    return s;
  }

  /** Resolves when the current run (if any) has ended. */
  async wait(): Promise<void> {
    await this.run;
  }

  /** Stops the current run; its progress stays saved for a later start. */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.run;
  }

  /**
   * Adds pairs in transactions of `importChunk` with a yield between them:
   * SQLite writes block the event loop (40–130 µs per new random pair on a
   * 10M-pair index, less for a relay page's sorted DIDs), so a whole
   * 2,000-pair page in one go could stall the firehose for 100+ ms. Larger
   * chunks import faster (fewer page writes per pair), smaller ones stall less.
   */
  private async importPairs(pairs: CollectionPair[]): Promise<void> {
    const chunk = this.opts.importChunk ?? 500;
    for (let i = 0; i < pairs.length; i += chunk) {
      if (i > 0) await new Promise<void>((r) => setImmediate(r));
      await this.opts.store.addPairs(pairs.slice(i, i + chunk));
    }
  }

  private noteError(err: unknown): void {
    this.st.errors++;
    this.st.lastError = errorText(err);
  }

  /** A request with retries and backoff; StoppedError once stopped. */
  private async withRetries<T>(signal: AbortSignal, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      if (signal.aborted) throw new StoppedError();
      try {
        return await fn();
      } catch (err) {
        if (signal.aborted) throw new StoppedError();
        const status =
          err instanceof HttpStatusError ? err.status : err instanceof RepoFetchError ? err.httpStatus : 0;
        const permanent =
          (status >= 400 && status < 500 && status !== 429 && status !== 408) ||
          status === 501 ||
          // a repo over the size limits or broken as served: fetching it again gives the same
          (err instanceof RepoFetchError && err.permanent);
        if (permanent || attempt >= this.retries) throw err;
        await sleep(this.backoffMs * 2 ** attempt, signal);
      }
    }
  }

  private async loadItems(job: string, names: readonly string[]): Promise<BackfillItem[]> {
    const saved = new Map((await this.opts.store.backfillItems(job)).map((i) => [i.item, i]));
    const items = names.map((n) => saved.get(n) ?? { item: n, cursor: null, done: false, pairs: 0 });
    this.st.itemsTotal = items.length;
    this.st.itemsDone = items.filter((i) => i.done).length;
    this.st.pairsImportedTotal = items.reduce((a, i) => a + i.pairs, 0);
    return items;
  }

  private async knownCollections(source: RelaySource): Promise<string[]> {
    const names = new Set<string>();
    for (const c of source.collections ?? []) if (isValidNsid(c)) names.add(c);
    const from = source.collectionsFrom ?? this.opts.defaultCollectionsFrom;
    if (from) {
      const text = /^https?:\/\//.test(from)
        ? (await this.opts.fetcher.getText(from, { timeoutMs: this.opts.requestTimeoutMs })).text
        : await (this.opts.readTextFile ?? ((p: string) => readFile(p, 'utf8')))(from);
      for (const c of parseNsidList(text)) names.add(c);
    }
    let cursor: string | undefined;
    do {
      const page = await this.opts.store.listCollections(1000, cursor);
      for (const c of page.items) names.add(c.collection);
      cursor = page.cursor;
    } while (cursor);
    return [...names].sort();
  }

  private async runRelay(job: string, source: RelaySource, signal: AbortSignal): Promise<void> {
    const items = await this.loadItems(job, await this.knownCollections(source));
    const pacer = new Pacer(source.ratePerSec ?? 10);
    const limit = String(source.pageLimit ?? 2000);
    for (const item of items) {
      if (item.done) continue;
      if (signal.aborted) return;
      this.st.current = [item.item];
      try {
        for (;;) {
          await pacer.wait(signal);
          const url = xrpcUrl(source.url, 'com.atproto.sync.listReposByCollection', {
            collection: item.item,
            limit,
            cursor: item.cursor ?? undefined,
          });
          const { json } = await this.withRetries(signal, () =>
            this.opts.fetcher.getJson(url, { signal, timeoutMs: this.opts.requestTimeoutMs }),
          );
          const page = parseRepoPage(json);
          await this.importPairs(page.dids.map((did) => ({ did, collection: item.item })));
          this.st.pairsImported += page.dids.length;
          this.st.pairsImportedTotal += page.dids.length;
          item.pairs += page.dids.length;
          const finished = !page.cursor || page.dids.length === 0 || page.cursor === item.cursor;
          item.cursor = finished ? item.cursor : (page.cursor ?? null);
          item.done = finished;
          await this.opts.store.saveBackfillItem(job, item);
          if (finished) break;
        }
        this.st.itemsDone++;
        this.itemsDoneThisRun++;
      } catch (err) {
        if (err instanceof StoppedError || signal.aborted) return;
        // This collection is left unfinished (resumable); go on with the next.
        this.noteError(err);
      }
    }
  }

  private async runHosts(job: string, source: HostsSource, signal: AbortSignal): Promise<void> {
    const hosts = [...new Set(source.hosts.map((h) => new URL(h).origin))].sort();
    const items = await this.loadItems(job, hosts);
    const queue = items.filter((i) => !i.done);
    const workers = Array.from({ length: Math.min(source.hostConcurrency ?? 4, queue.length) }, async () => {
      for (let item = queue.shift(); item && !signal.aborted; item = queue.shift()) {
        this.st.current.push(item.item);
        try {
          await this.backfillHost(job, item, source, signal);
          if (item.done) {
            this.st.itemsDone++;
            this.itemsDoneThisRun++;
          }
        } catch (err) {
          if (!(err instanceof StoppedError) && !signal.aborted) this.noteError(err);
        } finally {
          this.st.current = this.st.current.filter((c) => c !== item.item);
        }
      }
    });
    await Promise.all(workers);
  }

  private async backfillHost(
    job: string,
    item: BackfillItem,
    source: HostsSource,
    signal: AbortSignal,
  ): Promise<void> {
    const base = item.item;
    const pacer = new Pacer(source.perHostRatePerSec ?? 5);
    let method = source.method ?? 'auto';
    const get = <T>(fn: () => Promise<T>) =>
      this.withRetries(signal, async () => {
        await pacer.wait(signal);
        if (signal.aborted) throw new StoppedError();
        return fn();
      });

    const collectionsOf = async (did: string): Promise<string[] | null> => {
      if (method !== 'getRepo') {
        try {
          const { json } = await get(() =>
            this.opts.fetcher.getJson(xrpcUrl(base, 'com.atproto.repo.describeRepo', { repo: did }), {
              signal,
              timeoutMs: this.opts.requestTimeoutMs,
            }),
          );
          const cs = (json as { collections?: unknown }).collections;
          if (!Array.isArray(cs)) throw new Error(`describeRepo for ${did}: no collections array`);
          return cs.filter((c): c is string => typeof c === 'string' && isValidNsid(c));
        } catch (err) {
          const name = xrpcErrorName(err);
          const notImplemented =
            err instanceof HttpStatusError &&
            (err.status === 501 ||
              name === 'MethodNotImplemented' ||
              (err.status === 404 && name === undefined));
          if (!notImplemented || method === 'describeRepo') throw err;
          method = 'getRepo';
        }
      }
      const repo = await get(() =>
        this.repos.fetchRepo(did, new URL(base).origin, {
          purpose: 'backfill',
          signal,
          timeoutMs: this.opts.requestTimeoutMs,
          maxBytes: source.maxRepoBytes,
        }),
      );
      if (!repo) throw new Error(`getRepo for ${did}: no such repo`);
      return repo.collections;
    };

    for (;;) {
      const { json } = await get(() =>
        this.opts.fetcher.getJson(
          xrpcUrl(base, 'com.atproto.sync.listRepos', {
            limit: String(source.listReposLimit ?? 1000),
            cursor: item.cursor ?? undefined,
          }),
          { signal, timeoutMs: this.opts.requestTimeoutMs },
        ),
      );
      const page = parseListReposPage(json);
      // Accounts of one page, a few at a time.
      const dids = page.repos.filter((r) => r.active).map((r) => r.did);
      let next = 0;
      const lanes = Array.from({ length: Math.max(1, source.perHostConcurrency ?? 2) }, async () => {
        while (next < dids.length && !signal.aborted) {
          const did = dids[next++];
          try {
            const cs = await collectionsOf(did);
            this.st.accountsScanned++;
            if (cs && cs.length > 0) {
              await this.importPairs(cs.map((collection) => ({ did, collection })));
              this.st.pairsImported += cs.length;
              this.st.pairsImportedTotal += cs.length;
              item.pairs += cs.length;
            }
          } catch (err) {
            if (err instanceof StoppedError || signal.aborted) return;
            // One account failing (gone, taken down, broken repo) does not stop the host.
            this.noteError(err);
          }
        }
      });
      await Promise.all(lanes);
      if (signal.aborted) throw new StoppedError();
      const finished = !page.cursor || page.repos.length === 0 || page.cursor === item.cursor;
      if (!finished) item.cursor = page.cursor ?? null;
      item.done = finished;
      await this.opts.store.saveBackfillItem(job, item);
      if (finished) return;
    }
  }
}

function idleStatus(): BackfillStatus {
  return {
    state: 'idle',
    job: null,
    source: null,
    startedAt: null,
    finishedAt: null,
    itemsTotal: 0,
    itemsDone: 0,
    current: [],
    pairsImported: 0,
    pairsImportedTotal: 0,
    accountsScanned: 0,
    pairsPerSec: 0,
    etaSeconds: null,
    errors: 0,
    lastError: null,
  };
}

function validateSource(source: BackfillSource): string | null {
  if (typeof source !== 'object' || source === null) return 'source must be an object';
  const okUrl = (u: unknown) => {
    if (typeof u !== 'string') return false;
    try {
      const p = new URL(u);
      return p.protocol === 'https:' || p.protocol === 'http:';
    } catch {
      return false;
    }
  };
  const posInt = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isFinite(v) && v > 0);
  if (source.kind === 'relay') {
    if (!okUrl(source.url)) return 'url must be an http(s) URL';
    if (source.collections !== undefined && !Array.isArray(source.collections))
      return 'collections must be a list';
    if (source.collectionsFrom !== undefined && typeof source.collectionsFrom !== 'string')
      return 'collectionsFrom must be a path or URL';
    if (!posInt(source.pageLimit) || (source.pageLimit ?? 0) > 2000) return 'pageLimit must be 1..2000';
    if (!posInt(source.ratePerSec)) return 'ratePerSec must be positive';
    return null;
  }
  if (source.kind === 'hosts') {
    if (!Array.isArray(source.hosts) || !source.hosts.every(okUrl))
      return 'hosts must be a list of http(s) URLs';
    if (
      !posInt(source.hostConcurrency) ||
      !posInt(source.perHostConcurrency) ||
      !posInt(source.perHostRatePerSec)
    )
      return 'concurrency and rates must be positive';
    if (source.method !== undefined && !['auto', 'describeRepo', 'getRepo'].includes(source.method))
      return 'method must be auto, describeRepo or getRepo';
    return null;
  }
  return 'kind must be relay or hosts';
}

function parseRepoPage(json: unknown): { dids: string[]; cursor?: string } {
  const o = json as { repos?: unknown; cursor?: unknown };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.repos))
    throw new Error('listReposByCollection: no repos array');
  const dids: string[] = [];
  for (const r of o.repos) {
    const did = (r as { did?: unknown })?.did;
    if (isValidDid(did)) dids.push(did);
  }
  return { dids, cursor: typeof o.cursor === 'string' && o.cursor !== '' ? o.cursor : undefined };
}

function parseListReposPage(json: unknown): { repos: { did: string; active: boolean }[]; cursor?: string } {
  const o = json as { repos?: unknown; cursor?: unknown };
  if (typeof o !== 'object' || o === null || !Array.isArray(o.repos))
    throw new Error('listRepos: no repos array');
  const repos: { did: string; active: boolean }[] = [];
  for (const r of o.repos) {
    const rr = r as { did?: unknown; active?: unknown };
    if (isValidDid(rr?.did)) repos.push({ did: rr.did, active: rr.active !== false });
  }
  return { repos, cursor: typeof o.cursor === 'string' && o.cursor !== '' ? o.cursor : undefined };
}
