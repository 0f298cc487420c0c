// Account reconciliation (issue 18): a slow background sweep that compares
// what the relay stores about each account (upstream status, head) with what
// the account's host says in `com.atproto.sync.listRepos`, and repairs the
// drift a lost event leaves behind:
//
//   - status: the host says active and the relay says inactive (a stale
//     inactive), or the reverse (a missed `#account`): the validator records
//     the host's status and emits the `#account` the relay would have emitted
//     (Validator.applyUpstreamStatus);
//   - resync: the host's rev is newer than the stored head (a missed
//     commit), or the account is still desynchronized: the validator resyncs
//     it now through its rate-limited, per-host-budgeted resync queue
//     (Validator.requestResync), which emits `#sync`.
//
// A drift is acted on only once it has lasted `graceMs` (the event may just
// be in flight): noticed on a listRepos page, it is re-checked with
// `getRepoStatus` after the grace period, against the account as stored
// then, and repaired only if it is still there. The sweep pages through each
// host's listRepos from a per-host cursor (wrapping at the end), one page per
// host per `intervalMs`, and only for hosts that are active and connected,
// whose socket the relay is not holding back (rate limit, back-pressure) and
// while ingest is not paused.
//
// Bounds: accounts examined (listed or re-checked) per host per hour at most
// `accountsPerHostPerHour` (a fixed one-hour window per host), so repairs are
// too; one sweep per host in flight and at most MAX_HOSTS_IN_FLIGHT hosts
// swept at once; each listRepos answer at most one page and a byte limit;
// drifts waiting for their grace per host at most MAX_PENDING; one state
// object per host of the store (dropped with it). Repairs are counted by kind
// (relay_reconcile_repairs_total), logged, and shown in /_stats (`report()`).

import { Counter, type Registry } from 'prom-client';
import { upstreamStatusOf } from '../accounts/status.ts';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Account, AccountStatus, Host, MetadataStore, RepoHead } from '../store/metadata-store.ts';
import type { RepairResult } from '../validate/validator.ts';
import type { HostSnapshot } from './host-control.ts';
import { httpBase } from './host-policy.ts';
import { PeriodicTask } from './periodic-task.ts';

export interface ReconcileSettings {
  /** How often each host gets one sweep step (one listRepos page); 0: reconciliation off. */
  intervalMs: number;
  /** Accounts examined per host per hour at most (listed or re-checked). */
  accountsPerHostPerHour: number;
  /** How long a drift must last before it is repaired. */
  graceMs: number;
}

/** The validator's repair entry points (Validator.requestResync / applyUpstreamStatus). */
export interface AccountRepairs {
  requestResync(did: string): Promise<RepairResult>;
  applyUpstreamStatus(did: string, status: AccountStatus): Promise<RepairResult>;
}

export interface ReconcileDeps {
  store: Pick<MetadataStore, 'listHosts' | 'getAccountByDid'>;
  /** The live subscribers (HostManager.list()). */
  live: () => readonly HostSnapshot[];
  fetcher: SafeFetcher;
  repairs: AccountRepairs;
  /** A head the validator has not written to the store yet (Validator.unwrittenHead). */
  unwrittenHead?: (did: string) => RepoHead | undefined;
  /** true while the relay itself holds ingest: no sweep. */
  ingestPaused?: () => boolean;
  settings: ReconcileSettings;
  now?: () => number;
  log?: Logger;
  registry?: Registry;
}

export type DriftKind = 'status' | 'resync';

interface Drift {
  kind: DriftKind;
  /** status: the host's status for the account. */
  status?: AccountStatus;
  since: number;
}

/** What the host says about one repo (a listRepos entry or a getRepoStatus answer). */
interface HostRepo {
  did: string;
  active: boolean;
  status: string | undefined;
  rev: string | undefined;
}

interface HostState {
  hostname: string;
  cursor: string | undefined;
  windowStart: number;
  examined: number;
  lastStepAt: number;
  sweeping: boolean;
  pending: Map<string, Drift>;
  lastError: string | undefined;
  /** Full passes over the host's listRepos. */
  passes: number;
  repairs: Record<DriftKind, number>;
}

