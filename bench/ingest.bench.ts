// Ingest benchmark: RSS and CPU of the relay's ingest stage holding many
// upstream host subscriptions. The simulated hosts run in a separate process
// (sim/cli.ts) so this process's RSS and CPU are the relay side only: the
// HostManager, one WebSocket per host, a SQLite metadata store, and a
// FrameSink that counts frames and resolves at once (validation is not
// measured here).
//
// Each scenario runs in a fresh child process, because RSS does not shrink
// after a bigger run and scenarios must not share a heap:
//   node --import tsx bench/ingest.bench.ts                       # 100, 1000, 3000 idle; 3000 at 2000 ev/s
//   node --import tsx bench/ingest.bench.ts --scenarios 1000:0    # hosts:events-per-second[,…]
// Reported per scenario: RSS before subscribing and with every host
// connected, the difference per host, V8 heap, CPU % of the relay process
// (idle: pings only; load: frames flowing) and frames/s received, plus the
// machine's load average (the machine is shared).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { FrameSink, InboundFrame } from '../src/ingest/frame-sink.ts';
import { HostManager } from '../src/ingest/host-manager.ts';
import { createSafeFetcher } from '../src/protocol/identity/safe-fetch.ts';
import { openMetadataStore } from '../src/store/open-store.ts';

const { values: args } = parseArgs({
  options: {
    scenarios: { type: 'string', default: '0:0,100:0,1000:0,3000:0,3000:2000' },
    seconds: { type: 'string', default: '10' },
    'idle-seconds': { type: 'string', default: '40' },
    child: { type: 'string' },
  },
});

const root = fileURLToPath(new URL('..', import.meta.url));
const seconds = Number(args.seconds);
// idle windows are long enough to include one liveness ping round (30 s after the last frame)
const idleSeconds = Number(args['idle-seconds']);

interface Result {
  hosts: number;
  rate: number;
  connected: number;
  connectSecs: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  perHostKb: number;
  heapMb: number;
  cpuPct: number;
  framesPerSec: number;
  load1m: number;
}

const mb = (b: number) => +(b / 1024 / 1024).toFixed(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const gc = (globalThis as { gc?: () => void }).gc;

interface Sim {
  child: ChildProcess | undefined;
  hostnames: string[];
  /** Resolves when the sim has pre-generated its events and started its generator. */
  generating: Promise<void>;
}

function startSim(hosts: number, rate: number): Promise<Sim> {
  const simArgs = ['--import', 'tsx', join(root, 'sim/cli.ts'), '--hosts', String(hosts)];
  simArgs.push('--accounts', String(hosts), '--history', '1000', '--rate', String(rate), '--json');
  // enough queued events for the whole measured window, so the sim mostly just sends
  if (rate > 0) simArgs.push('--pregenerate', String(rate * (seconds + 10)));
  const child = spawn(process.execPath, simArgs, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout!.on('error', () => {}); // the sim's last stats line may meet a closed pipe
  const lines = createInterface({ input: child.stdout! });
  let generated: () => void;
  const generating = new Promise<void>((r) => {
    generated = r;
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`sim exited with ${code}`)));
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as { hosts?: { hostname: string }[]; pregenerated?: number };
      if (msg.hosts) resolve({ child, hostnames: msg.hosts.map((h) => h.hostname), generating });
      if (msg.pregenerated !== undefined) generated();
    });
  });
}

class CountingSink implements FrameSink {
  count = 0;
  submit(_f: InboundFrame): Promise<void> {
    this.count++;
    return Promise.resolve();
  }
}

