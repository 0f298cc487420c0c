// Host leases for several ingest processes (issue 17, docs/scale-out.md):
// each upstream host is read by one process at a time, so each repo's events
// enter the shared log in order from one writer.
//
// Mechanism: a JetStream KV bucket (`<stream>-leases`) whose entries expire
// after the lease time (the bucket's TTL). Keys:
//   h.<hostId>  → owner id   a host's lease; taken with an atomic create
//                            (fails if someone holds it), renewed with a
//                            compare-and-set update on the revision we wrote
//   m.<owner>   → ""         this process is alive (re-put every renewal)
// Every lease/3 a timer renews what it holds (a failed renewal means the
// lease is gone: stop reading that host at once); on another timer, if it
// holds fewer than its share (ceil(active hosts / live members)), it tries
// to take unowned hosts. Releases never block a renewal. A process that dies stops renewing; after the lease time its keys
// expire and the others take its hosts, resuming from the stored cursors.
// The overlap (frames the dead process relayed above its last stored cursor,
// or a paused process still publishing a moment after losing a lease) is
// stored once by the event log's message-id dedupe, whose window must exceed
// the lease time (checked in config.ts).
// A clean stop deletes its keys, so its hosts move at the others' next round.
import { randomBytes } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../log.ts';
import type { Host } from '../store/metadata-store.ts';
import type { HostLeaseGate } from './host-manager.ts';

export interface HostLeaseOptions {
  url: string;
  /** Bucket name (letters, digits, - and _). */
  bucket: string;
  /** A lease not renewed for this long expires. */
  ttlMs: number;
  replicas?: number;
  /** Stable id of this process in the bucket (default: random). */
  owner?: string;
  logger?: Logger;
  registry?: Registry;
}

/** What the balancer needs from the host manager and the store. */
export interface LeaseTargets {
  listActiveHosts(): Promise<Host[]>;
  adopt(host: Host): void;
  release(hostId: number): Promise<void>;
}

