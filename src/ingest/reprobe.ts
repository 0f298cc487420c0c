// Re-probe: offline and idle hosts come back by themselves (issue 18).
//
// A host goes offline after `hostMaxFailures` consecutive failed connections,
// and idle when it answered FutureCursor; before this, nothing but an admin
// action (or the host's own requestCrawl) ever dialled it again, so one outage
// silenced a PDS for good. Here every offline or idle host is probed on a
// back-off schedule: the first probe `baseMs` after it is first seen so, each
// failed probe doubling the delay up to `maxMs` (a day by default), each delay
// jittered to between half and all of it so hosts that failed together do not
// probe together. A probe is describeServer (SSRF-guarded, bounded answer);
// when the host answers, `revive` (HostManager.reconnect) makes it active and
// subscribes from its stored cursor, so its backlog is read. If the
// subscription fails again the host goes back to offline through the usual
// failure count and the schedule goes on from where it was; an idle host
// whose cursor is still in its future answers FutureCursor and is idle again.
// Every probe is counted by result and every revival logged.
//
// Bounds: one schedule entry per offline/idle host of the store (dropped once
// the host has stayed out of those states as long as its next delay); at
// most MAX_PROBES_IN_FLIGHT probes at once; the store is listed once per tick.

import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../log.ts';
import { silentLogger } from '../log.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Host, HostStatus, MetadataStore } from '../store/metadata-store.ts';
import { checkDescribeServer } from './host-checks.ts';
import { PeriodicTask } from './periodic-task.ts';

export interface ReprobeSettings {
  /** First delay; doubles per failed probe. */
  baseMs: number;
  /** Longest delay; 0 turns re-probing off. */
  maxMs: number;
  /** describeServer timeout (default 10 s). */
  describeTimeoutMs?: number;
}

export interface ReprobeDeps {
  store: Pick<MetadataStore, 'listHosts'>;
  fetcher: SafeFetcher;
  /** Makes the host active again and subscribes from its stored cursor. */
  revive: (hostId: number) => Promise<void>;
  settings: ReprobeSettings;
  now?: () => number;
  random?: () => number;
  log?: Logger;
  registry?: Registry;
  /** How often the schedule is looked at (default: a quarter of baseMs, 50 ms to 30 s). */
  tickMs?: number;
}

/** One host's place in the schedule (what /_stats and tests read). */
export interface ReprobeEntry {
  hostId: number;
  hostname: string;
  status: HostStatus;
  /** Failed probes so far (the next delay is base × 2^attempts, capped). */
  attempts: number;
  nextAt: number;
  lastResult?: 'unreachable' | 'revived' | 'revive-failed';
}

const MAX_PROBES_IN_FLIGHT = 4;
const HOST_PAGE = 1000;
const PROBED: readonly HostStatus[] = ['offline', 'idle'];

export class HostReprober {
  private readonly entries = new Map<number, ReprobeEntry & { lastListedAt: number; probing: boolean }>();
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly log: Logger;
  private readonly tickMs: number;
  private inFlight = 0;
  private readonly probing = new Set<Promise<void>>();
  private readonly probes: Counter<'result'> | undefined;

  private readonly task: PeriodicTask;

  constructor(private readonly deps: ReprobeDeps) {
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.log = (deps.log ?? silentLogger).child({ module: 'reprobe' });
    this.tickMs = deps.tickMs ?? Math.min(30_000, Math.max(50, Math.floor(deps.settings.baseMs / 4)));
    this.task = new PeriodicTask({
      intervalMs: this.tickMs,
      run: () => this.run(),
      onError: (err) => this.log.warn({ err }, 're-probe round failed'),
    });
    if (deps.registry) {
      this.probes = new Counter({
        name: 'relay_host_reprobes_total',
        help: 'Re-probes of offline and idle hosts by result (unreachable, revived, revive-failed)',
        labelNames: ['result'],
        registers: [deps.registry],
      });
    }
  }

