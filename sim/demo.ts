// `atrelay demo` / `npm run demo`: the relay working, in one command. Starts
// the simulated network (sim/network.ts: a PLC directory and a few PDS hosts
// on loopback, generating events at a steady rate) and a real relay wired to
// it (its PLC, the sim's handle map, loopback hosts allowed, an admin
// password, a throw-away data folder), adds every host through the admin
// API, prints the firehose, XRPC, metrics and admin URLs, then subscribes to
// the relay's own firehose and prints a line every few seconds with what it
// relayed, until Ctrl-C (or --duration). It lives in sim/ because src/ may
// not import the simulator; it is compiled with the rest into dist/ and needs
// no development dependency (ws, the only one it uses beyond src/, is a
// runtime dependency), so it runs after `npm ci --omit=dev` too.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { loadConfig } from '../src/config/config.ts';
import { createLogger } from '../src/log.ts';
import { decodeFrame } from '../src/protocol/frames.ts';
import { Relay } from '../src/relay.ts';
import { SimNetwork } from './network.ts';
import { simHandleResolver } from './plc.ts';

export const DEMO_USAGE = `usage: atrelay demo [--hosts N] [--accounts N] [--rate EVENTS_PER_S] [--port P] [--duration S] [--log-level L]

Starts a simulated atproto network (PLC directory + PDS hosts on loopback) and a
relay crawling it, prints the relay's URLs and a line every few seconds with
the events its firehose delivers. Data goes to a temporary folder, removed at exit.

  --hosts N        simulated PDS hosts (default 3)
  --accounts N     accounts over all hosts (default 30)
  --rate N         events per second the hosts generate (default 20)
  --port P         relay port (default 2470; 0 picks a free one)
  --duration S     stop after S seconds (default: run until Ctrl-C)
  --log-level L    the relay's log level (default warn; e.g. info,ingest=debug)`;

interface DemoOptions {
  hosts: number;
  accounts: number;
  rate: number;
  port: number;
  duration?: number;
  logLevel: string;
}

function intArg(name: string, raw: string | undefined, min: number, max: number, def: number): number {
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max)
    throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return n;
}

function parseDemoArgs(argv: readonly string[]): DemoOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      hosts: { type: 'string' },
      accounts: { type: 'string' },
      rate: { type: 'string' },
      port: { type: 'string' },
      duration: { type: 'string' },
      'log-level': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  const hosts = intArg('hosts', values.hosts, 1, 50, 3);
  return {
    hosts,
    accounts: intArg('accounts', values.accounts, hosts, 100_000, Math.max(30, hosts)),
    rate: intArg('rate', values.rate, 0, 10_000, 20),
    port: intArg('port', values.port, 0, 65535, 2470),
    duration: values.duration === undefined ? undefined : intArg('duration', values.duration, 1, 1e9, 0),
    logLevel: values['log-level'] ?? 'warn',
  };
}

