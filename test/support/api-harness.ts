// Test support for the API: a real SQLite metadata store and file event log in
// a temp dir, the real firehose, and a node:http server on 127.0.0.1:0 that
// mounts createApiHandler the way the relay does. HostControl is a fake that
// applies changes to the store and records calls. Not a test file itself.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { type ClientOptions, WebSocket } from 'ws';
import { type ApiDeps, createApiHandler } from '../../src/api/index.ts';
import type { FileEventLog } from '../../src/eventlog/file-log.ts';
import { EventKind } from '../../src/eventlog/types.ts';
import { FirehoseServer } from '../../src/firehose/server.ts';
import type {
  HostControl,
  HostControlResult,
  HostLiveState,
  RateLimitOverride,
} from '../../src/ingest/host-control.ts';
import { DEFAULT_RATE_BASELINE } from '../../src/ingest/rate-limiter.ts';
import { decodeFrame, encodeFrame } from '../../src/protocol/frames.ts';
import { createSafeFetcher } from '../../src/protocol/identity/safe-fetch.ts';
import { normaliseHostname } from '../../src/store/hostname.ts';
import type { AccountStatus, Host, MetadataStore } from '../../src/store/metadata-store.ts';
import { openMetadataStore } from '../../src/store/open-store.ts';
import { Validator } from '../../src/validate/validator.ts';
import { openTempEventLog, removeTempDir, tempDir } from './temp.ts';
import { waitFor } from './wait.ts';

export const ADMIN_PASSWORD = 'correct horse battery staple';

export class FakeHostControl implements HostControl {
  readonly calls: string[] = [];
  readonly rateLimits = new Map<number, RateLimitOverride>();
  /** When set, requestCrawl answers this instead of adding the host. */
  crawlResult?: HostControlResult;

  constructor(private readonly store: MetadataStore) {}

  private async byName(hostname: string): Promise<Host> {
    const h = await this.store.getHostByHostname(hostname);
    if (!h) throw new Error(`fake: unknown host ${hostname}`);
    return h;
  }

  async requestCrawl(hostname: string, opts: { admin: boolean }): Promise<HostControlResult> {
    this.calls.push(`requestCrawl ${hostname} admin=${opts.admin}`);
    hostname = normaliseHostname(hostname);
    if (this.crawlResult) return this.crawlResult;
    if (await this.store.isDomainBanned(hostname)) {
      return { ok: false, status: 403, error: 'HostBanned', message: 'host domain is banned' };
    }
    return { ok: true, host: (await this.store.createHost({ hostname })).value };
  }

  async addHost(hostname: string): Promise<HostControlResult> {
    this.calls.push(`addHost ${hostname}`);
    hostname = normaliseHostname(hostname);
    return { ok: true, host: (await this.store.createHost({ hostname })).value };
  }

  async blockHost(hostname: string): Promise<HostControlResult> {
    this.calls.push(`blockHost ${hostname}`);
    return { ok: true, host: await this.store.setHostStatus((await this.byName(hostname)).id, 'blocked') };
  }

  async unblockHost(hostname: string): Promise<HostControlResult> {
    this.calls.push(`unblockHost ${hostname}`);
    return { ok: true, host: await this.store.setHostStatus((await this.byName(hostname)).id, 'active') };
  }

  async reconnectHost(hostname: string): Promise<HostControlResult> {
    this.calls.push(`reconnectHost ${hostname}`);
    return { ok: true };
  }

  async setAccountLimit(hostname: string, limit: number): Promise<HostControlResult> {
    this.calls.push(`setAccountLimit ${hostname} ${limit}`);
    await this.store.setHostAccountLimit((await this.byName(hostname)).id, limit);
    return { ok: true };
  }

  async setRateLimits(hostname: string, limits: RateLimitOverride): Promise<HostControlResult> {
    this.calls.push(`setRateLimits ${hostname} ${JSON.stringify(limits)}`);
    this.rateLimits.set((await this.byName(hostname)).id, limits);
    return { ok: true };
  }

  async setTrusted(hostname: string, trusted: boolean): Promise<HostControlResult> {
    this.calls.push(`setTrusted ${hostname} ${trusted}`);
    await this.store.setHostTrusted((await this.byName(hostname)).id, trusted);
    return { ok: true };
  }

  async resetCursor(hostname: string, cursor: number | null): Promise<HostControlResult> {
    this.calls.push(`resetCursor ${hostname} ${cursor}`);
    const h = await this.byName(hostname);
    if (h.status === 'blocked' || h.status === 'banned') {
      return { ok: false, status: 409, error: 'HostBlocked', message: `host ${hostname} is ${h.status}` };
    }
    await this.store.resetHostCursor(h.id, cursor ?? 0);
    const status = h.status === 'idle' || h.status === 'offline' ? 'active' : h.status;
    return { ok: true, host: await this.store.setHostStatus(h.id, status) };
  }

  /** Effective limits as HostManager reports them: the override over the defaults. */
  liveState(hostId: number): HostLiveState | undefined {
    const override = this.rateLimits.get(hostId);
    return override
      ? {
          connected: true,
          rateLimits: { ...DEFAULT_RATE_BASELINE, ...override },
          rateLimitOverride: override,
        }
      : undefined;
  }
}