export class HostLeases implements HostLeaseGate {
  readonly owner: string;
  private readonly held = new Map<number, number>(); // hostId → revision we wrote
  private memberRevision = 0;
  private timer?: NodeJS.Timeout;
  private balanceTimer?: NodeJS.Timeout;
  private round?: Promise<void>;
  private renewing?: Promise<void>;
  private closed = false;
  private readonly log: Logger;
  private readonly moves?: Counter<'event'>;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly kv: KV,
    private readonly opts: HostLeaseOptions,
  ) {
    this.owner = opts.owner ?? randomBytes(6).toString('hex');
    this.log = (opts.logger ?? silentLogger).child({ module: 'host-leases', owner: this.owner });
    if (opts.registry) {
      this.moves = new Counter({
        name: 'relay_host_lease_changes_total',
        help: 'Host leases acquired, lost (renewal failed) and released by this ingest process',
        labelNames: ['event'],
        registers: [opts.registry],
      });
      const self = this;
      new Gauge({
        name: 'relay_host_leases_held',
        help: 'Upstream hosts this ingest process holds the lease of (and reads)',
        registers: [opts.registry],
        collect() {
          this.set(self.held.size);
        },
      });
    }
  }

  static async open(opts: HostLeaseOptions): Promise<HostLeases> {
    const nc = await connect({ servers: opts.url.split(',').map((s) => s.trim()), name: `atrelay-leases` });
    try {
      const kv = await new Kvm(jetstream(nc)).create(opts.bucket, {
        history: 1,
        ttl: opts.ttlMs,
        replicas: opts.replicas ?? 1,
      });
      const leases = new HostLeases(nc, kv, opts);
      await leases.heartbeat();
      return leases;
    } catch (err) {
      await nc.close().catch(() => {});
      throw err;
    }
  }

  isHeld(hostId: number): boolean {
    return this.held.has(hostId);
  }

  heldHostIds(): number[] {
    return [...this.held.keys()];
  }

  /** Takes the lease if nobody holds it. */
  async tryAcquire(hostId: number): Promise<boolean> {
    if (this.held.has(hostId)) return true;
    try {
      const rev = await this.kv.create(`h.${hostId}`, this.owner);
      this.held.set(hostId, rev);
      this.moves?.inc({ event: 'acquired' });
      return true;
    } catch {
      return false; // held by another process (or the bucket is unreachable)
    }
  }

  /** Renews every lease held (in parallel); returns the hosts whose lease was lost. */
  async renew(): Promise<number[]> {
    await this.heartbeat();
    const lost: number[] = [];
    await Promise.all(
      [...this.held].map(async ([hostId, rev]) => {
        try {
          const next = await this.kv.update(`h.${hostId}`, this.owner, rev);
          if (this.held.get(hostId) === rev) this.held.set(hostId, next);
        } catch (err) {
          this.held.delete(hostId);
          this.moves?.inc({ event: 'lost' });
          this.log.warn({ err, hostId }, 'host lease lost; stopping that host');
          lost.push(hostId);
        }
      }),
    );
    return lost;
  }

  /** Live ingest processes (their member keys have not expired). */
  async members(): Promise<number> {
    let n = 0;
    for await (const _ of await this.kv.keys('m.*')) n++;
    return Math.max(n, 1);
  }

  private async heartbeat(): Promise<void> {
    this.memberRevision = await this.kv.put(`m.${this.owner}`, '');
  }

  /**
   * Renews every ttl/3 and balances every ttl/3 until close(), on separate
   * timers: a slow balancing round (a host release waits for its in-flight
   * frames) never delays a renewal past the lease time.
   */
  start(targets: LeaseTargets): void {
    const every = Math.max(200, Math.floor(this.opts.ttlMs / 3));
    const renewTick = () => {
      if (this.closed || this.renewing) return;
      this.renewing = this.renew()
        .then((lost) => {
          for (const id of lost) this.releaseLater(id, targets);
        })
        .catch((err) => this.log.warn({ err }, 'host lease renewal failed'))
        .finally(() => {
          this.renewing = undefined;
        });
    };
    const balanceTick = () => {
      if (this.closed || this.round) return;
      this.round = this.acquire(targets)
        .catch((err) => this.log.warn({ err }, 'host lease round failed'))
        .finally(() => {
          this.round = undefined;
        });
    };
    balanceTick();
    this.timer = setInterval(renewTick, every);
    this.timer.unref();
    this.balanceTimer = setInterval(balanceTick, every);
    this.balanceTimer.unref();
  }

  private releaseLater(hostId: number, targets: LeaseTargets): void {
    targets.release(hostId).catch((err) => this.log.warn({ err, hostId }, 'host release failed'));
  }

  /** One round by hand (tests): renew, drop what was lost, take unowned hosts up to this process's share. */
  async balance(targets: LeaseTargets): Promise<void> {
    for (const hostId of await this.renew()) await targets.release(hostId);
    await this.acquire(targets);
  }

  /** Gives up leases of hosts no longer active; takes unowned hosts up to this process's share. */
  private async acquire(targets: LeaseTargets): Promise<void> {
    const hosts = await targets.listActiveHosts();
    const share = Math.ceil(hosts.length / (await this.members()));
    const active = new Set(hosts.map((h) => h.id));
    for (const hostId of [...this.held.keys()]) {
      if (!active.has(hostId)) await this.giveUp(hostId, targets); // blocked, offline, deleted
    }
    for (const h of hosts) {
      if (this.closed || this.held.size >= share) break;
      if (this.held.has(h.id)) continue;
      if (await this.tryAcquire(h.id)) targets.adopt(h);
    }
  }

  private async giveUp(hostId: number, targets: LeaseTargets): Promise<void> {
    this.releaseLater(hostId, targets);
    const rev = this.held.get(hostId);
    this.held.delete(hostId);
    this.moves?.inc({ event: 'released' });
    if (rev !== undefined) await this.kv.delete(`h.${hostId}`, { previousSeq: rev }).catch(() => {});
  }

  /** Stops renewing; with `releaseAll` (a clean stop, after ingest stopped) deletes our keys so the hosts move at once. */
  async close(releaseAll = true): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.balanceTimer) clearInterval(this.balanceTimer);
    await Promise.all([this.round, this.renewing]);
    if (releaseAll) {
      for (const [hostId, rev] of this.held) {
        await this.kv.delete(`h.${hostId}`, { previousSeq: rev }).catch(() => {});
      }
      await this.kv.delete(`m.${this.owner}`, { previousSeq: this.memberRevision }).catch(() => {});
    }
    this.held.clear();
    await this.nc.close().catch(() => {});
  }
}