/** Runs the demo; resolves with the exit code once it stopped (signal or --duration). */
export async function runDemo(argv: readonly string[]): Promise<number> {
  let opts: DemoOptions | 'help';
  try {
    opts = parseDemoArgs(argv);
  } catch (err) {
    console.error(`atrelay demo: ${(err as Error).message}\n${DEMO_USAGE}`);
    return 2;
  }
  if (opts === 'help') {
    console.log(DEMO_USAGE);
    return 0;
  }
  const started = performance.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'atrelay-demo-'));
  const password = randomBytes(9).toString('base64url');
  const net = await SimNetwork.start({ hosts: opts.hosts, accounts: opts.accounts, seed: 'demo' });
  let relay: Relay | undefined;
  let firehose: WebSocket | undefined;
  let ticker: NodeJS.Timeout | undefined;
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (ticker) clearInterval(ticker);
      firehose?.terminate();
      net.stopGenerator();
      await relay?.stop().catch(() => {});
      await net.stop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };
  try {
    const config = loadConfig({
      env: {
        RELAY_PORT: String(opts.port),
        RELAY_METRICS_PORT: '0',
        RELAY_BIND: '127.0.0.1',
        RELAY_DATA_DIR: dataDir,
        RELAY_PLC_URL: net.plc.url,
        RELAY_UPSTREAM: 'none',
        RELAY_ALLOW_INSECURE_HOSTS: 'true',
        RELAY_ADMIN_PASSWORD: password,
        RELAY_EVENTLOG_FSYNC: 'false',
        RELAY_LOG_LEVEL: opts.logLevel,
      },
    });
    relay = new Relay(config, createLogger(config.logLevel, { format: config.logFormat }), {
      handleResolver: { resolve: simHandleResolver(net.plc) },
    });
    await relay.start();
    const base = `http://127.0.0.1:${relay.port}`;
    for (const h of net.hosts) {
      const res = await fetch(`${base}/admin/hosts/add`, {
        method: 'POST',
        headers: { authorization: `Bearer ${password}`, 'content-type': 'application/json' },
        body: JSON.stringify({ hostname: h.hostname }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`adding ${h.hostname} answered ${res.status}: ${text.slice(0, 200)}`);
    }
    if (opts.rate > 0) net.startGenerator(opts.rate);

    const wsBase = base.replace(/^http/, 'ws');
    const dashboard = await hasDashboard(base, password);
    const lines = [
      '',
      `atrelay demo: ${opts.hosts} simulated PDS hosts, ${opts.accounts} accounts, ${opts.rate} events/s`,
      '',
      `  firehose   ${wsBase}/xrpc/com.atproto.sync.subscribeRepos`,
      `  XRPC       ${base}/xrpc/com.atproto.sync.listRepos   (also listHosts, getRepoStatus, getLatestCommit, ...)`,
      `  stats      ${base}/_stats`,
      `  metrics    http://127.0.0.1:${relay.metricsPort}/metrics`,
      `  admin API  ${base}/admin/hosts   (password: ${password}; try: atrelay admin host list --admin ${base} --token ${password})`,
      ...(dashboard ? [`  dashboard  ${base}/admin/   (user admin, password ${password})`] : []),
      `  PLC        ${net.plc.url}   hosts: ${net.hosts.map((h) => h.url).join(' ')}`,
      '',
      'Ctrl-C stops it. Events the relay delivered on its firehose:',
    ];
    console.log(lines.join('\n'));

    // The relay's own firehose, as any consumer sees it.
    const counts = new Map<string, number>();
    let total = 0;
    let lastSeq = 0;
    let lastDid = '';
    let firstAt = 0;
    firehose = new WebSocket(`${wsBase}/xrpc/com.atproto.sync.subscribeRepos`, {
      perMessageDeflate: false,
      maxPayload: 8 * 1024 * 1024,
    });
    firehose.on('error', (err) => console.error(`firehose: ${err.message}`));
    firehose.on('message', (data: Buffer) => {
      try {
        const frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        if (frame.header.op !== 1) return;
        total++;
        if (firstAt === 0) firstAt = performance.now();
        counts.set(frame.header.t, (counts.get(frame.header.t) ?? 0) + 1);
        if (typeof frame.body.seq === 'number') lastSeq = frame.body.seq;
        const did = frame.body.repo ?? frame.body.did;
        if (typeof did === 'string') lastDid = did;
        if (total === 1) {
          console.log(
            `first event ${((firstAt - started) / 1000).toFixed(1)} s after start: ${frame.header.t} seq ${lastSeq} ${lastDid}`,
          );
        }
      } catch {
        counts.set('undecodable', (counts.get('undecodable') ?? 0) + 1);
      }
    });
    let lastTotal = 0;
    let lastTick = performance.now();
    const report = () => {
      const now = performance.now();
      const rate = ((total - lastTotal) * 1000) / Math.max(1, now - lastTick);
      lastTotal = total;
      lastTick = now;
      const byType = [...counts].map(([t, n]) => `${t} ${n}`).join(', ');
      const since = firstAt ? ` (first after ${((firstAt - started) / 1000).toFixed(1)} s)` : '';
      console.log(
        `events ${total}${since}: ${rate.toFixed(1)}/s, seq ${lastSeq}${byType ? `; ${byType}` : ''}${lastDid ? `; last ${lastDid}` : ''}`,
      );
    };
    ticker = setInterval(report, 3000);
    const done = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
      if (opts.duration) setTimeout(resolve, opts.duration * 1000).unref();
    });
    await done;
    report();
    await stop();
    return 0;
  } catch (err) {
    const msg = (err as Error).message;
    console.error(
      `atrelay demo: ${msg}${/EADDRINUSE/.test(msg) ? ' (the port is taken: try --port 0)' : ''}`,
    );
    await stop();
    return 1;
  }
}

/** Whether the relay serves an admin dashboard page at /admin/ (printed only then). */
async function hasDashboard(base: string, password: string): Promise<boolean> {
  try {
    const res = await fetch(`${base}/admin/`, {
      headers: { authorization: `Bearer ${password}` },
      signal: AbortSignal.timeout(5000),
    });
    const type = res.headers.get('content-type') ?? '';
    await res.arrayBuffer();
    return res.ok && type.includes('text/html');
  } catch {
    return false;
  }
}
