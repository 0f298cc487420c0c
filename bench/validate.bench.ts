// Validation benchmark: fully verified #commit events per second through the
// whole validation stage (worker decode + CAR hash checks + signature + MST
// inversion, then the per-repo state checks, SQLite head updates and the
// durable file event log with fsync), with 0 (inline), 1 and 2 worker threads;
// then ingest-to-durable latency (p50/p99) at a steady 2,000 events/s.
//
// Frames come from the simulated network (sim/), made before any timing
// starts: accounts spread over a few hosts, each account's creation events
// (#identity, #account, first #commit) fed first as a warm-up so identities
// are cached and accounts exist, then only #commit events are measured. Each
// run gets a fresh store, log and identity cache and replays the same frames.
// Latency is measured from submit (the `receivedAt` ingest would stamp) to
// the moment submit() resolves: the events are durable in the log, which is
// when the firehose broadcasts them, and the head is in the store.
//
//   node --import tsx bench/validate.bench.ts [--commits 20000] [--accounts 1000]
//        [--hosts 4] [--workers 0,1,2] [--window 1024] [--rate 2000] [--latency-seconds 5] [--fsync true]
//        [--profile DIR]  (CPU and sampled-allocation profiles of the main thread over each measured run)
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { SimNetwork } from '../sim/network.ts';
import { openEventLog } from '../src/eventlog/file-log.ts';
import type { InboundFrame } from '../src/ingest/frame-sink.ts';
import { DidResolver } from '../src/protocol/identity/did-resolver.ts';
import { IdentityCache } from '../src/protocol/identity/identity-cache.ts';
import { createSafeFetcher } from '../src/protocol/identity/safe-fetch.ts';
import { openMetadataStore } from '../src/store/open-store.ts';
import { Validator } from '../src/validate/validator.ts';
import { procCpuSeconds } from './harness.ts';

const { values: args } = parseArgs({
  options: {
    commits: { type: 'string', default: '20000' },
    accounts: { type: 'string', default: '1000' },
    hosts: { type: 'string', default: '4' },
    workers: { type: 'string', default: '0,1,2' },
    window: { type: 'string', default: '1024' },
    rate: { type: 'string', default: '2000' },
    'latency-seconds': { type: 'string', default: '5' },
    'latency-workers': { type: 'string', default: '2' },
    fsync: { type: 'string', default: 'true' },
    /** Write a CPU profile of the main thread over each measured run into this directory. */
    profile: { type: 'string' },
  },
});
const commits = Number(args.commits);
const nAccounts = Number(args.accounts);
const nHosts = Number(args.hosts);
const window = Number(args.window);
const rate = Number(args.rate);
const latencySeconds = Number(args['latency-seconds']);

