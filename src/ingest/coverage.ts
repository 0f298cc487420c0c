// Coverage: how much of the network the relay is really carrying, and the
// stall watchdog that acts on it (issue 18).
//
// A relay can hold open sockets to every host and still relay nothing: a
// PDS whose outbox wedged keeps the socket open and answers pings, and a host
// that went down is just a failing dial. Neither shows in /_healthz. So per
// host this keeps what the socket shows (highest seq seen, events/s, age of
// the last event, how long since it was last connected) and, every
// `sampleIntervalMs`, what the host itself says: one listRepos page of at most
// `sampleRepos` repos (a PDS publishes no "current seq"; each repo's rev is
// the honest head we can compare). A sampled repo whose rev is newer than the
// head stored here is a write we lack; it is remembered with the time it was
// first noticed (not the rev's own time: revs are host-controlled) until the
// stored head reaches that rev. A host is *current* when it is connected (or
// was within `currentWithinMs`) and no remembered write has been missing for
// `currentWithinMs`.
//
// Coverage = the share of hosts the relay is meant to carry (status active,
// idle or offline: not blocked or banned) that are current, each weighted by
// its stored account count (at least 1). It is a gauge, a /_stats section
// (`report()`), and a readiness condition (`notReadyReason()`, below
// `readyThreshold`). The stall watchdog: a connected host whose last event is
// older than `currentWithinMs` while a sampled write has been missing that
// long is reconnected (from its cursor, so the backlog is read again), at
// most once per `currentWithinMs`, unless the relay itself is holding it back
// (socket paused for a rate limit or back-pressure, frames waiting, ingest
// paused): then the silence is ours, not the host's.
//
// Bounds: per host one sample in flight and one per interval; at most
// MAX_SAMPLES_IN_FLIGHT samples at once relay-wide; each answer at most
// `sampleRepos` repos and a byte limit; the remembered writes per host at most
// `sampleRepos`; one state object per host of the store (dropped with it).

import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import type { HostSnapshot } from './host-control.ts';
import { httpBase } from './host-policy.ts';
import { PeriodicTask } from './periodic-task.ts';

export interface CoverageSettings {
  /** A host is current when connected within this long and no sampled write has been missing this long. */
  currentWithinMs: number;
  /** Per-host listRepos sample period; 0: no sampling (and no stall watchdog). */
  sampleIntervalMs: number;
  /** Repos asked for per sample (one listRepos page). */
  sampleRepos: number;
  /** /_readyz fails while coverage is below this (0: never). */
  readyThreshold: number;
}

export interface CoverageDeps {
  store: Pick<MetadataStore, 'listHosts' | 'getAccountByDid'>;
  /** The live subscribers (HostManager.list()). */
  live: () => readonly HostSnapshot[];
  fetcher: SafeFetcher;
  /** Reconnects a stalled host from its cursor (HostManager.reconnect). */
  reconnect: (hostId: number) => Promise<void>;
  /** true while the relay itself holds ingest (e.g. the event log cannot write): no stall is declared. */
  ingestPaused?: () => boolean;
  settings: CoverageSettings;
  now?: () => number;
  log?: Logger;
  registry?: Registry;
  /** Evaluation period (default: a quarter of the shortest of the two periods, 50 ms to 15 s). */
  tickMs?: number;
}

/** One host's coverage, as /_stats shows it. */
export interface HostCoverage {
  hostId: number;
  hostname: string;
  status: string;
  accounts: number;
  connected: boolean;
  current: boolean;
  /** Highest upstream seq seen on the socket, and the cursor (seq below which all is finished). */
  seenSeq: number;
  cursor: number;
  eventsPerSecond: number;
  /** ms since the last event read (null: none since the subscriber started). */
  lastEventAgeMs: number | null;
  /** ms since the host was last seen connected (0 while connected). */
  disconnectedForMs: number;
  /** ms since the last finished sample (null: none yet). */
  sampledAgoMs: number | null;
  /** Sampled repos whose newest write the relay lacks, and for how long the oldest has been missing. */
  missingRepos: number;
  missingForMs: number;
  sampleError?: string;
  stallReconnects: number;
}