async function runScenario(hosts: number, rate: number): Promise<Result> {
  // hosts 0: the baseline (same process, store and manager, no sim, no sockets)
  const sim: Sim =
    hosts > 0
      ? await startSim(hosts, rate)
      : { child: undefined, hostnames: [], generating: Promise.resolve() };
  const dir = mkdtempSync(join(tmpdir(), 'atrelay-ingest-bench-'));
  const store = await openMetadataStore({ dataDir: dir });
  const sink = new CountingSink();
  try {
    for (const hostname of sim.hostnames) await store.createHost({ hostname, tls: false, status: 'active' });
    const manager = new HostManager({
      store,
      sink,
      fetcher: createSafeFetcher({ allowPrivate: true, allowInsecure: true }),
      config: {
        allowInsecureHosts: true,
        upstream: undefined,
        bootstrapHosts: false,
        newHostsPerDay: 50,
        hostMaxFailures: 15,
        hostConnectsPerSecond: 500,
        hostMaxInFlight: 32,
        hostCursorWindow: 8192,
        hostBadFramesPerMinute: 20,
        ingestFrameBudgetMb: 256,
        hostRatePerSecond: 50,
        hostRatePerHour: 2500,
        hostRatePerDay: 20000,
        trustedDomains: '',
      },
    });
    gc?.();
    await sleep(500);
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    await manager.start();
    while (manager.connectedCount < hosts && performance.now() - t0 < 180_000) await sleep(50);
    const connectSecs = (performance.now() - t0) / 1000;
    const connected = manager.connectedCount;
    if (rate > 0) await sim.generating;
    await sleep(2000);
    const frames0 = sink.count;
    const c0 = process.cpuUsage();
    const w0 = performance.now();
    await sleep((rate > 0 ? seconds : idleSeconds) * 1000);
    const c = process.cpuUsage(c0);
    const wall = performance.now() - w0;
    const framesPerSec = Math.round(((sink.count - frames0) / wall) * 1000);
    gc?.();
    await sleep(200);
    const mem = process.memoryUsage();
    await manager.stop();
    return {
      hosts,
      rate,
      connected,
      connectSecs: +connectSecs.toFixed(1),
      rssBeforeMb: mb(rssBefore),
      rssAfterMb: mb(mem.rss),
      perHostKb: +((mem.rss - rssBefore) / 1024 / Math.max(1, connected)).toFixed(1),
      heapMb: mb(mem.heapUsed),
      cpuPct: +((((c.user + c.system) / 1000) * 100) / wall).toFixed(1),
      framesPerSec,
      load1m: +loadavg()[0].toFixed(2),
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    const child = sim.child;
    if (child) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  }
}

function runChild(spec: string): Promise<Result> {
  const child = spawn(
    process.execPath,
    [
      '--expose-gc',
      '--import',
      'tsx',
      fileURLToPath(import.meta.url),
      '--child',
      spec,
      '--seconds',
      String(seconds),
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code === 0 && line.startsWith('{')) resolve(JSON.parse(line) as Result);
      else reject(new Error(`scenario ${spec} failed (exit ${code}): ${out}`));
    });
  });
}

if (args.child) {
  const [hosts, rate] = args.child.split(':').map(Number);
  console.log(JSON.stringify(await runScenario(hosts, rate)));
  process.exit(0);
} else {
  const results: Result[] = [];
  for (const spec of args.scenarios.split(',')) {
    const r = await runChild(spec);
    console.error(JSON.stringify(r));
    results.push(r);
  }
  const base = results.find((r) => r.hosts === 0);
  console.log(
    '| hosts | events/s offered | connected | connect s | RSS MB | RSS − baseline per host KB | heap MB | heap − baseline per host KB | CPU % | frames/s | load 1m |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const perHost = (x: number, b: number | undefined, n: number) =>
    b === undefined || n === 0 ? '' : (((x - b) * 1024) / n).toFixed(1);
  for (const r of results) {
    console.log(
      `| ${r.hosts} | ${r.rate} | ${r.connected} | ${r.connectSecs} | ${r.rssAfterMb} | ${perHost(r.rssAfterMb, base?.rssAfterMb, r.connected)} | ${r.heapMb} | ${perHost(r.heapMb, base?.heapMb, r.connected)} | ${r.cpuPct} | ${r.framesPerSec} | ${r.load1m} |`,
    );
  }
}