interface Captured {
  hostIndex: number;
  seq: number;
  type: string;
  frame: Uint8Array;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds (user + system) of this process's main thread alone (its /proc task has the process id). */
const mainThreadCpuSeconds = (): number => procCpuSeconds(process.pid, process.pid);

async function main(): Promise<void> {
  console.log(
    `validate bench: ${commits} commits, ${nAccounts} accounts on ${nHosts} hosts, ${availableParallelism()} cores, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  const t0 = performance.now();
  const net = await SimNetwork.start({
    hosts: nHosts,
    accounts: nAccounts,
    seed: 'validate-bench',
    historySize: Math.ceil((commits + 3 * nAccounts) / nHosts) + 1000,
    identityShare: 0,
    accountShare: 0,
    syncShare: 0,
  });
  await net.pregenerateAsync(commits);
  for (const h of net.hosts) h.emitQueued();
  // round-robin over hosts in upstream seq order: creation events first on every host
  const warmup: Captured[] = [];
  const measured: Captured[] = [];
  const perHost = net.hosts.map((h) => h.seq);
  const creationPerHost = net.hosts.map((_, i) => 3 * net.accounts.filter((a) => a.host === i).length);
  for (let s = 1; s <= Math.max(...perHost); s++) {
    net.hosts.forEach((h, i) => {
      if (s > perHost[i]) return;
      const meta = h.firehose.eventAt(s);
      const frame = h.firehose.frameAt(s);
      if (!meta || !frame) throw new Error('history too small');
      const c = { hostIndex: i, seq: s, type: meta.t, frame };
      (s <= creationPerHost[i] ? warmup : measured).push(c);
    });
  }
  console.log(
    `generated ${warmup.length} warm-up + ${measured.length} measured frames in ${((performance.now() - t0) / 1000).toFixed(1)} s (avg ${Math.round(
      measured.reduce((n, c) => n + c.frame.length, 0) / measured.length,
    )} bytes)`,
  );

  const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true, keepAlive: true });

  async function freshValidator(workers: number) {
    const dir = mkdtempSync(join(tmpdir(), 'atrelay-validate-bench-'));
    const registry = new Registry();
    const store = await openMetadataStore({ dataDir: dir, cursorFlushMs: 0 });
    const log = await openEventLog({
      dir: join(dir, 'log'),
      gcIntervalMs: 0,
      fsync: args.fsync !== 'false',
      registry,
    });
    const hostIds: number[] = [];
    for (const h of net.hosts)
      hostIds.push((await store.createHost({ hostname: h.hostname, trusted: true })).value.id);
    const identity = new IdentityCache({ resolver: new DidResolver({ fetcher, plcUrl: net.plc.url }) });
    const validator = new Validator({
      store,
      log,
      identity,
      handleResolver: { resolve: async (h) => net.plc.resolveHandle(h) },
      fetcher,
      config: { workers },
    });
    const toInbound = (c: Captured): InboundFrame => ({
      hostId: hostIds[c.hostIndex],
      hostname: net.hosts[c.hostIndex].hostname,
      upstreamSeq: c.seq,
      type: c.type,
      frame: c.frame,
      receivedAt: performance.now(),
    });
    await Promise.all(warmup.map((c) => validator.submit(toInbound(c))));
    const close = async () => {
      await validator.close();
      await log.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    };
    /** Event log group commits: count and mean duration (write + fdatasync). */
    const flushStats = async () => {
      const m = (await registry.getMetricsAsJSON()).find((x) => x.name === 'relay_eventlog_flush_seconds');
      const values = (m?.values ?? []) as { metricName?: string; value: number }[];
      const count = values.find((x) => x.metricName?.endsWith('_count'))?.value ?? 0;
      const sum = values.find((x) => x.metricName?.endsWith('_sum'))?.value ?? 0;
      return `${count} log flushes, mean ${count ? ((sum / count) * 1000).toFixed(1) : '-'} ms`;
    };
    return { validator, toInbound, close, flushStats };
  }

  const workerCounts = args.workers.split(',').map(Number);
  for (const workers of workerCounts) {
    const v = await freshValidator(workers);
    const id0 = { ...v.validator.metrics.identity };
    const session = args.profile ? new Session() : undefined;
    if (session) {
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.start');
      await session.post('HeapProfiler.enable');
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      } as never);
    }
    const cpu0 = process.cpuUsage();
    const main0 = mainThreadCpuSeconds();
    const elu0 = performance.eventLoopUtilization();
    const start = performance.now();
    let next = 0;
    let inFlight = 0;
    await new Promise<void>((resolve, reject) => {
      const pump = () => {
        while (inFlight < window && next < measured.length) {
          inFlight++;
          v.validator.submit(v.toInbound(measured[next++])).then(() => {
            inFlight--;
            if (next === measured.length && inFlight === 0) resolve();
            else pump();
          }, reject);
        }
      };
      pump();
    });
    const secs = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const mainUsPerCommit = ((mainThreadCpuSeconds() - main0) * 1e6) / measured.length;
    if (session && args.profile) {
      const { profile } = await session.post('Profiler.stop');
      const { profile: heap } = await session.post('HeapProfiler.stopSampling');
      session.disconnect();
      mkdirSync(args.profile, { recursive: true });
      writeFileSync(join(args.profile, `validate-workers-${workers}.heapprofile`), JSON.stringify(heap));
      writeFileSync(join(args.profile, `validate-workers-${workers}.cpuprofile`), JSON.stringify(profile));
    }
    const elu = performance.eventLoopUtilization(elu0);
    const cpuUsPerCommit = (cpu.user + cpu.system) / measured.length;
    const m = v.validator.metrics;
    const passed = m.passed.get('#commit') ?? 0;
    const dropped = [...m.dropped.values()].reduce((a, b) => a + b, 0);
    console.log(
      `workers=${workers}: ${Math.round(measured.length / secs)} commits/s verified end to end (${measured.length} in ${secs.toFixed(2)} s; passed ${passed - nAccounts}, dropped ${dropped}; process CPU ${((cpu.user + cpu.system) / 1e6 / secs).toFixed(2)} cores = ${Math.round(cpuUsPerCommit)} µs/commit, main thread ${Math.round(mainUsPerCommit)} µs/commit of CPU, busy ${Math.round(elu.utilization * 100)} %; ${await v.flushStats()}; identity cache hits ${m.identity.hits - id0.hits}/${m.identity.hits + m.identity.misses - id0.hits - id0.misses})`,
    );
    await v.close();
  }

  // latency at a steady rate (skipped with --latency-seconds 0)
  const latencyWorkers = Number(args['latency-workers']);
  const v = await freshValidator(latencyWorkers);
  const total = Math.min(measured.length, Math.round(rate * latencySeconds));
  if (total === 0) {
    await v.close();
    fetcher.close();
    await net.stop();
    return;
  }
  const latencies: number[] = [];
  const tickMs = 5;
  const start = performance.now();
  let sent = 0;
  const done: Promise<void>[] = [];
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * rate));
    while (sent < due) {
      const f = v.toInbound(measured[sent++]);
      done.push(v.validator.submit(f).then(() => void latencies.push(performance.now() - f.receivedAt)));
    }
    await sleep(tickMs);
  }
  await Promise.all(done);
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))];
  console.log(
    `latency at ${rate} commits/s, workers=${latencyWorkers}: p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms (${latencies.length} events; ${await v.flushStats()})`,
  );
  await v.close();
  fetcher.close();
  await net.stop();
  console.log(
    `load after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
