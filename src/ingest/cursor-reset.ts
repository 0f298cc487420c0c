// Operator cursor resets (admin resetCursor), for the host manager: a host is
// read again from a cursor the operator gives, e.g. a PDS that reset its
// sequence (it answered FutureCursor), or an upstream event too large to ever
// read (reset to its seq to skip it).
//
// A reset replaces the host's subscriber, and the order is the argument: the
// old subscriber is stopped and awaited (socket closed, every in-flight frame
// settled, so each cursor advance it will ever make has reached the store's
// coalescer), any status write its hooks started is awaited, and only then is
// the cursor written (store.resetHostCursor drops the coalesced value) and a
// fresh subscriber dialled from it. No old frame can move the cursor back up
// afterwards. Resets of one host run one after the other; while one runs, the
// manager leaves the host alone (`has`: revive and adopt do not dial, so a
// concurrent requestCrawl, reconnect or unblock cannot dial from the old
// cursor; a block waits for it), and the reset itself resubscribes at the end.
// If the store fails midway, the host is put back on whatever cursor the
// store holds.
//
// Bound: at most one entry per host with a reset in progress.
import type { Logger } from '../log.ts';
import type { Host, HostStatus, MetadataStore } from '../store/metadata-store.ts';
import { CrawlRefusedError } from './host-policy.ts';
import { recordCursorReset } from './log-recovery.ts';

/** What a reset needs of the host manager. */
export interface CursorResetHost {
  store: MetadataStore;
  log: Logger;
  /** The event log's head now (what the reset is recorded against, log-recovery.ts). */
  logHead(): number;
  /** The host's subscriber now, if any. */
  subscriber(hostId: number): { stop(): Promise<void> } | undefined;
  /** Forgets `sub` as the host's subscriber, unless another replaced it meanwhile. */
  dropSubscriber(hostId: number, sub: unknown): void;
  /** Settles once every status write the host's subscriber hooks started has (undefined: none). */
  writesOf(hostId: number): Promise<unknown> | undefined;
  /** Forgets the relayed seqs recovered at start for the host (they were for its old seqs). */
  forgetRecovered(hostId: number): void;
  /** Dials a subscriber for the host if it is active and ingest is running. */
  resubscribe(host: Host): void;
  isStopping(): boolean;
}

function noop(): void {}

export class CursorResets {
  private readonly running = new Map<number, Promise<Host>>();

  constructor(private readonly m: CursorResetHost) {}

  /** A reset of the host is in progress (the manager must not dial it). */
  has(hostId: number): boolean {
    return this.running.has(hostId);
  }

  /** Settles once the host's reset in progress (if any) has. */
  settled(hostId: number): Promise<void> {
    return this.running.get(hostId)?.then(noop, noop) ?? Promise.resolve();
  }

  /** Settles once every reset in progress has. */
  async allSettled(): Promise<void> {
    await Promise.allSettled([...this.running.values()]);
  }

  /**
   * Reads the host again from `cursor` (null or 0: no cursor, i.e. live from
   * now). An idle or offline host becomes active; failures are cleared; an
   * active host is resubscribed from the new cursor. Resolves to the host as
   * stored after the reset. Throws CrawlRefusedError: 400 bad cursor, 404
   * unknown host, 409 blocked or banned host, 503 while stopping.
   */
  reset(hostId: number, cursor: number | null): Promise<Host> {
    if (cursor !== null && (!Number.isSafeInteger(cursor) || cursor < 0)) {
      return Promise.reject(
        new CrawlRefusedError(
          400,
          'InvalidRequest',
          `cursor must be a non-negative integer or null, got ${String(cursor)}`,
        ),
      );
    }
    if (this.m.isStopping()) {
      return Promise.reject(new CrawlRefusedError(503, 'Unavailable', 'relay is stopping'));
    }
    const before = this.running.get(hostId);
    const run = (before ? before.then(noop, noop) : Promise.resolve()).then(() =>
      this.run(hostId, cursor ?? 0),
    );
    this.running.set(hostId, run);
    const done = () => {
      if (this.running.get(hostId) === run) this.running.delete(hostId);
    };
    run.then(done, done);
    return run;
  }

  private async run(hostId: number, seq: number): Promise<Host> {
    const { store } = this.m;
    const host = await store.getHost(hostId);
    if (!host) throw new CrawlRefusedError(404, 'HostNotFound', `unknown host ${hostId}`);
    if (host.status === 'blocked' || host.status === 'banned') {
      throw new CrawlRefusedError(
        409,
        'HostBlocked',
        `host ${host.hostname} is ${host.status}; unblock it before resetting its cursor`,
      );
    }
    const old = this.m.subscriber(hostId);
    // stop() resolves once the socket is closed and every in-flight frame has
    // settled: each cursor advance the old subscriber will make is made by now.
    if (old) await old.stop();
    let now: Host | undefined;
    let was: HostStatus;
    this.m.forgetRecovered(hostId);
    try {
      await this.m.writesOf(hostId);
      // Events this host sent before the reset must not count as "already
      // relayed" for what it sends after it (a PDS that reset its seqs reuses them).
      await recordCursorReset(store, hostId, this.m.logHead());
      await store.resetHostCursor(hostId, seq);
      await store.resetHostFailures(hostId);
      now = await store.getHost(hostId);
      if (!now) throw new CrawlRefusedError(404, 'HostNotFound', `unknown host ${hostId}`);
      was = now.status;
      if (was === 'idle' || was === 'offline') now = (await store.setHostStatus(hostId, 'active')) ?? now;
    } catch (err) {
      // The store failed: put the host back on whatever cursor the store holds.
      this.m.dropSubscriber(hostId, old);
      const current = await store.getHost(hostId).catch(() => undefined);
      if (current) this.m.resubscribe(current);
      throw err;
    }
    now.cursor = seq;
    now.failures = 0;
    // blockHost may have run meanwhile: it removed (and stopped) the subscriber itself.
    this.m.dropSubscriber(hostId, old);
    this.m.resubscribe(now);
    this.m.log.info(
      { host: now.hostname, from: host.cursor, cursor: seq, was, status: now.status },
      'host cursor reset',
    );
    return now;
  }
}
