// A worker thread running a share of a threaded simulated network's hosts
// (see threaded.ts): its own SimNetwork (hosts, accounts, generator) on its
// own event loop, so making and sending events uses more than one core. The
// PLC directory lives in the main thread; this worker keeps a local copy
// (ForwardingPlc) and forwards every document change to it, in order, as a
// message. Accounts are all registered before the worker reports ready, so
// the relay never sees an event for a DID the directory does not know.
import { parentPort, workerData } from 'node:worker_threads';
import { SimNetwork, type SimNetworkOptions } from './network.ts';
import { type PlcEntry, SimPlc } from './plc.ts';

export interface WorkerInit {
  entry: string;
  index: number;
  options: Omit<SimNetworkOptions, 'plc' | 'rate' | 'pregenerate'>;
}

export type PlcChange =
  | { op: 'create'; entry: PlcEntry }
  | { op: 'update'; did: string; patch: Partial<Pick<PlcEntry, 'handle' | 'signingKey' | 'pds'>> }
  | { op: 'tombstone'; did: string };

export type ToWorker =
  | { id: number; type: 'pregenerate'; n: number }
  | { id: number; type: 'start'; rate: number; aheadSeconds?: number }
  | { id: number; type: 'stopGenerator' }
  | { id: number; type: 'stats' }
  | { id: number; type: 'shutdown' };

export interface WorkerStats {
  emitted: number;
  queued: number;
  starvedTicks: number;
  byType: Record<string, number>;
  subscribers: number;
  faults: number;
}

const port = parentPort!;
const init = workerData as WorkerInit;

class ForwardingPlc extends SimPlc {
  override create(entry: Omit<PlcEntry, 'did' | 'tombstoned'> & { did?: string }): PlcEntry {
    const e = super.create(entry);
    port.postMessage({ type: 'plc', change: { op: 'create', entry: { ...e } } satisfies PlcChange });
    return e;
  }

  override update(did: string, patch: Partial<Pick<PlcEntry, 'handle' | 'signingKey' | 'pds'>>): PlcEntry {
    const e = super.update(did, patch);
    port.postMessage({ type: 'plc', change: { op: 'update', did, patch } satisfies PlcChange });
    return e;
  }

  override tombstone(did: string): void {
    super.tombstone(did);
    port.postMessage({ type: 'plc', change: { op: 'tombstone', did } satisfies PlcChange });
  }
}

const seed = init.options.seed ?? 1;
const net = await SimNetwork.start({ ...init.options, plc: new ForwardingPlc(`${seed}:w${init.index}`) });

function stats(): WorkerStats {
  const g = net.generatorStats();
  return {
    emitted: g.emitted,
    queued: g.queued,
    starvedTicks: g.starvedTicks,
    byType: net.counts(),
    subscribers: net.hosts.reduce((n, h) => n + h.firehose.subscriberCount, 0),
    faults: net.hosts.reduce((n, h) => n + h.faultLog.length, 0),
  };
}

port.on('message', async (msg: ToWorker) => {
  let result: unknown = null;
  if (msg.type === 'pregenerate') await net.pregenerateAsync(msg.n);
  else if (msg.type === 'start') net.startGenerator(msg.rate, { aheadSeconds: msg.aheadSeconds });
  else if (msg.type === 'stopGenerator') net.stopGenerator();
  else if (msg.type === 'stats') result = stats();
  else if (msg.type === 'shutdown') await net.stop();
  port.postMessage({ type: 'reply', id: msg.id, result });
  if (msg.type === 'shutdown') port.close();
});

port.postMessage({
  type: 'ready',
  hosts: net.hosts.map((h) => ({
    name: h.name,
    url: h.url,
    hostname: h.hostname,
    wsUrl: h.wsUrl,
    accounts: h.accounts.size,
  })),
});
