// A whole simulated atproto network in one process: a PLC directory, N PDS
// hosts, accounts spread across them, and an event generator.
//
// The generator runs in two modes. Deterministic: `step(n)` emits exactly n
// events chosen by a seeded PRNG, for tests. Timed: `startGenerator(rate)`
// emits at a steady total rate, spread round-robin over the hosts, from a
// timer that ticks every few milliseconds and sends each tick's quota in one
// batch. Making a commit (MST update, signing, CAR) costs far more than
// sending it, so the generator works ahead: events are made into per-host
// queues (`pregenerate(n)` up front, then refilled in whatever time each tick
// leaves over) and sending is just sequencing plus a socket write. That is
// what lets one process push tens of thousands of events per second.

import { formatMultikey } from '../src/protocol/keys.ts';
import type { FaultKind } from './faults.ts';
import { type EmittedEvent, SimPds } from './pds.ts';
import { SimPlc } from './plc.ts';
import { Prng } from './prng.ts';
import { profileRecord } from './records.ts';

export interface SimNetworkOptions {
  hosts?: number;
  /** accounts created on each host (default 10) */
  accountsPerHost?: number;
  /** total accounts spread evenly over the hosts (overrides accountsPerHost) */
  accounts?: number;
  seed?: number | string;
  /** events kept per host for cursor replay (default 10,000) */
  historySize?: number;
  /** events/s over all hosts; when set, the generator starts right away */
  rate?: number;
  /** events to make ahead of time before the generator starts */
  pregenerate?: number;
  /** fraction of generated events that are handle changes (#identity), default 0.002 */
  identityShare?: number;
  /** fraction of generated events that deactivate an account (#account; reactivated when next picked), default 0.001 */
  accountShare?: number;
  /** fraction of generated events that are #sync of the account's current commit, default 0.0005 */
  syncShare?: number;
  /** use this PLC directory instead of starting one (it is then not stopped by stop()) */
  plc?: SimPlc;
  /** first host number, for names (`pds<n>`) and seeds, when several networks share a PLC */
  hostOffset?: number;
  /** per-event probability of each fault, on every host */
  faultRates?: Partial<Record<FaultKind, number>>;
}

export interface GeneratorStats {
  emitted: number;
  queued: number;
  /** events/s over the generator's lifetime */
  rate: number;
  /** ticks where the queues ran dry and events were made inline */
  starvedTicks: number;
  /** seconds from the start to the last tick: the time the emitted count accounts for */
  tickedSeconds: number;
}

const TICK_MS = 5;

export class SimNetwork {
  readonly plc: SimPlc;
  readonly hosts: SimPds[] = [];
  private readonly prng: Prng;
  private readonly hostDids: string[][] = [];
  private readonly hostIndex = new Map<string, number>();
  private ownsPlc = true;
  private readonly identityShare: number;
  private readonly accountShare: number;
  private readonly syncShare: number;
  private timer: NodeJS.Timeout | null = null;
  private rr = 0;
  private genStart = 0;
  private genEmitted = 0;
  private starvedTicks = 0;
  private carry = 0;
  private lastTick = 0;
  private rate = 0;
  private renames = 0;

  private constructor(plc: SimPlc, opts: SimNetworkOptions) {
    this.plc = plc;
    this.prng = new Prng(`net:${opts.seed ?? 1}`);
    this.identityShare = opts.identityShare ?? 0.002;
    this.accountShare = opts.accountShare ?? 0.001;
    this.syncShare = opts.syncShare ?? 0.0005;
  }

  static async start(opts: SimNetworkOptions = {}): Promise<SimNetwork> {
    const seed = opts.seed ?? 1;
    const plc = opts.plc ?? (await SimPlc.start(seed));
    const net = new SimNetwork(plc, opts);
    net.ownsPlc = !opts.plc;
    const offset = opts.hostOffset ?? 0;
    const nHosts = opts.hosts ?? 1;
    try {
      for (let i = 0; i < nHosts; i++) {
        const host = await SimPds.start({
          plc,
          name: `pds${offset + i}`,
          historySize: opts.historySize,
          seed: `${seed}:${offset + i}`,
        });
        if (opts.faultRates) host.faults.setRates(opts.faultRates);
        net.hosts.push(host);
        net.hostDids.push([]);
      }
      const total = opts.accounts ?? (opts.accountsPerHost ?? 10) * nHosts;
      for (let i = 0; i < total; i++) net.createAccount(i % nHosts);
      if (opts.pregenerate) net.pregenerate(opts.pregenerate);
      if (opts.rate) net.startGenerator(opts.rate);
    } catch (err) {
      await net.stop();
      throw err;
    }
    return net;
  }