export interface Harness {
  dir: string;
  store: MetadataStore;
  log: FileEventLog;
  firehose: FirehoseServer;
  hosts: FakeHostControl;
  registry: Registry;
  /** The validator operator actions go through (nothing else is submitted to it). */
  accounts: Validator;
  port: number;
  url(path: string): string;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  admin(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response>;
  close(): Promise<void>;
}

export async function startHarness(overrides: Partial<ApiDeps> = {}): Promise<Harness> {
  const dir = tempDir('api-test-');
  const store = await openMetadataStore({ dataDir: dir, cursorFlushMs: 0 });
  const log = await openTempEventLog({ dir: join(dir, 'events') });
  const firehose = new FirehoseServer({ log, pingIntervalMs: 0 });
  const hosts = new FakeHostControl(store);
  const registry = new Registry();
  // The one log writer, as in the relay: operator actions on accounts go through it.
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
  const accounts = new Validator({
    store,
    log,
    identity: {
      get: () => undefined,
      resolve: async (did) => {
        throw new Error(`no identities in the API harness: ${did}`);
      },
      purge: () => {},
    },
    handleResolver: { resolve: async () => undefined },
    fetcher,
  });
  const handler = createApiHandler({
    store,
    eventLog: log,
    accounts,
    firehose,
    hosts,
    adminPassword: ADMIN_PASSWORD,
    registry,
    ...overrides,
  });
  const server: Server = createServer((req, res) => {
    handler(req, res).then(
      (handled) => {
        if (!handled) res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"NotFound"}');
      },
      () => res.destroy(),
    );
  });
  server.on('upgrade', (req, socket, head) => {
    if (!firehose.handleUpgrade(req, socket, head)) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = (path: string): string => `http://127.0.0.1:${port}${path}`;
  const post = (path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(url(path), {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
      redirect: 'manual',
    });
  const bearer = { authorization: `Bearer ${ADMIN_PASSWORD}` };
  return {
    dir,
    store,
    log,
    firehose,
    hosts,
    registry,
    accounts,
    port,
    url,
    // Never follow redirects: getRepo points at hosts that must not be contacted.
    get: (path, headers = {}) => fetch(url(path), { headers, redirect: 'manual' }),
    post,
    admin: (method, path, body) =>
      method === 'GET'
        ? fetch(url(path), { headers: bearer, redirect: 'manual' })
        : post(path, body ?? {}, bearer),
    close: async () => {
      await accounts.close();
      fetcher.close();
      await firehose.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await log.close();
      await store.close();
      removeTempDir(dir);
    },
  };
}

/** A 13-char TID-shaped rev that sorts after `rev(n-1)`. */
export function rev(n: number): string {
  return `3l${n.toString(32).padStart(11, '2')}`;
}

export const CID = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm';

/** Creates `count` accounts on a host; those with `withHead` get a head. */
export async function seedAccounts(
  store: MetadataStore,
  hostId: number,
  count: number,
  opts: { prefix?: string; withHead?: boolean; status?: AccountStatus; upstreamStatus?: AccountStatus } = {},
): Promise<string[]> {
  const dids: string[] = [];
  for (let i = 0; i < count; i++) {
    const did = `did:plc:${opts.prefix ?? 'acct'}${String(i).padStart(6, '0')}`;
    const { value } = await store.createAccount({
      did,
      hostId,
      status: opts.status,
      upstreamStatus: opts.upstreamStatus,
    });
    if (opts.withHead !== false) {
      await store.updateAccountHead(value.uid, { rev: rev(i + 1), commitCid: CID, dataCid: CID });
    }
    dids.push(did);
  }
  return dids;
}

/** Appends `n` #commit events for an account (uid) to the log; returns their seqs. */
export function appendCommits(log: FileEventLog, uid: number, did: string, n: number): Promise<number[]> {
  return log.append(
    Array.from({ length: n }, () => ({
      kind: EventKind.commit,
      uid,
      frame: (seq: number) => encodeFrame('#commit', { seq, repo: did, rev: rev(seq) }),
    })),
  );
}

/** A firehose client that records decoded frames as `{t, ...body}`. */
export class FirehoseClient {
  readonly ws: WebSocket;
  readonly frames: Record<string, unknown>[] = [];
  readonly opened: Promise<void>;

  /** `opts` go to ws (e.g. `headers`, or `localAddress` to connect from another loopback address). */
  constructor(url: string, opts?: ClientOptions) {
    this.ws = new WebSocket(url, opts);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      const f = decodeFrame(new Uint8Array(data));
      this.frames.push({ t: f.header.op === 1 ? f.header.t : 'error', ...f.body });
    });
  }

  async waitFor(cond: (frames: Record<string, unknown>[]) => boolean): Promise<void> {
    await waitFor(() => cond(this.frames), cond.toString(), {
      describe: () => `frames: ${JSON.stringify(this.frames)}`,
    });
  }

  close(): void {
    this.ws.terminate();
  }
}
