// Shared pieces for the ingest integration tests and the benchmark: a
// FrameSink that records what it is handed (with an optional delay and
// failure switch), a throwaway SQLite metadata store, a loopback-only
// configuration, and polling.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataStore } from '../store/metadata-store.ts';
import { openMetadataStore } from '../store/open-store.ts';
import type { FrameSink, InboundFrame } from './frame-sink.ts';
import type { IngestConfig } from './host-manager.ts';

export class RecordingSink implements FrameSink {
  /** Finished upstream seqs per host id, in finishing order. */
  readonly seqs = new Map<number, number[]>();
  count = 0;
  inFlight = 0;
  maxInFlight = 0;
  keepFrames = false;
  readonly frames: InboundFrame[] = [];
  /** Milliseconds to hold each frame (0: resolve on the next microtask). */
  delay: (f: InboundFrame) => number = () => 0;
  /** Return true to reject the frame (the sink refused it). */
  fail: (f: InboundFrame) => boolean = () => false;

  async submit(f: InboundFrame): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const d = this.delay(f);
      if (d > 0) await new Promise((r) => setTimeout(r, d));
      if (this.fail(f)) throw new Error('sink refused');
      let list = this.seqs.get(f.hostId);
      if (!list) {
        list = [];
        this.seqs.set(f.hostId, list);
      }
      list.push(f.upstreamSeq);
      if (this.keepFrames) this.frames.push(f);
      this.count++;
    } finally {
      this.inFlight--;
    }
  }

  sorted(hostId: number): number[] {
    return [...(this.seqs.get(hostId) ?? [])].sort((a, b) => a - b);
  }
}

export interface TempStore {
  store: MetadataStore;
  dir: string;
  reopen(): Promise<MetadataStore>;
  destroy(): Promise<void>;
}

export async function tempStore(cursorFlushMs = 50): Promise<TempStore> {
  const dir = mkdtempSync(join(tmpdir(), 'atrelay-ingest-'));
  const t: TempStore = {
    store: await openMetadataStore({ dataDir: dir, cursorFlushMs }),
    dir,
    async reopen() {
      await t.store.close();
      t.store = await openMetadataStore({ dataDir: dir, cursorFlushMs });
      return t.store;
    },
    async destroy() {
      await t.store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Loopback-only test configuration with short back-off and sweep periods. */
export function testConfig(over: Partial<IngestConfig> = {}): IngestConfig {
  return {
    allowInsecureHosts: true,
    upstream: undefined,
    bootstrapHosts: false,
    newHostsPerDay: 50,
    hostMaxFailures: 15,
    hostConnectsPerSecond: 1000,
    hostMaxInFlight: 8,
    hostRatePerSecond: 100_000,
    hostRatePerHour: 100_000_000,
    hostRatePerDay: 1_000_000_000,
    trustedDomains: '',
    backoffBaseMs: 20,
    backoffMaxMs: 200,
    successAfterMs: 2_000,
    sweepIntervalMs: 100,
    pingAfterMs: 1_000,
    deadAfterMs: 5_000,
    handshakeTimeoutMs: 2_000,
    describeTimeoutMs: 2_000,
    ...over,
  };
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
