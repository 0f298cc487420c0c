// End-to-end benchmark: the simulated network (in worker threads of this
// process) → the relay as it runs in production (its own process, started
// like `npm start`: the compiled build in dist/ (rebuilt first when stale;
// --tsx runs src/main.ts under tsx instead), fsync on, validation workers
// `auto` unless --workers says otherwise) → N consumers (their own process, counting
// frames on raw sockets). Every commit is fully verified by the relay.
//
//   node --import tsx bench/e2e.bench.ts [--rate 8000] [--seconds 20] [--warmup 5]
//       [--hosts 20] [--accounts 2000] [--consumers 1] [--workers auto] [--sim-threads 1]
//       [--node-args=--max-semi-space-size=32] [--profile DIR] [--profile-threads DIR] [--tsx]
//
// --profile DIR writes CPU profiles of the relay: its main thread over the
// whole run (node --cpu-prof, on exit) and over the measured window only
// (main-window.cpuprofile, and a sampled allocation profile of the window,
// main-window.heapprofile, through the inspector protocol), so warm-up work
// (DID resolutions, account creation) does not blur the steady state. With
// the inspector on, Node 20 writes no --cpu-prof profile for worker threads;
// --profile-threads DIR leaves the inspector off and writes one per thread
// (main, verify workers, head writer) over the whole run instead.
//
// The network pre-generates every event it will send (signing is the
// expensive part), so during the run it only sequences and writes frames.
// Measured over the window after the warm-up:
// - offered: events/s the network emitted; delivered: events/s each consumer
//   received (the slowest consumer); kept up: delivered ≥ 97 % of offered and
//   the relay's backlog did not grow;
// - relay CPU µs/event: the relay process's user+system CPU (/proc) per
//   event appended to its log; main-thread µs/event: the CPU of its main
//   thread alone (/proc/<pid>/task/<pid>) per event — the part that cannot
//   spread over cores (CPU time, so other load on the machine does not
//   inflate it, unlike event-loop utilisation, which is also reported);
// - p50/p99 ingest → durable latency (relay_validation_latency_seconds, frame
//   read from the host socket to durable in the log, which is also when it is
//   written to live consumers' sockets);
// - the relay's CPU per event by thread: the main thread, the four busiest
//   others (the verify workers lead), the rest together (V8's GC helpers,
//   libuv's threadpool for the log's writes and fsyncs, the head writer);
// - the relay's peak RSS;
// - the CPU the simulated network and the consumers used per event (they share
//   the machine: what they take, the relay cannot have);
// - the whole machine's busy cores and the share of CPU time the hypervisor
//   stole (/proc/stat), to tell a run disturbed from outside.
// Prints one JSON line (for docs/benchmarks.md) after a readable summary.
import { type ChildProcess, fork, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { SimDns } from '../sim/dns.ts';
import { ThreadedSimNetwork } from '../sim/threaded.ts';
import { type RelayProcess, spawnRelay } from '../test/support/relay-process.ts';
import { procCpuSeconds } from './harness.ts';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '8000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    hosts: { type: 'string', default: '20' },
    accounts: { type: 'string', default: '2000' },
    consumers: { type: 'string', default: '1' },
    workers: { type: 'string', default: 'auto' },
    'sim-threads': { type: 'string', default: '1' },
    /** Write a V8 CPU profile of the relay's main thread into this directory. */
    profile: { type: 'string' },
    /** Write whole-run CPU profiles of every relay thread into this directory (no main-window profile). */
    'profile-threads': { type: 'string' },
    /** Extra node flags for the relay process, space-separated (e.g. "--max-semi-space-size=32"). */
    'node-args': { type: 'string', default: '' },
    /** Run the relay's TypeScript sources under tsx instead of the compiled build. */
    tsx: { type: 'boolean', default: false },
  },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const hosts = Number(values.hosts);
const accounts = Number(values.accounts);
const consumerCount = Number(values.consumers);
const simThreads = Number(values['sim-threads']);