export interface CoverageReport {
  /** Share of carried hosts that are current, weighted by accounts (1 when there are none). */
  coverage: number;
  hosts: { carried: number; current: number };
  accounts: { carried: number; current: number };
  currentWithinSeconds: number;
  readyThreshold: number;
  /** Evaluated at (ISO time); null before the first evaluation. */
  at: string | null;
  /** The hosts that are not current, most accounts first (at most 20). */
  behind: HostCoverage[];
}

const MAX_SAMPLES_IN_FLIGHT = 8;
const HOST_PAGE = 1000;
const BEHIND_LISTED = 20;
/** A listRepos entry is ~250 bytes of JSON; allow generous room and a floor. */
const BYTES_PER_REPO = 1024;

interface HostState {
  firstSeenAt: number;
  lastConnectedAt: number | undefined;
  lastEventsSeen: number;
  lastTickAt: number;
  eventsPerSecond: number;
  lastSampleStart: number;
  lastSampleEnd: number | undefined;
  sampling: boolean;
  sampleError: string | undefined;
  /** did → the host's rev we lack and when it was first noticed. */
  missing: Map<string, { rev: string; since: number }>;
  lastStallReconnectAt: number;
  stallReconnects: number;
  view: HostCoverage | undefined;
}

const CARRIED = new Set(['active', 'idle', 'offline']);

export class CoverageMonitor {
  private readonly states = new Map<number, HostState>();
  private readonly settings: CoverageSettings;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly tickMs: number;
  private samplesInFlight = 0;
  private last: CoverageReport;
  private readonly gauge: Gauge | undefined;
  private readonly hostsGauge: Gauge<'state'> | undefined;
  private readonly samples: Counter<'result'> | undefined;
  private readonly stalls: Counter | undefined;

  private readonly task: PeriodicTask;