/** One host's reconciliation, as /_stats shows it. */
export interface HostReconcile {
  hostname: string;
  examinedThisHour: number;
  pendingDrifts: number;
  passes: number;
  repairs: Record<DriftKind, number>;
  lastError?: string;
}

export interface ReconcileReport {
  intervalSeconds: number;
  accountsPerHostPerHour: number;
  graceSeconds: number;
  repairs: Record<DriftKind, number>;
  /** Hosts with repairs, pending drifts or an error (most repairs first, at most 20). */
  hosts: HostReconcile[];
}

const HOUR_MS = 3_600_000;
const MAX_HOSTS_IN_FLIGHT = 4;
const MAX_PENDING = 1000;
const MAX_PAGE = 1000;
const HOST_PAGE = 1000;
const HOSTS_LISTED = 20;
/** A listRepos entry is ~250 bytes of JSON; allow generous room and a floor. */
const BYTES_PER_REPO = 1024;
const FETCH_TIMEOUT_MS = 10_000;

export class AccountReconciler {
  private readonly states = new Map<number, HostState>();
  private readonly settings: ReconcileSettings;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly totals: Record<DriftKind, number> = { status: 0, resync: 0 };
  private readonly repairCounter: Counter<'kind'> | undefined;
  private readonly checkedCounter: Counter | undefined;
  private readonly pagesCounter: Counter<'result'> | undefined;

  private readonly task: PeriodicTask;

  constructor(private readonly deps: ReconcileDeps) {
    this.settings = deps.settings;
    this.now = deps.now ?? Date.now;
    this.log = (deps.log ?? silentLogger).child({ module: 'reconcile' });
    this.task = new PeriodicTask({
      intervalMs: this.settings.intervalMs,
      run: () => this.sweep(),
      onError: (err) => this.log.warn({ err }, 'reconciliation sweep failed'),
      runAtStart: true,
    });
    if (deps.registry) {
      const registers = [deps.registry];
      this.repairCounter = new Counter({
        name: 'relay_reconcile_repairs_total',
        help: 'Account drift repaired by the reconciliation sweep, by kind (status: #account emitted; resync: resync queued)',
        labelNames: ['kind'],
        registers,
      });
      this.checkedCounter = new Counter({
        name: 'relay_reconcile_accounts_checked_total',
        help: "Accounts compared with their host's listRepos or getRepoStatus by the reconciliation sweep",
        registers,
      });
      this.pagesCounter = new Counter({
        name: 'relay_reconcile_requests_total',
        help: 'listRepos and getRepoStatus requests of the reconciliation sweep, by result',
        labelNames: ['result'],
        registers,
      });
    }
  }

  start(): void {
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
  }

  report(): ReconcileReport {
    const hosts: HostReconcile[] = [];
    for (const st of this.states.values()) {
      if (st.repairs.status + st.repairs.resync === 0 && st.pending.size === 0 && !st.lastError) continue;
      hosts.push({
        hostname: st.hostname,
        examinedThisHour: st.examined,
        pendingDrifts: st.pending.size,
        passes: st.passes,
        repairs: { ...st.repairs },
        ...(st.lastError !== undefined ? { lastError: st.lastError } : {}),
      });
    }
    hosts.sort((a, b) => b.repairs.status + b.repairs.resync - (a.repairs.status + a.repairs.resync));
    return {
      intervalSeconds: this.settings.intervalMs / 1000,
      accountsPerHostPerHour: this.settings.accountsPerHostPerHour,
      graceSeconds: this.settings.graceMs / 1000,
      repairs: { ...this.totals },
      hosts: hosts.slice(0, HOSTS_LISTED),
    };
  }

  /** One sweep step for every eligible host (overlapping calls share the running one). */
  tick(): Promise<void> {
    return this.task.tick();
  }

