// The repo digest pool (worker threads with a heap cap and a deadline) and the
// RepoFetcher on top of it (getRepo with byte/block limits, a concurrency
// bound, counted outcomes), against a simulated PDS on loopback.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { inflateRepoCar, malformRepoCar, padRepoCar } from '../../sim/hostile-repo.ts';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { SimRepo } from '../../sim/repo.ts';
import {
  REPO_WORKER_FIXTURE_URL,
  type RepoWorkerFixtureData,
} from '../../test/support/repo-worker-fixture.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createSafeFetcher, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { Keypair, type PublicKey } from '../protocol/keys.ts';
import { RepoCarError } from '../protocol/repo-car.ts';
import { TidClock } from '../protocol/tid.ts';
import { RepoDigestPool, RepoWorkerError } from './repo-digest.ts';
import { RepoFetchError, RepoFetcher } from './repo-fetch.ts';

const KEY = Keypair.fromPrivateKey('k256', new Uint8Array(32).fill(5));

function carOf(did: string, collections: string[]): Uint8Array {
  const repo = new SimRepo(did, KEY, new TidClock({ clockId: 4 }));
  repo.applyWrites(collections.map((collection) => ({ action: 'create' as const, collection, rkey: 'k' })));
  return repo.exportCar();
}

const opts = (did: string) => ({ did, maxBytes: 1 << 26, maxBlocks: 100_000, key: KEY.publicKey });
const hostile = (data: Omit<Extract<RepoWorkerFixtureData, { mode: 'hostile' }>, 'mode'>) => ({
  url: REPO_WORKER_FIXTURE_URL,
  data: { mode: 'hostile', ...data } satisfies RepoWorkerFixtureData,
});

describe('RepoDigestPool', () => {
  it('reads a CAR in a worker: a whole buffer is transferred, a view into a larger one copied', async () => {
    const pool = new RepoDigestPool({ workers: 1, heapMb: 64 });
    try {
      const car = carOf('did:plc:a', ['a.b.c', 'd.e.f']);
      const d = await pool.digest(car, opts('did:plc:a'));
      assert.deepEqual(d.collections, ['a.b.c', 'd.e.f']);
      assert.equal(d.signature, 'ok');
      assert.equal(car.byteLength, 0, 'the buffer moved to the worker, not copied');
      const big = new Uint8Array(100_000);
      const inner = carOf('did:plc:b', ['x.y.z']);
      big.set(inner, 10);
      const view = big.subarray(10, 10 + inner.length);
      assert.deepEqual((await pool.digest(view, opts('did:plc:b'))).collections, ['x.y.z']);
      assert.equal(view.byteLength, inner.length, "a view's buffer stays with its owner");
      await assert.rejects(pool.digest(carOf('did:plc:c', []), opts('did:plc:other')), (err: Error) => {
        assert.ok(err instanceof RepoCarError);
        assert.equal(err.reason, 'wrong-did');
        return true;
      });
      assert.equal(pool.started, 1, 'one worker served all three');
    } finally {
      await pool.close();
    }
  });

  it('runs its workers at the configured nice value (Linux), the rest of the process as it was', async (t) => {
    if (process.platform !== 'linux') return t.skip('thread nice values are read from /proc');
    const niceOf = (stat: string) => Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    const threadNices = () =>
      readdirSync('/proc/self/task').map((tid) =>
        niceOf(readFileSync(`/proc/self/task/${tid}/stat`, 'latin1')),
      );
    const before = threadNices();
    const pool = new RepoDigestPool({ workers: 1, heapMb: 64, nice: 7 });
    try {
      await pool.digest(carOf('did:plc:n', ['a.b.c']), opts('did:plc:n'));
      const after = threadNices();
      assert.equal(
        after.filter((n) => n === 7).length - before.filter((n) => n === 7).length,
        1,
        'one thread at nice 7',
      );
      assert.equal(
        niceOf(readFileSync('/proc/thread-self/stat', 'latin1')),
        before[0],
        'the main thread unchanged',
      );
    } finally {
      await pool.close();
    }
  });

  it('a worker that exhausts its heap fails only its job; the next job gets a fresh worker', async () => {
    const pool = new RepoDigestPool({ workers: 1, heapMb: 32, worker: hostile({ oom: ['did:plc:oom'] }) });
    try {
      const queued = pool.digest(carOf('did:plc:ok', ['a.b.c']), opts('did:plc:ok'));
      await assert.rejects(pool.digest(carOf('did:plc:oom', []), opts('did:plc:oom')), (err: Error) => {
        assert.ok(err instanceof RepoWorkerError, String(err));
        assert.equal(err.reason, 'worker-failed');
        assert.match(err.message, /memory/i);
        return true;
      });
      assert.deepEqual((await queued).collections, ['a.b.c']);
      const after = await pool.digest(carOf('did:plc:ok', ['a.b.c']), opts('did:plc:ok'));
      assert.deepEqual(after.collections, ['a.b.c']);
      assert.ok(pool.started >= 2, 'a new worker took over');
    } finally {
      await pool.close();
    }
  });

  it('a job past its deadline ends its worker; the jobs behind it still run', async () => {
    const pool = new RepoDigestPool({
      workers: 1,
      heapMb: 64,
      timeoutMs: 300,
      worker: hostile({ hang: ['did:plc:hang'] }),
    });
    try {
      const hung = pool.digest(carOf('did:plc:hang', []), opts('did:plc:hang'));
      const behind = pool.digest(carOf('did:plc:ok', ['a.b.c']), opts('did:plc:ok'));
      assert.equal(pool.queued, 1);
      await assert.rejects(hung, (err: Error) => err instanceof RepoWorkerError && err.reason === 'timeout');
      assert.deepEqual((await behind).collections, ['a.b.c']);
    } finally {
      await pool.close();
    }
  });

  it('close fails running and queued jobs and refuses new ones', async () => {
    const pool = new RepoDigestPool({ workers: 1, heapMb: 64, worker: hostile({ hang: ['did:plc:hang'] }) });
    const jobs = [
      pool.digest(carOf('did:plc:hang', []), opts('did:plc:hang')),
      pool.digest(carOf('did:plc:ok', []), opts('did:plc:ok')),
    ].map((p) => p.catch((err: unknown) => err));
    await waitFor(() => pool.running === 1 && pool.queued === 1, 'one job in the worker, one queued');
    await pool.close();
    const late = await pool.digest(new Uint8Array(1), opts('did:plc:x')).catch((err: unknown) => err);
    for (const err of [...(await Promise.all(jobs)), late])
      assert.ok(err instanceof RepoWorkerError && err.reason === 'closed', String(err));
  });
});