  get accountCount(): number {
    let n = 0;
    for (const d of this.hostDids) n += d.length;
    return n;
  }

  /** Every account DID with the index of the host that holds it now. */
  get accounts(): { did: string; host: number }[] {
    return this.hostDids.flatMap((dids, host) => dids.map((did) => ({ did, host })));
  }

  hostOf(did: string): SimPds {
    const i = this.hostIndex.get(did);
    if (i === undefined) throw new Error(`unknown account ${did}`);
    return this.hosts[i];
  }

  createAccount(hostIndex: number, opts: { handle?: string } = {}): string {
    const a = this.hosts[hostIndex].createAccount(opts);
    this.hostDids[hostIndex].push(a.did);
    this.hostIndex.set(a.did, hostIndex);
    return a.did;
  }

  // --- generating ----------------------------------------------------------

  /** Makes one event for a random account of the host and queues it. */
  private prepareOne(h: number): boolean {
    const host = this.hosts[h];
    const dids = this.hostDids[h];
    if (dids.length === 0) return false;
    // accounts a test took down, suspended or deleted are left alone
    for (let attempt = 0; attempt < 8; attempt++) {
      const did = dids[this.prng.int(dids.length)];
      const a = host.account(did);
      if (a.status === 'deactivated') {
        host.queueStatus(did, 'active');
        return true;
      }
      if (a.status !== 'active') continue;
      const r = this.prng.next();
      if (r < this.identityShare) {
        host.queueHandleChange(did, renamedHandle(a.handle, this.renames++));
      } else if (r < this.identityShare + this.accountShare) {
        host.queueStatus(did, 'deactivated');
      } else if (r < this.identityShare + this.accountShare + this.syncShare) {
        host.queueSync(did);
      } else {
        host.queueRandomWrite(did);
      }
      return true;
    }
    return false;
  }

  /** Makes `n` events ahead of time, spread round-robin over the hosts. */
  pregenerate(n: number): void {
    for (let i = 0; i < n; i++) this.prepareOne(i % this.hosts.length);
  }