  constructor(private readonly deps: CoverageDeps) {
    this.settings = deps.settings;
    this.now = deps.now ?? Date.now;
    this.log = (deps.log ?? silentLogger).child({ module: 'coverage' });
    const { currentWithinMs, sampleIntervalMs } = deps.settings;
    const shortest = sampleIntervalMs > 0 ? Math.min(currentWithinMs, sampleIntervalMs) : currentWithinMs;
    this.tickMs = deps.tickMs ?? Math.min(15_000, Math.max(50, Math.floor(shortest / 4)));
    this.task = new PeriodicTask({
      intervalMs: this.tickMs,
      run: () => this.evaluate(),
      onError: (err) => this.log.warn({ err }, 'coverage evaluation failed'),
      runAtStart: true,
    });
    this.last = {
      coverage: 1,
      hosts: { carried: 0, current: 0 },
      accounts: { carried: 0, current: 0 },
      currentWithinSeconds: currentWithinMs / 1000,
      readyThreshold: deps.settings.readyThreshold,
      at: null,
      behind: [],
    };
    const registers = deps.registry ? [deps.registry] : [];
    if (deps.registry) {
      this.gauge = new Gauge({
        name: 'relay_coverage_ratio',
        help: 'Share of carried hosts (active, idle, offline) that are current, weighted by accounts',
        registers,
      });
      this.hostsGauge = new Gauge({
        name: 'relay_coverage_hosts',
        help: 'Carried hosts by coverage state (current or behind)',
        labelNames: ['state'],
        registers,
      });
      this.samples = new Counter({
        name: 'relay_coverage_samples_total',
        help: 'listRepos samples of hosts by result',
        labelNames: ['result'],
        registers,
      });
      this.stalls = new Counter({
        name: 'relay_host_stall_reconnects_total',
        help: 'Connected hosts reconnected because they sent nothing while their sampled writes were missing',
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

  /** The last evaluation (the dashboard's and /_stats' typed getter). */
  report(): CoverageReport {
    return this.last;
  }

  /** For /_readyz: a reason while coverage is below the threshold, else undefined. */
  notReadyReason(): string | undefined {
    const t = this.settings.readyThreshold;
    if (t <= 0 || this.last.at === null || this.last.coverage >= t) return undefined;
    return `coverage ${this.last.coverage.toFixed(3)} below ${t} (${this.last.hosts.current} of ${this.last.hosts.carried} hosts current)`;
  }

  /** One evaluation (overlapping calls share the running one). */
  tick(): Promise<void> {
    return this.task.tick();
  }

  private async evaluate(): Promise<void> {
    const now = this.now();
    const hosts = await this.carriedHosts();
    const live = new Map(this.deps.live().map((s) => [s.hostId, s]));
    const within = this.settings.currentWithinMs;
    const seen = new Set<number>();
    const views: HostCoverage[] = [];
    let accounts = 0;
    let currentAccounts = 0;
    let current = 0;
    for (const host of hosts) {
      seen.add(host.id);
      const sub = live.get(host.id);
      const st = this.stateOf(host.id, now);
      const connected = host.status === 'active' && sub?.connected === true;
      if (connected) st.lastConnectedAt = now;
      const eventsSeen = sub?.eventsSeen ?? 0;
      const dt = now - st.lastTickAt;
      if (dt > 0) {
        const delta = eventsSeen >= st.lastEventsSeen ? eventsSeen - st.lastEventsSeen : eventsSeen;
        st.eventsPerSecond = Number(((delta * 1000) / dt).toFixed(2));
      }
      st.lastEventsSeen = eventsSeen;
      st.lastTickAt = now;
      if (connected && this.settings.sampleIntervalMs > 0) this.maybeSample(host, st, now);
      const missingSince = minSince(st.missing);
      const missingForMs = missingSince === undefined ? 0 : now - missingSince;
      const disconnectedForMs = connected ? 0 : now - (st.lastConnectedAt ?? st.firstSeenAt);
      const lastEventAt = sub?.lastEventAt ?? 0;
      const isCurrent = disconnectedForMs < within && missingForMs < within;
      const weight = Math.max(1, host.accountCount);
      accounts += weight;
      if (isCurrent) {
        current++;
        currentAccounts += weight;
      }
      const view: HostCoverage = {
        hostId: host.id,
        hostname: host.hostname,
        status: host.status,
        accounts: host.accountCount,
        connected,
        current: isCurrent,
        seenSeq: sub?.seenSeq ?? 0,
        cursor: sub?.cursor ?? host.cursor,
        eventsPerSecond: st.eventsPerSecond,
        lastEventAgeMs: lastEventAt > 0 ? now - lastEventAt : null,
        disconnectedForMs,
        sampledAgoMs: st.lastSampleEnd === undefined ? null : now - st.lastSampleEnd,
        missingRepos: st.missing.size,
        missingForMs,
        ...(st.sampleError !== undefined ? { sampleError: st.sampleError } : {}),
        stallReconnects: st.stallReconnects,
      };
      st.view = view;
      views.push(view);
      // The stall watchdog: connected, silent for `within`, and a write it has
      // had for `within` has not reached us.
      // Not while the relay itself holds the host back (its socket paused for
      // a rate limit or back-pressure, frames waiting, ingest paused).
      const quietSince = Math.max(lastEventAt, st.lastStallReconnectAt);
      const heldHere =
        sub === undefined ||
        sub.paused ||
        sub.queued > 0 ||
        sub.inFlight > 0 ||
        this.deps.ingestPaused?.() === true;
      if (connected && !heldHere && missingForMs >= within && now - quietSince >= within) {
        this.reconnectStalled(host, st, now, missingForMs);
      }
    }
    for (const id of this.states.keys()) if (!seen.has(id)) this.states.delete(id);
    const coverage = accounts === 0 ? 1 : Number((currentAccounts / accounts).toFixed(4));
    this.last = {
      coverage,
      hosts: { carried: hosts.length, current },
      accounts: { carried: accounts, current: currentAccounts },
      currentWithinSeconds: within / 1000,
      readyThreshold: this.settings.readyThreshold,
      at: new Date(now).toISOString(),
      behind: views
        .filter((v) => !v.current)
        .sort((a, b) => b.accounts - a.accounts)
        .slice(0, BEHIND_LISTED),
    };
    this.gauge?.set(coverage);
    this.hostsGauge?.labels('current').set(current);
    this.hostsGauge?.labels('behind').set(hosts.length - current);
  }

  private async carriedHosts(): Promise<Host[]> {
    const out: Host[] = [];
    let after: number | undefined;
    for (;;) {
      const page = await this.deps.store.listHosts({ after, limit: HOST_PAGE });
      for (const h of page) if (CARRIED.has(h.status)) out.push(h);
      if (page.length < HOST_PAGE) break;
      after = page[page.length - 1].id;
    }
    return out;
  }

  private stateOf(hostId: number, now: number): HostState {
    let st = this.states.get(hostId);
    if (!st) {
      st = {
        firstSeenAt: now,
        lastConnectedAt: undefined,
        lastEventsSeen: 0,
        lastTickAt: now,
        eventsPerSecond: 0,
        lastSampleStart: 0,
        lastSampleEnd: undefined,
        sampling: false,
        sampleError: undefined,
        missing: new Map(),
        lastStallReconnectAt: 0,
        stallReconnects: 0,
        view: undefined,
      };
      this.states.set(hostId, st);
    }
    return st;
  }

  private reconnectStalled(host: Host, st: HostState, now: number, missingForMs: number): void {
    st.lastStallReconnectAt = now;
    st.stallReconnects++;
    this.stalls?.inc();
    this.log.warn(
      { host: host.hostname, missingRepos: st.missing.size, missingForMs },
      'host stream stalled while the host keeps writing; reconnecting from the cursor',
    );
    this.deps.reconnect(host.id).catch((err: unknown) => {
      this.log.warn({ err, host: host.hostname }, 'stalled host reconnect failed');
    });
  }

  private maybeSample(host: Host, st: HostState, now: number): void {
    if (st.sampling || this.samplesInFlight >= MAX_SAMPLES_IN_FLIGHT || this.task.stopped) return;
    if (now - st.lastSampleStart < this.settings.sampleIntervalMs) return;
    st.sampling = true;
    st.lastSampleStart = now;
    this.samplesInFlight++;
    this.sample(host, st).finally(() => {
      st.sampling = false;
      st.lastSampleEnd = this.now();
      this.samplesInFlight--;
    });
  }

  /** One listRepos page: which of the host's repos are ahead of the heads stored here. */
  private async sample(host: Host, st: HostState): Promise<void> {
    const limit = this.settings.sampleRepos;
    const url = `${httpBase({ hostname: host.hostname, tls: host.tls })}/xrpc/com.atproto.sync.listRepos?limit=${limit}`;
    let repos: unknown;
    try {
      const res = await this.deps.fetcher.getJson(url, {
        timeoutMs: 10_000,
        maxResponseBytes: 16 * 1024 + limit * BYTES_PER_REPO,
      });
      if (res.status !== 200) throw new Error(`listRepos answered ${res.status}`);
      repos = (res.json as { repos?: unknown } | null)?.repos;
      if (!Array.isArray(repos)) throw new Error('listRepos answer has no repos array');
    } catch (err) {
      st.sampleError = (err as Error).message.slice(0, 200);
      this.samples?.labels('error').inc();
      return;
    }
    st.sampleError = undefined;
    const noticedAt = this.now();
    const missing = new Map<string, { rev: string; since: number }>();
    for (const r of repos.slice(0, limit) as unknown[]) {
      if (!r || typeof r !== 'object') continue;
      const { did, rev, active } = r as { did?: unknown; rev?: unknown; active?: unknown };
      if (typeof did !== 'string' || typeof rev !== 'string' || active === false) continue;
      if (did.length > 2048 || rev.length > 64) continue;
      const account = await this.deps.store.getAccountByDid(did);
      // Only accounts this relay carries from this host: unknown, moved,
      // throttled or taken-down accounts are not the stream's to deliver.
      if (!account || account.hostId !== host.id || account.status !== 'active') continue;
      const ours = account.head?.rev ?? '';
      if (rev <= ours) continue;
      const before = st.missing.get(did);
      // still lacking the write noticed earlier: it keeps its first-noticed time
      missing.set(did, before && ours < before.rev ? before : { rev, since: noticedAt });
    }
    st.missing = missing;
    this.samples?.labels('ok').inc();
  }
}

function minSince(missing: Map<string, { since: number }>): number | undefined {
  let min: number | undefined;
  for (const m of missing.values()) if (min === undefined || m.since < min) min = m.since;
  return min;
}