describe('RepoFetcher', () => {
  let plc: SimPlc;
  let pds: SimPds;
  let fetcher: SafeFetcher;
  let did: string;
  let key: PublicKey;

  before(async () => {
    plc = await SimPlc.start();
    pds = await SimPds.start({ plc, name: 'pds0' });
    fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    const account = pds.createAccount();
    did = account.did;
    key = account.signer.publicKey;
    pds.writeRecords(did, [{ action: 'create', collection: 'app.bsky.feed.post', rkey: '3aaaaaaaaaa22' }]);
  });

  after(async () => {
    fetcher.close();
    await pds.stop();
    await plc.stop();
  });

  it('returns the digest only and counts every outcome by purpose and result', async () => {
    const registry = new Registry();
    const repos = new RepoFetcher({ fetcher, maxBytes: 4 << 20, maxBlocks: 50_000, registry });
    try {
      const repo = await repos.fetchRepo(did, pds.url, { purpose: 'resync', key });
      const head = pds.account(did).repo.head();
      assert.equal(repo?.rev, head?.rev);
      assert.equal(repo?.commitCid.$link, head?.commitCid.$link);
      assert.equal(repo?.dataCid.$link, head?.dataCid.$link);
      assert.deepEqual(repo?.collections, ['app.bsky.feed.post']);
      assert.equal(repo?.signature, 'ok');
      assert.equal(
        await repos.fetchRepo('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa', pds.url, { purpose: 'cleaner' }),
        null,
      );
      const failures: [(real: Uint8Array) => Uint8Array, string][] = [
        [(real) => inflateRepoCar(real, 5 << 20), 'too-large'],
        [(real) => padRepoCar(real, 50_001), 'too-many-blocks'],
        [(real) => malformRepoCar(real, 'hash-mismatch'), 'bad-car'],
      ];
      for (const [make, reason] of failures) {
        pds.hostileRepos.set(did, make);
        await assert.rejects(repos.fetchRepo(did, pds.url, { purpose: 'backfill' }), (err: Error) => {
          assert.ok(err instanceof RepoFetchError, String(err));
          assert.equal(err.reason, reason);
          assert.ok(err.permanent);
          return true;
        });
      }
      pds.hostileRepos.delete(did);
      await assert.rejects(
        repos.fetchRepo(did, pds.url, { purpose: 'sync-recompute', key: Keypair.generate('p256').publicKey }),
        (err: Error) => err instanceof RepoFetchError && err.reason === 'bad-signature',
      );
      const down = await repos
        .fetchRepo(did, 'http://127.0.0.1:1', { purpose: 'resync' })
        .catch((err: unknown) => err);
      assert.ok(down instanceof RepoFetchError && down.reason === 'fetch-failed' && !down.permanent);
      const text = await registry.metrics();
      for (const line of [
        'relay_repo_fetches_total{purpose="resync",result="ok"} 1',
        'relay_repo_fetches_total{purpose="cleaner",result="not-found"} 1',
        'relay_repo_fetches_total{purpose="backfill",result="too-large"} 1',
        'relay_repo_fetches_total{purpose="backfill",result="too-many-blocks"} 1',
        'relay_repo_fetches_total{purpose="backfill",result="bad-car"} 1',
        'relay_repo_fetches_total{purpose="sync-recompute",result="bad-signature"} 1',
        'relay_repo_fetches_total{purpose="resync",result="fetch-failed"} 1',
      ])
        assert.ok(text.includes(line), line);
    } finally {
      await repos.close();
    }
  });

  it('a repo that exhausts the worker heap is a counted failure, and the relay goes on', async () => {
    const registry = new Registry();
    const repos = new RepoFetcher({ fetcher, workerHeapMb: 32, registry, worker: hostile({ oom: [did] }) });
    try {
      await assert.rejects(
        repos.fetchRepo(did, pds.url, { purpose: 'resync' }),
        (err: Error) => err instanceof RepoFetchError && err.reason === 'worker-failed' && err.permanent,
      );
      assert.match(
        await registry.metrics(),
        /relay_repo_fetches_total\{purpose="resync",result="worker-failed"\} 1/,
      );
    } finally {
      await repos.close();
    }
  });

  it('downloads in the worker: the main thread only resolves and checks each host, and a refused address is never dialed', async () => {
    const port = Number(new URL(pds.url).port);
    const lookups: string[] = [];
    const ruled = createSafeFetcher({
      allowInsecure: true,
      allowedPorts: [port],
      lookup: async (host) => {
        lookups.push(host);
        return [{ address: host === 'pds.test' ? '127.0.0.1' : '10.1.2.3', family: 4 }];
      },
      // loopback is the simulated PDS here; everything else private is refused as usual
      addressPolicy: (a) => (a === '127.0.0.1' ? undefined : 'private'),
    });
    const mainThreadOnly = (): never => {
      throw new Error('a getRepo body was requested on the main thread');
    };
    const guarded: SafeFetcher = {
      request: mainThreadOnly,
      getJson: mainThreadOnly,
      getText: mainThreadOnly,
      close: () => ruled.close(),
      workerRules: () =>
        ruled.workerRules?.() as NonNullable<ReturnType<NonNullable<SafeFetcher['workerRules']>>>,
    };
    const repos = new RepoFetcher({ fetcher: guarded });
    try {
      const repo = await repos.fetchRepo(did, `http://pds.test:${port}`, { purpose: 'resync', key });
      assert.deepEqual(repo?.collections, ['app.bsky.feed.post']);
      assert.deepEqual(lookups, ['pds.test']);
      await assert.rejects(
        repos.fetchRepo(did, `http://internal.test:${port}`, { purpose: 'resync' }),
        (err: Error) => {
          assert.ok(err instanceof RepoFetchError && err.reason === 'fetch-failed', String(err));
          assert.match(err.message, /refused .*address is private \(10\.1\.2\.3\)/);
          return true;
        },
      );
      await assert.rejects(
        repos.fetchRepo(did, 'http://pds.test:80', { purpose: 'resync' }),
        /port 80 not allowed/,
      );
      const aborted = new AbortController();
      pds.xrpcHolds.hold('com.atproto.sync.getRepo');
      const held = repos.fetchRepo(did, `http://pds.test:${port}`, {
        purpose: 'backfill',
        signal: aborted.signal,
      });
      await waitFor(() => pds.xrpcHolds.waiting('com.atproto.sync.getRepo') === 1, 'the download started');
      aborted.abort();
      await assert.rejects(
        held,
        (err: Error) => err instanceof RepoFetchError && /aborted/.test(err.message),
      );
    } finally {
      pds.xrpcHolds.release('com.atproto.sync.getRepo');
      await repos.close();
      ruled.close();
    }
  });

  it('runs at most `concurrency` fetches at once; the others wait their turn', async () => {
    const repos = new RepoFetcher({ fetcher, concurrency: 2 });
    const method = 'com.atproto.sync.getRepo';
    pds.xrpcHolds.hold(method);
    try {
      const all = [1, 2, 3].map(() => repos.fetchRepo(did, pds.url, { purpose: 'backfill' }));
      await waitFor(() => pds.xrpcHolds.waiting(method) === 2, 'two downloads started');
      assert.equal(repos.inFlight, 2);
      assert.equal(repos.queued, 1, 'the third waits for a slot, not downloading');
      pds.xrpcHolds.release(method);
      for (const p of all) assert.deepEqual((await p)?.collections, ['app.bsky.feed.post']);
      assert.equal(repos.inFlight, 0);
    } finally {
      pds.xrpcHolds.release(method);
      await repos.close();
    }
  });
});