  /** pregenerate() in chunks that yield to the event loop, so servers stay responsive during a long fill. */
  async pregenerateAsync(n: number, chunk = 1000): Promise<void> {
    for (let done = 0; done < n; done += chunk) {
      const k = Math.min(chunk, n - done);
      for (let i = 0; i < k; i++) this.prepareOne((done + i) % this.hosts.length);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  get queued(): number {
    let n = 0;
    for (const h of this.hosts) n += h.queued;
    return n;
  }

  /** Emits exactly `n` events (queued ones first), choosing hosts and accounts with the seeded PRNG. */
  step(n: number): EmittedEvent[] {
    const out: EmittedEvent[] = [];
    let idle = 0;
    while (out.length < n) {
      const h = this.prng.int(this.hosts.length);
      const host = this.hosts[h];
      if (host.queued === 0 && !this.prepareOne(h)) {
        if (++idle > 64 * this.hosts.length) throw new Error('no account can make an event');
        continue;
      }
      idle = 0;
      host.emitQueued(1, out);
    }
    return out;
  }

  /** Emits up to `n` queued events round-robin over the hosts; returns how many were sent. */
  private emitQueuedRoundRobin(n: number): number {
    const H = this.hosts.length;
    let sent = 0;
    let dry = 0;
    while (sent < n && dry < H) {
      const host = this.hosts[this.rr++ % H];
      if (host.queued === 0) {
        dry++;
        continue;
      }
      dry = 0;
      sent += host.emitQueued(1);
    }
    return sent;
  }

  /**
   * Starts (or re-rates) the timed generator: `rate` events/s in total. Each
   * tick sends its quota from the queues; if they run dry it makes events
   * inline only within the tick's time budget (the shortfall is counted in
   * `starvedTicks` and not carried over), then spends any time left making
   * events ahead, up to `aheadSeconds` worth of queue.
   */
  startGenerator(rate: number, opts: { aheadSeconds?: number } = {}): void {
    this.rate = rate;
    const ahead = Math.floor(rate * (opts.aheadSeconds ?? 1));
    if (this.timer) return;
    this.genStart = performance.now();
    this.lastTick = this.genStart;
    this.genEmitted = 0;
    this.carry = 0;
    const H = this.hosts.length;
    const tick = () => {
      const now = performance.now();
      this.carry += ((now - this.lastTick) / 1000) * this.rate;
      this.lastTick = now;
      const n = Math.floor(this.carry);
      this.carry -= n;
      let sent = this.emitQueuedRoundRobin(n);
      const deadline = now + TICK_MS * 0.8;
      if (sent < n) {
        this.starvedTicks++;
        while (sent < n && performance.now() < deadline) {
          const h = this.rr++ % H;
          this.prepareOne(h);
          sent += this.hosts[h].emitQueued(1);
        }
        this.carry = 0;
      }
      this.genEmitted += sent;
      let h = this.rr;
      while (this.queued < ahead && performance.now() < deadline) {
        for (let i = 0; i < 8; i++) this.prepareOne(h++ % H);
      }
    };
    this.timer = setInterval(tick, TICK_MS);
  }

  stopGenerator(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  generatorStats(): GeneratorStats {
    const secs = (performance.now() - this.genStart) / 1000;
    return {
      emitted: this.genEmitted,
      queued: this.queued,
      rate: secs > 0 ? this.genEmitted / secs : 0,
      starvedTicks: this.starvedTicks,
      tickedSeconds: (this.lastTick - this.genStart) / 1000,
    };
  }

  /** Events emitted per type over all hosts. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const h of this.hosts) for (const [t, n] of Object.entries(h.counts)) out[t] = (out[t] ?? 0) + n;
    return out;
  }

  // --- migration -----------------------------------------------------------

  /**
   * Moves an account to another host, the way a real migration looks on the
   * firehose: the DID document names the new host (and, by default, a new
   * signing key); the new host emits #identity, #account (active) and #sync
   * pointing at a fresh commit signed with the new key; the old host then
   * emits #account deactivated (and #account deleted with `deleteOld`).
   */
  migrate(
    did: string,
    toIndex: number,
    opts: { rotateKey?: boolean; deleteOld?: boolean } = {},
  ): EmittedEvent[] {
    const fromIndex = this.hostIndex.get(did);
    if (fromIndex === undefined) throw new Error(`unknown account ${did}`);
    if (fromIndex === toIndex) throw new Error('account already on that host');
    const from = this.hosts[fromIndex];
    const to = this.hosts[toIndex];
    from.emitQueued();
    to.emitQueued();
    const a = from.account(did);
    const signer = opts.rotateKey === false ? a.signer : to.newKeypair();
    to.adoptAccount({ did, handle: a.handle, signer, repo: a.repo, index: a.index });
    this.plc.update(did, { pds: to.url, signingKey: formatMultikey(signer.publicKey) });
    const action = a.index.has('app.bsky.actor.profile/self') ? 'update' : 'create';
    to.applyUnannounced(did, [
      {
        action,
        collection: 'app.bsky.actor.profile',
        rkey: 'self',
        record: profileRecord(to.prng, a.handle),
      },
    ]);
    const events = to.activate(did);
    events.push(from.deactivate(did));
    if (opts.deleteOld) events.push(from.deleteAccount(did));
    this.hostDids[fromIndex] = this.hostDids[fromIndex].filter((d) => d !== did);
    this.hostDids[toIndex].push(did);
    this.hostIndex.set(did, toIndex);
    return events;
  }

  async stop(): Promise<void> {
    this.stopGenerator();
    await Promise.all(this.hosts.map((h) => h.stop()));
    if (this.ownsPlc) await this.plc.stop();
  }
}

/** `u3.pds0.test` → `u3-r7.pds0.test`: a new handle that keeps the first label short. */
function renamedHandle(handle: string, n: number): string {
  const dot = handle.indexOf('.');
  const base = handle.slice(0, dot).replace(/-r\d+$/, '');
  return `${base.slice(0, 40)}-r${n}${handle.slice(dot)}`;
}