const log = (msg: string) => process.stderr.write(`[e2e] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The whole machine's CPU ticks (/proc/stat): busy, stolen by the hypervisor,
 * and all. Over the window they say how many cores everything used and how
 * much the VM lost to steal, so a run disturbed by the host can be told apart.
 */
function machineTicks(): { busy: number; steal: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq;
  return { busy, steal, total: busy + idle + iowait + steal };
}

/** CPU seconds of each thread of a process, by thread id (/proc/<pid>/task). */
function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), procCpuSeconds(pid, Number(tid)));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/**
 * The relay's CPU per event by thread over the window: the main thread, then
 * the other threads busiest first (with --workers N the first N are the
 * verify workers; Node 20 names no thread, so they are told apart by load),
 * the rest summed. Shows where the CPU goes and what spreads over cores.
 */
function cpuByThread(
  pid: number,
  before: Map<number, number>,
  after: Map<number, number>,
  events: number,
): { main: number; busiest: number[]; rest: number } {
  const perEvent = (seconds: number) => Math.round((seconds * 1e6) / events);
  const others: number[] = [];
  for (const [tid, cpu] of after) {
    if (tid !== pid) others.push(cpu - (before.get(tid) ?? 0));
  }
  others.sort((x, y) => y - x);
  const busiest = others.slice(0, 4);
  const rest = others.slice(4).reduce((sum, x) => sum + x, 0);
  return {
    main: perEvent((after.get(pid) ?? 0) - (before.get(pid) ?? 0)),
    busiest: busiest.map(perEvent),
    rest: perEvent(rest),
  };
}

function procRssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * Starts V8's CPU profiler and its sampling heap profiler (allocations, one
 * sample per 32 KB) on the relay's main thread through the inspector (the
 * relay runs with --inspect=127.0.0.1:0, which prints the socket URL on
 * stderr); `stop()` returns both profiles.
 */
async function profileMainThread(
  r: RelayProcess,
): Promise<{ stop(): Promise<{ cpu: unknown; heap: unknown }> }> {
  let url: string | undefined;
  for (let i = 0; i < 100 && !url; i++) {
    url = /Debugger listening on (ws:\/\/\S+)/.exec(r.tail())?.[1];
    if (!url) await sleep(50);
  }
  if (!url) throw new Error('no inspector URL in the relay output');
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let id = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<{ profile?: unknown }>((resolve) => {
      const mine = ++id;
      const on = (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as { id?: number; result: { profile?: unknown } };
        if (msg.id !== mine) return;
        ws.off('message', on);
        resolve(msg.result);
      };
      ws.on('message', on);
      ws.send(JSON.stringify({ id: mine, method, params }));
    });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 200 });
  await call('Profiler.start');
  await call('HeapProfiler.enable');
  await call('HeapProfiler.startSampling', {
    samplingInterval: 32_768,
    // every allocation, not only what is still alive when sampling stops
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  return {
    async stop() {
      const { profile: cpu } = await call('Profiler.stop');
      const { profile: heap } = await call('HeapProfiler.stopSampling');
      ws.close();
      return { cpu, heap };
    },
  };
}

interface Scrape {
  appended: number;
  busySeconds: number;
  head: number;
  /** The validator's identity-cache lookups at admission (#commit, #sync): a miss sends the frame to a worker without a key. */
  identityHits: number;
  identityMisses: number;
  /** Commit signatures the validator checked on its main thread (after the worker). */
  mainThreadSignatures: number;
  /** #commit/#sync verified on the worker that read them from the host socket (validate/in-place.ts). */
  whereRead: number;
  latency: Map<number, number>; // le → cumulative count (commits)
}

async function scrape(metricsPort: number): Promise<Scrape> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (name: string): number => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const latency = new Map<number, number>();
  const re = /^relay_validation_latency_seconds_bucket\{le="([^"]+)",type="#commit"\} ([0-9.e+-]+)$/gm;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    latency.set(m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2]));
  }
  return {
    appended: value('relay_eventlog_appended_total'),
    busySeconds: value('relay_main_thread_busy_seconds_total'),
    head: value('relay_eventlog_head_seq'),
    identityHits: value('relay_validation_identity_lookups_total\\{result="hit"\\}'),
    identityMisses: value('relay_validation_identity_lookups_total\\{result="miss"\\}'),
    mainThreadSignatures: value('relay_validation_main_thread_signatures_total'),
    whereRead: value('relay_validation_verified_where_read_total'),
    latency,
  };
}

/** Quantile from histogram bucket deltas (upper bound of the bucket holding it). */
function quantile(a: Map<number, number>, b: Map<number, number>, q: number): number {
  const les = [...b.keys()].sort((x, y) => x - y);
  const total = (b.get(Number.POSITIVE_INFINITY) ?? 0) - (a.get(Number.POSITIVE_INFINITY) ?? 0);
  if (total <= 0) return Number.NaN;
  for (const le of les) {
    const n = (b.get(le) ?? 0) - (a.get(le) ?? 0);
    if (n >= q * total) return le;
  }
  return Number.POSITIVE_INFINITY;
}

interface ConsumerStats {
  messages: number;
  bytes: number;
  perConsumerMin: number;
  closed: number;
}

function consumerReport(child: ChildProcess): Promise<ConsumerStats> {
  return new Promise((resolve) => {
    const on = (msg: { type: string } & ConsumerStats) => {
      if (msg.type !== 'stats') return;
      child.off('message', on);
      resolve(msg);
    };
    child.on('message', on);
    child.send({ type: 'report' });
  });
}

const dataDir = mkdtempSync(join(tmpdir(), 'atrelay-e2e-bench-'));
let relay: RelayProcess | undefined;
let consumers: ChildProcess | undefined;
const totalEvents = Math.ceil(rate * (warmup + seconds + 3));
log(
  `network: ${hosts} hosts, ${accounts} accounts, ${simThreads} thread(s); pre-generating ${totalEvents} events`,
);
const net = await ThreadedSimNetwork.start({
  hosts,
  accounts,
  seed: 'e2e',
  threads: simThreads,
  historySize: 200_000,
});
// the network's DNS: `_atproto.<handle>` TXT from its PLC (whose handles the host workers keep current)
const dns = await SimDns.start({ resolveHandle: (h) => net.plc.resolveHandle(h) });
try {
  const t0 = performance.now();
  await net.pregenerate(totalEvents);
  log(`pre-generated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  if (!values.tsx) {
    // the compiled build, as `npm start` runs it: bring dist/ up to date first
    const built = spawnSync(
      process.execPath,
      [new URL('../scripts/build.mjs', import.meta.url).pathname, '--quiet'],
      {
        stdio: 'inherit',
      },
    );
    if (built.status !== 0) throw new Error('building dist/ failed');
  }
  relay = await spawnRelay(
    {
      RELAY_PORT: '0',
      RELAY_METRICS_PORT: '0',
      RELAY_BIND: '127.0.0.1',
      RELAY_DATA_DIR: dataDir,
      RELAY_PLC_URL: net.plc.url,
      // handle checks answered by the simulated network, on loopback, as a real domain's TXT record would
      RELAY_DNS_SERVERS: dns.server,
      RELAY_UPSTREAM: 'none',
      RELAY_ALLOW_INSECURE_HOSTS: 'true',
      RELAY_ADMIN_PASSWORD: 'bench',
      RELAY_VALIDATION_WORKERS: String(values.workers),
      // a benchmark network is a few busy hosts: lift the per-host rate limits
      RELAY_HOST_RATE_PER_SECOND: '1000000',
      RELAY_HOST_RATE_PER_HOUR: '1000000000',
      RELAY_HOST_RATE_PER_DAY: '1000000000',
      // the benchmark adds its hosts through requestCrawl from one address
      RELAY_REQUEST_CRAWL_PER_IP_PER_MINUTE: '0',
      RELAY_NEW_HOSTS_PER_DAY: '1000000',
      RELAY_LOG_LEVEL: 'info',
    },
    [
      ...(values['node-args'] ? values['node-args'].split(' ').filter(Boolean) : []),
      ...(values.profile ? ['--cpu-prof', `--cpu-prof-dir=${values.profile}`, '--inspect=127.0.0.1:0'] : []),
      ...(values['profile-threads'] ? ['--cpu-prof', `--cpu-prof-dir=${values['profile-threads']}`] : []),
    ],
    { compiled: !values.tsx },
  );
  const pid = relay.child.pid as number;
  for (const h of net.hosts) {
    const res = await fetch(`http://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.requestCrawl`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hostname: h.hostname }),
    });
    if (res.status !== 200) throw new Error(`requestCrawl ${h.hostname}: ${res.status} ${await res.text()}`);
  }
  for (;;) {
    const s = await net.stats();
    if (s.subscribers >= hosts) break;
    await sleep(50);
  }
  consumers = fork(
    new URL('./e2e-consumers.ts', import.meta.url).pathname,
    [`ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos`, String(consumerCount)],
    { execArgv: ['--import', 'tsx'] },
  );
  await new Promise<void>((resolve) => {
    consumers?.on('message', (m: { type: string }) => {
      if (m.type === 'ready') resolve();
    });
  });

  const w0 = { cpu: procCpuSeconds(pid), main: procCpuSeconds(pid, pid), m: await scrape(relay.metricsPort) };
  await net.startGenerator(rate);
  log(`warming up ${warmup} s at ${rate} events/s`);
  await sleep(warmup * 1000);
  const w1 = { cpu: procCpuSeconds(pid), main: procCpuSeconds(pid, pid), m: await scrape(relay.metricsPort) };
  const warmed = w1.m.appended - w0.m.appended;
  // the warm-up starts cold: every account's DID is resolved for the first time
  log(
    `warm-up: ${warmed} events appended, relay CPU ${Math.round(((w1.cpu - w0.cpu) * 1e6) / warmed)} µs/event, ` +
      `main thread ${Math.round(((w1.main - w0.main) * 1e6) / warmed)} µs/event, ` +
      `identity cache missed at admission ${w1.m.identityMisses - w0.m.identityMisses} times, ` +
      `${w1.m.mainThreadSignatures - w0.m.mainThreadSignatures} signatures checked on the main thread`,
  );
  let peakRss = procRssBytes(pid);
  const rssTimer = setInterval(() => {
    peakRss = Math.max(peakRss, procRssBytes(pid));
  }, 250);

  const inspector = values.profile ? await profileMainThread(relay) : undefined;
  const a = {
    t: performance.now(),
    sim: procCpuSeconds(process.pid),
    consumerCpu: procCpuSeconds(consumers.pid as number),
    cpu: procCpuSeconds(pid),
    main: procCpuSeconds(pid, pid),
    threads: threadCpuSeconds(pid),
    machine: machineTicks(),
    m: await scrape(relay.metricsPort),
    net: (await net.stats()).emitted,
    c: await consumerReport(consumers),
  };
  log(`measuring ${seconds} s`);
  await sleep(seconds * 1000);
  const b = {
    t: performance.now(),
    sim: procCpuSeconds(process.pid),
    consumerCpu: procCpuSeconds(consumers.pid as number),
    cpu: procCpuSeconds(pid),
    main: procCpuSeconds(pid, pid),
    threads: threadCpuSeconds(pid),
    machine: machineTicks(),
    m: await scrape(relay.metricsPort),
    net: (await net.stats()).emitted,
    c: await consumerReport(consumers),
  };
  clearInterval(rssTimer);
  if (inspector && values.profile) {
    mkdirSync(values.profile, { recursive: true });
    const { cpu, heap } = await inspector.stop();
    const path = join(values.profile, 'main-window.cpuprofile');
    writeFileSync(path, JSON.stringify(cpu));
    writeFileSync(join(values.profile, 'main-window.heapprofile'), JSON.stringify(heap));
    log(`main-thread CPU and allocation profiles of the measured window: ${path}, main-window.heapprofile`);
  }
  await net.stopGenerator();

  const wall = (b.t - a.t) / 1000;
  const offered = (b.net - a.net) / wall;
  const appended = b.m.appended - a.m.appended;
  const delivered = (b.c.perConsumerMin - a.c.perConsumerMin) / wall;
  const backlogStart = a.net - a.m.head;
  const backlogEnd = b.net - b.m.head;
  const keptUp = delivered >= 0.97 * offered && backlogEnd - backlogStart < rate * 0.5;
  const result = {
    bench: 'e2e',
    date: new Date().toISOString(),
    cores: availableParallelism(),
    load: loadavg()[0],
    hosts,
    accounts,
    consumers: consumerCount,
    workers: values.workers,
    relay: values.tsx ? 'tsx' : 'compiled',
    simThreads,
    rate,
    seconds: wall,
    offeredPerSec: Math.round(offered),
    appendedPerSec: Math.round(appended / wall),
    deliveredPerSec: Math.round(delivered),
    keptUp,
    backlogGrowth: backlogEnd - backlogStart,
    relayCpuUsPerEvent: Math.round(((b.cpu - a.cpu) * 1e6) / appended),
    relayCores: Number(((b.cpu - a.cpu) / wall).toFixed(2)),
    mainThreadUsPerEvent: Math.round(((b.main - a.main) * 1e6) / appended),
    mainThreadCores: Number(((b.main - a.main) / wall).toFixed(2)),
    relayCpuByThread: cpuByThread(pid, a.threads, b.threads, appended),
    eventLoopUtilization: Number(((b.m.busySeconds - a.m.busySeconds) / wall).toFixed(2)),
    p50IngestToDurableMs: quantile(a.m.latency, b.m.latency, 0.5) * 1000,
    p99IngestToDurableMs: quantile(a.m.latency, b.m.latency, 0.99) * 1000,
    peakRssMb: Math.round(peakRss / 1024 / 1024),
    simCpuUsPerEvent: Math.round(((b.sim - a.sim) * 1e6) / (b.net - a.net)),
    consumerCpuUsPerEvent: Math.round(((b.consumerCpu - a.consumerCpu) * 1e6) / (b.net - a.net)),
    consumersClosed: b.c.closed,
    identityMissPercent: Number(
      (
        (100 * (b.m.identityMisses - a.m.identityMisses)) /
        Math.max(1, b.m.identityMisses - a.m.identityMisses + b.m.identityHits - a.m.identityHits)
      ).toFixed(1),
    ),
    verifiedWhereReadPercent: Number(
      (
        (100 * (b.m.whereRead - a.m.whereRead)) /
        Math.max(1, b.m.identityMisses - a.m.identityMisses + b.m.identityHits - a.m.identityHits)
      ).toFixed(1),
    ),
    machineBusyCores: Number(
      (
        ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) *
        availableParallelism()
      ).toFixed(2),
    ),
    stealPercent: Number(
      ((100 * (b.machine.steal - a.machine.steal)) / (b.machine.total - a.machine.total)).toFixed(1),
    ),
  };
  log(
    `offered ${result.offeredPerSec}/s, delivered ${result.deliveredPerSec}/s (kept up: ${keptUp}), ` +
      `relay CPU ${result.relayCpuUsPerEvent} µs/event (${result.relayCores} cores), ` +
      `main thread ${result.mainThreadUsPerEvent} µs/event (${result.mainThreadCores} cores, ELU ${result.eventLoopUtilization}), ` +
      `p50/p99 ingest→durable ≤ ${result.p50IngestToDurableMs}/${result.p99IngestToDurableMs} ms, ` +
      `RSS ${result.peakRssMb} MB, load ${result.load.toFixed(1)}; ` +
      `network ${result.simCpuUsPerEvent} µs/event, consumers ${result.consumerCpuUsPerEvent} µs/event; ` +
      `machine ${result.machineBusyCores} cores busy, steal ${result.stealPercent} %; ` +
      `identity cache missed at admission for ${result.identityMissPercent} % of commits, ` +
      `${result.verifiedWhereReadPercent} % verified on the thread that read them`,
  );
  const t = result.relayCpuByThread;
  log(
    `relay CPU µs/event by thread: main ${t.main}, busiest others ${t.busiest.join(', ')} ` +
      `(the verify workers first), all other threads ${t.rest}`,
  );
  const txt = dns.queries.filter((q) => q.startsWith('TXT ')).length;
  const metricsText = await (await fetch(`http://127.0.0.1:${relay.metricsPort}/metrics`)).text();
  const unverified =
    /relay_validation_account_events_total\{event="unverified-handle"\} (\d+)/.exec(metricsText)?.[1] ?? '0';
  log(`handle checks: ${txt} TXT queries to the simulated DNS, ${unverified} handles left unverified`);
  console.log(JSON.stringify(result));
} finally {
  consumers?.send({ type: 'exit' });
  const profileDir = values.profile ?? values['profile-threads'];
  if (profileDir && relay) {
    // a clean exit writes the profiles
    relay.child.kill('SIGTERM');
    await relay.exited;
    log(`CPU profiles written to ${profileDir}`);
  }
  relay?.child.kill('SIGKILL');
  await net.stop().catch(() => {});
  await dns.close();
  rmSync(dataDir, { recursive: true, force: true });
}
process.exit(0);