  private async sweep(): Promise<void> {
    if (this.deps.ingestPaused?.() === true) return;
    const live = new Map(this.deps.live().map((s) => [s.hostId, s]));
    const hosts = await this.activeHosts();
    const seen = new Set(hosts.map((h) => h.id));
    for (const id of this.states.keys()) if (!seen.has(id)) this.states.delete(id);
    const due: Host[] = [];
    const now = this.now();
    for (const host of hosts) {
      const sub = live.get(host.id);
      // only hosts read now, and not while the relay holds the host back
      if (!sub?.connected || sub.paused) continue;
      const st = this.stateOf(host, now);
      if (st.sweeping || now - st.lastStepAt < this.settings.intervalMs) continue;
      due.push(host);
    }
    // a small pool: one slow host holds one slot, not the others
    let next = 0;
    const worker = async () => {
      while (next < due.length && !this.task.stopped) await this.step(due[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(MAX_HOSTS_IN_FLIGHT, due.length) }, worker));
  }

  private async activeHosts(): Promise<Host[]> {
    const out: Host[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await this.deps.store.listHosts({ after, limit: HOST_PAGE });
      for (const h of page) if (h.status === 'active') out.push(h);
      if (page.length < HOST_PAGE) break;
      after = page[page.length - 1].id;
    }
    return out;
  }

  private stateOf(host: Host, now: number): HostState {
    let st = this.states.get(host.id);
    if (!st) {
      st = {
        hostname: host.hostname,
        cursor: undefined,
        windowStart: now,
        examined: 0,
        lastStepAt: Number.NEGATIVE_INFINITY,
        sweeping: false,
        pending: new Map(),
        lastError: undefined,
        passes: 0,
        repairs: { status: 0, resync: 0 },
      };
      this.states.set(host.id, st);
    }
    st.hostname = host.hostname;
    return st;
  }

  /** Accounts this host may still have examined in its current hour. */
  private budget(st: HostState, now: number): number {
    if (now - st.windowStart >= HOUR_MS) {
      st.windowStart = now;
      st.examined = 0;
    }
    return Math.max(0, this.settings.accountsPerHostPerHour - st.examined);
  }

  private async step(host: Host): Promise<void> {
    const st = this.stateOf(host, this.now());
    st.sweeping = true;
    st.lastStepAt = this.now();
    try {
      await this.recheckPending(host, st);
      await this.readPage(host, st);
    } catch (err) {
      st.lastError = (err as Error).message.slice(0, 200);
      this.pagesCounter?.labels('error').inc();
    } finally {
      st.sweeping = false;
    }
  }

  /** Drifts past their grace: asked again with getRepoStatus, repaired if still there. */
  private async recheckPending(host: Host, st: HostState): Promise<void> {
    for (const [did, drift] of [...st.pending]) {
      const now = this.now();
      if (now - drift.since < this.settings.graceMs) continue;
      if (this.budget(st, now) <= 0 || this.task.stopped) return;
      st.examined++;
      this.checkedCounter?.inc();
      const repo = await this.getRepoStatus(host, did);
      this.pagesCounter?.labels('ok').inc();
      st.pending.delete(did);
      if (!repo) continue; // the host no longer has it
      const again = await this.driftOf(host, repo);
      if (again) await this.repair(host, st, did, again);
    }
  }

  private async readPage(host: Host, st: HostState): Promise<void> {
    const limit = Math.min(MAX_PAGE, this.budget(st, this.now()));
    if (limit <= 0 || this.task.stopped) return;
    const cursor = st.cursor === undefined ? '' : `&cursor=${encodeURIComponent(st.cursor)}`;
    const url = `${httpBase({ hostname: host.hostname, tls: host.tls })}/xrpc/com.atproto.sync.listRepos?limit=${limit}${cursor}`;
    const res = await this.deps.fetcher.getJson(url, {
      timeoutMs: FETCH_TIMEOUT_MS,
      maxResponseBytes: 16 * 1024 + limit * BYTES_PER_REPO,
    });
    if (res.status !== 200) throw new Error(`listRepos answered ${res.status}`);
    const body = res.json as { repos?: unknown; cursor?: unknown } | null;
    const repos = body?.repos;
    if (!Array.isArray(repos)) throw new Error('listRepos answer has no repos array');
    this.pagesCounter?.labels('ok').inc();
    st.lastError = undefined;
    // what the answer holds counts (at least one: an empty page still spent a request)
    st.examined += Math.max(1, Math.min(repos.length, limit));
    const next = body?.cursor;
    if (typeof next === 'string' && next.length > 0 && next.length <= 2048 && repos.length > 0) {
      st.cursor = next;
    } else {
      st.cursor = undefined;
      st.passes++;
    }
    const now = this.now();
    for (const entry of repos.slice(0, limit) as unknown[]) {
      const repo = parseHostRepo(entry);
      if (!repo) continue;
      this.checkedCounter?.inc();
      const drift = await this.driftOf(host, repo);
      if (!drift) {
        st.pending.delete(repo.did);
        continue;
      }
      if (this.settings.graceMs <= 0) {
        await this.repair(host, st, repo.did, drift);
        continue;
      }
      const before = st.pending.get(repo.did);
      if (before && before.kind === drift.kind && before.status === drift.status) continue;
      if (!before && st.pending.size >= MAX_PENDING) continue;
      st.pending.set(repo.did, { ...drift, since: now });
    }
  }

