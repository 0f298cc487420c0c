// A simulated network whose hosts run in several worker threads of one
// process, for load generation beyond one core: each worker (host-worker.ts)
// runs its share of the hosts with its own generator, and this side holds
// the PLC directory (applying the workers' document changes as they arrive),
// splits the total rate and pre-generation over the workers by host count,
// and sums their stats. Hosts in workers are only reachable over the network
// (URLs, subscribeRepos, XRPC); tests that drive hosts directly use
// SimNetwork, which keeps everything in one thread.
import { Worker } from 'node:worker_threads';
import { siblingModuleUrl } from '../src/module-url.ts';
import type { PlcChange, ToWorker, WorkerInit, WorkerStats } from './host-worker.ts';
import type { SimNetworkOptions } from './network.ts';
import { SimPlc } from './plc.ts';

export interface RemoteHost {
  name: string;
  url: string;
  hostname: string;
  wsUrl: string;
  accounts: number;
}

type FromWorker =
  | { type: 'plc'; change: PlcChange }
  | { type: 'ready'; hosts: RemoteHost[] }
  | { type: 'reply'; id: number; result: unknown };

type RequestBody =
  | { type: 'pregenerate'; n: number }
  | { type: 'start'; rate: number; aheadSeconds?: number }
  | { type: 'stopGenerator' }
  | { type: 'stats' }
  | { type: 'shutdown' };

class WorkerHandle {
  readonly hosts: RemoteHost[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, (v: unknown) => void>();
  readonly ready: Promise<void>;

  constructor(
    readonly worker: Worker,
    plc: SimPlc,
  ) {
    this.ready = new Promise((resolve, reject) => {
      worker.on('error', reject);
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'plc') applyPlcChange(plc, msg.change);
        else if (msg.type === 'ready') {
          this.hosts.push(...msg.hosts);
          resolve();
        } else if (msg.type === 'reply') {
          this.pending.get(msg.id)?.(msg.result);
          this.pending.delete(msg.id);
        }
      });
    });
  }

  request<T = unknown>(body: RequestBody): Promise<T> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve as (v: unknown) => void);
      this.worker.postMessage({ ...body, id } as ToWorker);
    });
  }
}

function applyPlcChange(plc: SimPlc, c: PlcChange): void {
  if (c.op === 'create') {
    plc.create(c.entry);
    if (c.entry.tombstoned) plc.tombstone(c.entry.did);
  } else if (c.op === 'update') plc.update(c.did, c.patch);
  else plc.tombstone(c.did);
}

export class ThreadedSimNetwork {
  private constructor(
    readonly plc: SimPlc,
    private readonly workers: WorkerHandle[],
  ) {}

  /** Starts `threads` workers sharing `hosts` and `accounts` (total) between them. */
  static async start(
    opts: Omit<SimNetworkOptions, 'plc' | 'hostOffset' | 'accountsPerHost'> & { threads: number },
  ): Promise<ThreadedSimNetwork> {
    const seed = opts.seed ?? 1;
    const plc = await SimPlc.start(seed);
    const hosts = opts.hosts ?? 1;
    const accounts = opts.accounts ?? hosts * 10;
    const threads = Math.max(1, Math.min(opts.threads, hosts));
    const handles: WorkerHandle[] = [];
    let hostOffset = 0;
    let accountOffset = 0;
    for (let i = 0; i < threads; i++) {
      const h = Math.floor((hosts * (i + 1)) / threads) - Math.floor((hosts * i) / threads);
      const a = Math.floor((accounts * (hostOffset + h)) / hosts) - accountOffset;
      const { threads: _t, rate: _r, pregenerate: _p, ...rest } = opts;
      const init: WorkerInit = {
        entry: siblingModuleUrl('./host-worker.ts', import.meta.url).href,
        index: i,
        options: { ...rest, hosts: h, accounts: a, hostOffset },
      };
      // from the sources, worker-boot.mjs registers tsx first; the compiled .js starts as is
      const boot = init.entry.endsWith('.ts')
        ? new URL('./worker-boot.mjs', import.meta.url)
        : new URL(init.entry);
      const worker = new Worker(boot, { workerData: init });
      handles.push(new WorkerHandle(worker, plc));
      hostOffset += h;
      accountOffset += a;
    }
    const net = new ThreadedSimNetwork(plc, handles);
    try {
      await Promise.all(handles.map((w) => w.ready));
      if (opts.pregenerate) await net.pregenerate(opts.pregenerate);
      if (opts.rate) await net.startGenerator(opts.rate);
    } catch (err) {
      await net.stop();
      throw err;
    }
    return net;
  }

  get hosts(): RemoteHost[] {
    return this.workers.flatMap((w) => w.hosts);
  }

  private share(w: WorkerHandle, total: number): number {
    return (total * w.hosts.length) / this.hosts.length;
  }

  /** Makes `n` events ahead, split over the workers by host count (in parallel). */
  async pregenerate(n: number): Promise<void> {
    await Promise.all(
      this.workers.map((w) => w.request({ type: 'pregenerate', n: Math.round(this.share(w, n)) })),
    );
  }

  async startGenerator(rate: number, opts: { aheadSeconds?: number } = {}): Promise<void> {
    await Promise.all(
      this.workers.map((w) =>
        w.request({ type: 'start', rate: this.share(w, rate), aheadSeconds: opts.aheadSeconds }),
      ),
    );
  }

  async stopGenerator(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.request({ type: 'stopGenerator' })));
  }

  /** Stats summed over the workers. */
  async stats(): Promise<WorkerStats> {
    const all = await Promise.all(this.workers.map((w) => w.request<WorkerStats>({ type: 'stats' })));
    const sum: WorkerStats = {
      emitted: 0,
      queued: 0,
      starvedTicks: 0,
      byType: {},
      subscribers: 0,
      faults: 0,
    };
    for (const s of all) {
      sum.emitted += s.emitted;
      sum.queued += s.queued;
      sum.starvedTicks += s.starvedTicks;
      sum.subscribers += s.subscribers;
      sum.faults += s.faults;
      for (const [t, n] of Object.entries(s.byType)) sum.byType[t] = (sum.byType[t] ?? 0) + n;
    }
    return sum;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.workers.map(async (w) => {
        await Promise.race([w.request({ type: 'shutdown' }), new Promise((r) => setTimeout(r, 5000))]);
        await w.worker.terminate();
      }),
    );
    await this.plc.stop();
  }
}
