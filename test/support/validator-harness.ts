// Test scaffolding for the validator (tests and the fuzz suite): a simulated network
// (sim/), a real SQLite metadata store and a real file event log in a temp
// directory, an identity cache resolving against the simulated PLC, and a
// helper that turns the frames a simulated host emitted into InboundFrames as
// ingest would hand them over. Not used by the relay itself.
import { join } from 'node:path';
import { SimNetwork, type SimNetworkOptions } from '../../sim/network.ts';
import type { SimPds } from '../../sim/pds.ts';
import { openEventLog } from '../../src/eventlog/file-log.ts';
import type { EventLog, LogRecord } from '../../src/eventlog/types.ts';
import type { InboundFrame } from '../../src/ingest/frame-sink.ts';
import { decodeFrame } from '../../src/protocol/frames.ts';
import { DidResolver } from '../../src/protocol/identity/did-resolver.ts';
import { IdentityCache, type IdentityCacheOptions } from '../../src/protocol/identity/identity-cache.ts';
import { createSafeFetcher, type SafeFetcher } from '../../src/protocol/identity/safe-fetch.ts';
import type { MetadataStore } from '../../src/store/metadata-store.ts';
import { openMetadataStore } from '../../src/store/open-store.ts';
import {
  type HandleLookup,
  type IdentitySource,
  type ValidationSettings,
  Validator,
} from '../../src/validate/validator.ts';
import { removeTempDir, tempDir } from './temp.ts';

export interface Harness {
  net: SimNetwork;
  store: MetadataStore;
  log: EventLog;
  identity: IdentityCache;
  fetcher: SafeFetcher;
  validator: Validator;
  /** host index → metadata-store host id */
  hostIds: number[];
  /** handle → DID answers that override the PLC's (a handle whose domain points elsewhere) */
  spoofedHandles: Map<string, string>;
  /** Frames host `i` emitted since the last call (or since the start), as ingest would submit them. */
  takeFrames(i: number): InboundFrame[];
  /** Submits frames in order and waits until all are finished. */
  submitAll(frames: InboundFrame[]): Promise<void>;
  /** Every record in the event log, decoded. */
  output(): Promise<OutputEvent[]>;
  close(): Promise<void>;
}

export interface OutputEvent {
  seq: number;
  uid: number;
  origin?: { hostId: number; seq: number };
  t: string;
  body: Record<string, unknown>;
  frame: Uint8Array;
}

export interface HarnessOptions {
  net?: SimNetworkOptions;
  settings?: Partial<ValidationSettings>;
  /** Wraps the identity source (e.g. to slow one DID down). */
  wrapIdentity?: (inner: IdentitySource) => IdentitySource;
  /** Wraps the store the validator uses (e.g. to hold one account's lookups). */
  wrapStore?: (inner: MetadataStore) => MetadataStore;
  /** Identity cache options (e.g. a short error TTL for outage tests). */
  identityCache?: Partial<Omit<IdentityCacheOptions, 'resolver'>>;
  /** Wraps the fetcher the validator resyncs with (e.g. in a RepoFetcher with test workers). */
  wrapFetcher?: (inner: SafeFetcher) => SafeFetcher;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = tempDir('atrelay-validate-');
  const net = await SimNetwork.start({ hosts: 2, accountsPerHost: 0, ...opts.net });
  const store = await openMetadataStore({ dataDir: dir, cursorFlushMs: 0 });
  const log = await openEventLog({ dir: join(dir, 'log') });
  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
  const identity = new IdentityCache({
    resolver: new DidResolver({ fetcher, plcUrl: net.plc.url }),
    ...opts.identityCache,
  });
  const spoofedHandles = new Map<string, string>();
  const handleResolver: HandleLookup = {
    resolve: async (h) => spoofedHandles.get(h) ?? net.plc.resolveHandle(h),
  };
  const hostIds: number[] = [];
  for (const h of net.hosts) hostIds.push((await store.createHost({ hostname: h.hostname })).value.id);
  const validator = new Validator({
    store: opts.wrapStore ? opts.wrapStore(store) : store,
    log,
    identity: opts.wrapIdentity ? opts.wrapIdentity(identity) : identity,
    handleResolver,
    fetcher: opts.wrapFetcher ? opts.wrapFetcher(fetcher) : fetcher,
    config: opts.settings,
  });
  const taken = net.hosts.map(() => 0);
  const frameOf = (host: SimPds, i: number, seq: number): InboundFrame => {
    const frame = host.firehose.frameAt(seq);
    const meta = host.firehose.eventAt(seq);
    if (!frame || !meta) throw new Error(`host ${i} no longer holds seq ${seq}`);
    return {
      hostId: hostIds[i],
      hostname: host.hostname,
      upstreamSeq: seq,
      type: meta.t,
      frame,
      receivedAt: performance.now(),
    };
  };
  return {
    net,
    store,
    log,
    identity,
    fetcher,
    validator,
    hostIds,
    spoofedHandles,
    takeFrames(i) {
      const host = net.hosts[i];
      const out: InboundFrame[] = [];
      for (let s = taken[i] + 1; s <= host.seq; s++) out.push(frameOf(host, i, s));
      taken[i] = host.seq;
      return out;
    },
    async submitAll(frames) {
      await Promise.all(frames.map((f) => validator.submit(f)));
    },
    async output() {
      const out: OutputEvent[] = [];
      let after = 0;
      for (;;) {
        const recs: LogRecord[] = await log.readFrom(after);
        if (recs.length === 0) return out;
        for (const r of recs) {
          const { header, body } = decodeFrame(r.frame);
          out.push({
            seq: r.seq,
            uid: r.uid,
            origin: r.origin,
            t: header.op === 1 ? header.t : '#error',
            body,
            frame: r.frame,
          });
          after = r.seq;
        }
      }
    },
    async close() {
      await validator.close();
      await log.close();
      await store.close();
      fetcher.close();
      await net.stop();
      removeTempDir(dir);
    },
  };
}