  private async getRepoStatus(host: Host, did: string): Promise<HostRepo | undefined> {
    const url = `${httpBase({ hostname: host.hostname, tls: host.tls })}/xrpc/com.atproto.sync.getRepoStatus?did=${encodeURIComponent(did)}`;
    const res = await this.deps.fetcher.getJson(url, {
      timeoutMs: FETCH_TIMEOUT_MS,
      maxResponseBytes: 16 * 1024,
    });
    if (res.status === 400 || res.status === 404) return undefined;
    if (res.status !== 200) throw new Error(`getRepoStatus answered ${res.status}`);
    const repo = parseHostRepo(res.json);
    return repo?.did === did ? repo : undefined;
  }

  /** What differs between the host's word on a repo and the account as stored here (undefined: nothing). */
  private async driftOf(host: Host, repo: HostRepo): Promise<Omit<Drift, 'since'> | undefined> {
    const account = await this.deps.store.getAccountByDid(repo.did);
    // only accounts this relay carries from this host (a moved account is the other host's)
    if (!account || account.hostId !== host.id) return undefined;
    const upstream = upstreamStatusOf(repo.active, repo.status);
    if (upstream !== account.upstreamStatus) return { kind: 'status', status: upstream };
    if (upstream !== 'active') return undefined;
    if (account.status === 'desynchronized') return { kind: 'resync' };
    if (account.status !== 'active' || repo.rev === undefined) return undefined;
    const ours = this.headOf(account)?.rev ?? '';
    return repo.rev > ours ? { kind: 'resync' } : undefined;
  }

  private headOf(account: Account): RepoHead | null | undefined {
    return this.deps.unwrittenHead?.(account.did) ?? account.head;
  }

  private async repair(host: Host, st: HostState, did: string, drift: Omit<Drift, 'since'>): Promise<void> {
    const result =
      drift.kind === 'status'
        ? await this.deps.repairs.applyUpstreamStatus(did, drift.status as AccountStatus)
        : await this.deps.repairs.requestResync(did);
    if (result !== 'emitted' && result !== 'queued') return;
    st.repairs[drift.kind]++;
    this.totals[drift.kind]++;
    this.repairCounter?.labels(drift.kind).inc();
    this.log.info(
      { host: host.hostname, did, kind: drift.kind, ...(drift.status ? { status: drift.status } : {}) },
      drift.kind === 'status'
        ? 'account status drift repaired: #account emitted'
        : 'account behind its host: resync queued',
    );
  }
}

/** A listRepos entry or getRepoStatus answer, bounded; undefined when malformed. */
function parseHostRepo(v: unknown): HostRepo | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const { did, active, status, rev } = v as Record<string, unknown>;
  if (typeof did !== 'string' || !did.startsWith('did:') || did.length > 2048) return undefined;
  // listRepos' `active` is optional (older PDSes): absent reads as active
  const isActive = active === undefined ? true : active === true;
  if (active !== undefined && typeof active !== 'boolean') return undefined;
  return {
    did,
    active: isActive,
    status: typeof status === 'string' && status.length <= 64 ? status : undefined,
    rev: typeof rev === 'string' && rev.length <= 64 ? rev : undefined,
  };
}