  get enabled(): boolean {
    return this.deps.settings.maxMs > 0;
  }

  start(): void {
    if (!this.enabled) return;
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task.stop();
    await Promise.allSettled([...this.probing]);
  }

  /** The schedule, soonest first. */
  schedule(): ReprobeEntry[] {
    return [...this.entries.values()]
      .map(({ hostId, hostname, status, attempts, nextAt, lastResult }) => ({
        hostId,
        hostname,
        status,
        attempts,
        nextAt,
        ...(lastResult ? { lastResult } : {}),
      }))
      .sort((a, b) => a.nextAt - b.nextAt);
  }

  /** One look at the schedule (overlapping calls share the running one). */
  tick(): Promise<void> {
    return this.task.tick();
  }

  /** Delay before probe number `attempts + 1`: base × 2^attempts capped at max, jittered to [half, all]. */
  delay(attempts: number): number {
    const { baseMs, maxMs } = this.deps.settings;
    const exp = Math.min(maxMs, baseMs * 2 ** Math.min(attempts, 40));
    return Math.round(exp / 2 + (this.random() * exp) / 2);
  }

  private async run(): Promise<void> {
    const now = this.now();
    for (const status of PROBED) {
      let after: number | undefined;
      for (;;) {
        const page = await this.deps.store.listHosts({ status, after, limit: HOST_PAGE });
        for (const host of page) this.consider(host, now);
        if (page.length < HOST_PAGE) break;
        after = page[page.length - 1].id;
      }
    }
    // A host that has stayed out of offline/idle as long as its next delay has recovered.
    for (const [id, e] of this.entries) {
      if (e.lastListedAt < now && !e.probing && now - e.lastListedAt >= this.delay(e.attempts)) {
        this.entries.delete(id);
      }
    }
  }

  private consider(host: Host, now: number): void {
    let e = this.entries.get(host.id);
    if (!e) {
      e = {
        hostId: host.id,
        hostname: host.hostname,
        status: host.status,
        attempts: 0,
        nextAt: now + this.delay(0),
        lastListedAt: now,
        probing: false,
      };
      this.entries.set(host.id, e);
      this.log.info(
        { host: host.hostname, status: host.status, inMs: e.nextAt - now },
        'host re-probe scheduled',
      );
      return;
    }
    e.status = host.status;
    e.lastListedAt = now;
    if (e.probing || now < e.nextAt || this.inFlight >= MAX_PROBES_IN_FLIGHT || this.task.stopped) return;
    const entry = e;
    entry.probing = true;
    this.inFlight++;
    const p = this.probe(host, entry).finally(() => {
      entry.probing = false;
      this.inFlight--;
      this.probing.delete(p);
    });
    this.probing.add(p);
  }

  private async probe(host: Host, e: ReprobeEntry): Promise<void> {
    try {
      await checkDescribeServer(
        this.deps.fetcher,
        { hostname: host.hostname, tls: host.tls },
        this.deps.settings.describeTimeoutMs ?? 10_000,
      );
    } catch (err) {
      e.attempts++;
      e.nextAt = this.now() + this.delay(e.attempts);
      e.lastResult = 'unreachable';
      this.probes?.labels('unreachable').inc();
      this.log.debug(
        { host: host.hostname, attempts: e.attempts, err: (err as Error).message },
        'host still unreachable',
      );
      return;
    }
    // Counted as an attempt too: if the subscription fails again, the next probe waits longer.
    e.attempts++;
    e.nextAt = this.now() + this.delay(e.attempts);
    try {
      await this.deps.revive(host.id);
      e.lastResult = 'revived';
      this.probes?.labels('revived').inc();
      this.log.info(
        { host: host.hostname, was: host.status, cursor: host.cursor },
        'host answers again; resubscribed from its cursor',
      );
    } catch (err) {
      e.lastResult = 'revive-failed';
      this.probes?.labels('revive-failed').inc();
      this.log.warn({ err, host: host.hostname }, 'host answered but could not be resubscribed');
    }
  }
}
