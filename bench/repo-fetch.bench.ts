// Repo CARs from getRepo (issue 12): what reading a hostile repo costs the
// relay's main thread. A simulated PDS serves an account's real repo padded
// with N tiny junk blocks (sim/hostile-repo.ts); the repo is fetched over
// loopback and read
// - "main": on the main thread, as the resync did before (readCar into a
//   BlockMap, decode the commit, check the signature);
// - "worker": through the Resyncer and its RepoFetcher (read in a worker).
// For each, the longest event-loop delay seen (perf_hooks.monitorEventLoopDelay,
// plus a 2 ms interval's largest gap) and the main thread's heap growth. Then
// the worker-side read time of realistic repos (unique records in 6
// collections) with the digest function alone.
//
// Run: node --expose-gc --import tsx bench/repo-fetch.bench.ts [--blocks 300000,1000000] [--records 100000,300000]
import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { padRepoCar } from '../sim/hostile-repo.ts';
import { SimPds } from '../sim/pds.ts';
import { SimPlc } from '../sim/plc.ts';
import { SimRepo } from '../sim/repo.ts';
import { readCar } from '../src/protocol/car.ts';
import { decodeCommit, unsignedCommitBytes } from '../src/protocol/commit.ts';
import { createSafeFetcher } from '../src/protocol/identity/safe-fetch.ts';
import { Keypair, verifySignature } from '../src/protocol/keys.ts';
import { digestRepoCar } from '../src/protocol/repo-car.ts';
import { TidClock } from '../src/protocol/tid.ts';
import { Resyncer } from '../src/validate/resync.ts';

const { values: args } = parseArgs({
  options: {
    blocks: { type: 'string', default: '300000,1000000' },
    records: { type: 'string', default: '100000,300000' },
  },
});
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const mb = (n: number) => Math.round(n / 1048576);

const plc = await SimPlc.start();
const pds = await SimPds.start({ plc, name: 'bench' });
const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
const account = pds.createAccount();
pds.writeRecord(account.did);
const url = `${pds.url}/xrpc/com.atproto.sync.getRepo?did=${encodeURIComponent(account.did)}`;
const resyncer = new Resyncer({
  fetcher,
  perSecond: 100,
  concurrency: 1,
  maxQueued: 10,
  timeoutMs: 120_000,
  maxRepoBytes: 1 << 30,
  maxRepoBlocks: 10_000_000,
});

async function measure(read: () => Promise<unknown>) {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  let peak = heap0;
  let last = performance.now();
  let gap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 2);
  const eld = monitorEventLoopDelay({ resolution: 5 });
  eld.enable();
  const t0 = performance.now();
  await read();
  const ms = performance.now() - t0;
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  await new Promise((r) => setTimeout(r, 30)); // let a blocked timer fire and be counted
  eld.disable();
  clearInterval(tick);
  return {
    ms: Math.round(ms),
    eventLoopDelayMaxMs: Math.round(Math.max(eld.max / 1e6, gap)),
    heapGrowthMb: mb(peak - heap0),
  };
}

console.log(
  `load average ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}`,
);
await resyncer.fetchHead(account.did, pds.url, account.signer.publicKey); // start the repo worker
for (const n of args.blocks.split(',').map(Number)) {
  const car = padRepoCar(pds.account(account.did).repo.exportCar(), n);
  pds.hostileRepos.set(account.did, car);
  const main = await measure(async () => {
    const body = (await fetcher.request(url, { maxResponseBytes: 1 << 30, timeoutMs: 120_000 })).body;
    const parsed = readCar(body, { maxBytes: 1 << 30, maxBlocks: 10_000_000 });
    const commit = decodeCommit(parsed.blocks.get(parsed.roots[0]) as Uint8Array);
    verifySignature(account.signer.publicKey, unsignedCommitBytes(commit), commit.sig);
    return parsed.blocks.size;
  });
  const worker = await measure(() => resyncer.fetchHead(account.did, pds.url, account.signer.publicKey));
  console.log(JSON.stringify({ blocks: n, carMb: +(car.length / 1048576).toFixed(1), main, worker }));
}

const collections = ['like', 'post', 'follow', 'repost', 'block', 'profile'].map((c) => `app.bsky.test.${c}`);
for (const n of args.records.split(',').map(Number)) {
  const key = Keypair.generate('k256');
  const repo = new SimRepo('did:plc:bench', key, new TidClock({ clockId: 1 }));
  for (let i = 0; i < n; i += 200) {
    repo.applyWrites(
      Array.from({ length: Math.min(200, n - i) }, (_, j) => ({
        action: 'create' as const,
        collection: collections[(i + j) % collections.length],
        rkey: `3k${String(i + j).padStart(11, 'a')}`,
        record: { text: `${'x'.repeat(90)}${i + j}`, createdAt: new Date().toISOString() },
      })),
    );
  }
  const car = repo.exportCar();
  const t0 = performance.now();
  const d = digestRepoCar(car, {
    did: 'did:plc:bench',
    maxBytes: 1 << 30,
    maxBlocks: 10_000_000,
    key: key.publicKey,
  });
  const ms = performance.now() - t0;
  console.log(
    JSON.stringify({
      records: n,
      carMb: +(car.length / 1048576).toFixed(1),
      blocks: d.blocks,
      readMs: Math.round(ms),
    }),
  );
}

resyncer.close();
fetcher.close();
await pds.stop();
await plc.stop();
