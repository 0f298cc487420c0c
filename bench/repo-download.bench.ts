// Repo downloads (issue 12): what a hostile getRepo costs the relay's main
// thread, with the download on the main thread (a fetcher that does not
// lend its rules to the worker: how every download ran before) and in the
// repo worker (the relay's fetcher now). The server runs in a worker thread
// of its own, so its sending does not count against this thread. Two bombs:
// an endless chunked body (cut off at the 128 MiB limit) and a CAR of
// 1,100,000 tiny blocks (45 MB, over the 1,000,000-block limit). For each,
// the main thread's busy time (event-loop utilization, active ms) and the
// wall time until the refusal; modes interleaved, `--runs` times.
//
// Run: node --import tsx bench/repo-download.bench.ts [--runs 3]
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { tinyBlocksCar } from '../sim/hostile-repo.ts';
import { createSafeFetcher, type SafeFetcher } from '../src/protocol/identity/safe-fetch.ts';
import { RepoFetchError, RepoFetcher } from '../src/validate/repo-fetch.ts';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(args.runs);

const blocksCar = tinyBlocksCar(1_100_000);
const SERVER = `
const http = require('node:http');
const { parentPort, workerData } = require('node:worker_threads');
const car = Buffer.from(workerData.car);
const junk = Buffer.alloc(1024 * 1024, 0x6a);
const server = http.createServer((req, res) => {
  if (req.url.includes('endless')) {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car' });
    let sent = 0;
    const more = () => {
      while (sent < 200 && res.write(junk)) sent++;
      if (sent >= 200) res.end(); else res.once('drain', () => { sent++; more(); });
    };
    res.on('error', () => {});
    more();
  } else {
    res.writeHead(200, { 'content-type': 'application/vnd.ipld.car', 'content-length': car.length });
    res.on('error', () => {});
    res.end(car);
  }
});
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port));
`;
const server = new Worker(SERVER, { eval: true, workerData: { car: blocksCar } });
const port = await new Promise<number>((resolve) => server.once('message', resolve));

const ruled = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
/** The same fetcher without workerRules: RepoFetcher downloads on the main thread. */
const mainThread: SafeFetcher = {
  request: (u, o) => ruled.request(u, o),
  getJson: (u, o) => ruled.getJson(u, o),
  getText: (u, o) => ruled.getText(u, o),
  close: () => {},
};
const modes: [string, RepoFetcher][] = [
  ['download on the main thread', new RepoFetcher({ fetcher: mainThread })],
  ['download in the repo worker', new RepoFetcher({ fetcher: ruled })],
];
// start both pools' workers before measuring
for (const [, repos] of modes)
  await repos
    .fetchRepo('did:plc:warm', `http://127.0.0.1:${port}/blocks`, { purpose: 'resync' })
    .catch(() => {});

const results = new Map<string, { activeMs: number[]; wallMs: number[] }>();
for (let run = 0; run < runs; run++) {
  for (const bomb of ['endless', 'blocks']) {
    for (const [mode, repos] of modes) {
      const before = performance.eventLoopUtilization();
      const t0 = performance.now();
      const err = await repos
        .fetchRepo('did:plc:bomb', `http://127.0.0.1:${port}/${bomb}`, { purpose: 'resync' })
        .catch((e: unknown) => e);
      const wallMs = performance.now() - t0;
      const elu = performance.eventLoopUtilization(before);
      if (!(err instanceof RepoFetchError))
        throw new Error(`${bomb}: expected a refusal, got ${String(err)}`);
      const key = `${bomb} (${err.reason}), ${mode}`;
      const r = results.get(key) ?? { activeMs: [], wallMs: [] };
      r.activeMs.push(elu.active);
      r.wallMs.push(wallMs);
      results.set(key, r);
    }
  }
}
const fmt = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' / ');
console.log(`load average ${loadavg()[0].toFixed(1)}, ${runs} runs`);
console.log('| bomb, mode | main thread busy, ms | wall, ms |\n|---|---|---|');
for (const [key, r] of results) console.log(`| ${key} | ${fmt(r.activeMs)} | ${fmt(r.wallMs)} |`);
for (const [, repos] of modes) await repos.close();
ruled.close();
await server.terminate();
