// A hostile PDS against the relay's resync (issue 12, repo CARs from
// getRepo): repos padded with many tiny blocks, over the size limits, or
// malformed must be counted resync failures that cost the relay neither its
// event loop nor its memory, while other hosts' events keep flowing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { subscribe } from '../../sim/consumer.ts';
import { inflateRepoCar, padRepoCar } from '../../sim/hostile-repo.ts';
import { SimNetwork } from '../../sim/network.ts';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { crawlAll, startTestRelay } from '../../test/support/relay-harness.ts';
import { REPO_WORKER_FIXTURE_URL } from '../../test/support/repo-worker-fixture.ts';
import { tempDir } from '../../test/support/temp.ts';
import { startHarness } from '../../test/support/validator-harness.ts';
import { waitFor } from '../../test/support/wait.ts';
import { createSafeFetcher, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { PublicKey } from '../protocol/keys.ts';
import type { Relay } from '../relay.ts';
import { RepoFetcher } from './repo-fetch.ts';
import { ResyncError, Resyncer } from './resync.ts';

describe('Resyncer against a hostile PDS', () => {
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
    pds.writeRecord(did);
  });

  after(async () => {
    fetcher.close();
    await pds.stop();
    await plc.stop();
  });

  const resyncer = () =>
    new Resyncer({
      fetcher,
      perSecond: 100,
      concurrency: 4,
      maxQueued: 10,
      timeoutMs: 60_000,
      maxRepoBytes: 8 * 1024 * 1024,
      maxRepoBlocks: 100_000,
    });

  it('refuses a repo with more blocks than the limit', async () => {
    pds.hostileRepos.set(did, (real) => padRepoCar(real, 120_000));
    const r = resyncer();
    try {
      await assert.rejects(r.fetchHead(did, pds.url, key), (err: Error) => {
        assert.ok(err instanceof ResyncError);
        assert.match(err.message, /too many blocks|too-many-blocks/);
        return true;
      });
    } finally {
      r.close();
      pds.hostileRepos.delete(did);
    }
  });

  it('refuses a repo over the byte limit', async () => {
    pds.hostileRepos.set(did, (real) => inflateRepoCar(real, 9 * 1024 * 1024));
    const r = resyncer();
    try {
      await assert.rejects(r.fetchHead(did, pds.url, key), /too large|too-large|exceeds/);
    } finally {
      r.close();
      pds.hostileRepos.delete(did);
    }
  });

  it('accepts a repo padded with tiny blocks within the limits and returns only the head', async () => {
    pds.hostileRepos.set(did, (real) => padRepoCar(real, 90_000));
    const r = resyncer();
    try {
      const head = await r.fetchHead(did, pds.url, key);
      const real = pds.account(did).repo.head();
      assert.equal(head.rev, real?.rev);
      assert.equal(head.commitCid.$link, real?.commitCid.$link);
      assert.equal(head.dataCid.$link, real?.dataCid.$link);
      // the main thread gets the head and the collections, never the repo itself
      assert.ok(
        !Object.values(head).some((v) => v instanceof Uint8Array && v !== head.commitBlock),
        'no CAR bytes handed back',
      );
      assert.deepEqual(head.collections, pds.account(did).repo.collections());
    } finally {
      r.close();
      pds.hostileRepos.delete(did);
    }
  });
});

describe('Validator resync of a huge repo', () => {
  it("reads it in a worker: another host's events pass while the read is in progress", async () => {
    // The fixture worker holds each repo read until the test opens the gate,
    // so "in progress" is a state the test controls, not a race it hopes to win.
    const gate = new Int32Array(new SharedArrayBuffer(8));
    let repos: RepoFetcher | undefined;
    const h = await startHarness({
      wrapFetcher: (fetcher) => {
        repos = new RepoFetcher({
          fetcher,
          worker: { url: REPO_WORKER_FIXTURE_URL, data: { mode: 'gate', gate: gate.buffer } },
        });
        return repos;
      },
    });
    try {
      const [hostile, honest] = h.net.hosts;
      const victim = h.net.createAccount(0);
      const other = h.net.createAccount(1);
      await h.submitAll([...h.takeFrames(0), ...h.takeFrames(1)]);
      // 300,000 junk blocks: the old main-thread parse blocked the event loop ~1 s for these
      hostile.hostileRepos.set(victim, (real) => padRepoCar(real, 300_000));
      hostile.injectFault('brokenPrevData');
      const broken = hostile.writeRecord(victim);
      await h.submitAll(h.takeFrames(0)); // the chain break; the resync runs behind it
      await waitFor(() => Atomics.load(gate, 1) === 1, 'the repo read started in the worker');

      const revs = [1, 2, 3].map(() => honest.writeRecord(other).rev);
      await h.submitAll(h.takeFrames(1));
      const during = await h.output();
      const relayed = during.filter((e) => e.t === '#commit' && e.body.repo === other).map((e) => e.body.rev);
      for (const rev of revs) assert.ok(relayed.includes(rev), `commit ${rev} of the other host passed`);
      assert.equal(h.validator.metrics.resyncs.ok, 0, 'the resync is still reading');
      assert.ok(!during.some((e) => e.t === '#sync'), 'no #sync yet');
      assert.equal(repos?.digests.running, 1);

      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      await waitFor(async () => (await h.output()).some((e) => e.t === '#sync'), 'the #sync');
      await h.validator.whenIdle();
      assert.equal(h.validator.metrics.resyncs.ok, 1);
      const sync = (await h.output()).find((e) => e.t === '#sync');
      assert.equal(sync?.body.rev, broken.rev, 'the #sync carries the head read in the worker');
      assert.equal((await h.store.getAccountByDid(victim))?.status, 'active');
    } finally {
      Atomics.store(gate, 0, 1);
      await h.close();
      await repos?.close();
    }
  });
});

describe('relay resync against a hostile PDS, end to end', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay;

  before(async () => {
    dataDir = tempDir('atrelay-hostile-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 1, seed: 12 });
    relay = await startTestRelay(net, dataDir, { RELAY_MAX_REPO_BLOCKS: '50000' });
    await crawlAll(relay, net);
  });

  after(async () => {
    await relay.stop();
    await net.stop();
  });

  it('a repo over the block limit is a counted resync failure while the other host keeps flowing', async () => {
    const [victim, other] = [net.accounts[0].did, net.accounts[1].did];
    const hostile = net.hostOf(victim);
    const honest = net.hostOf(other);
    assert.notEqual(hostile, honest);
    const consumer = await subscribe(`ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos`);
    try {
      hostile.hostileRepos.set(victim, (real) => padRepoCar(real, 60_000));
      hostile.xrpcHolds.hold('com.atproto.sync.getRepo');
      hostile.injectFault('brokenPrevData');
      hostile.writeRecord(victim);
      await waitFor(() => hostile.xrpcHolds.waiting('com.atproto.sync.getRepo') === 1, 'the resync fetch');
      hostile.xrpcHolds.release('com.atproto.sync.getRepo');
      const revs = [honest.writeRecord(other).rev, honest.writeRecord(other).rev];
      const relayed = () =>
        consumer.frames
          .map((f) => f.frame?.body as { repo?: string; rev?: string } | undefined)
          .filter((b) => b?.repo === other)
          .map((b) => b?.rev);
      await waitFor(() => revs.every((r) => relayed().includes(r)), "the other host's commits");
      const metric = async (name: string) => (await relay.registry.getSingleMetricAsString(name)) ?? '';
      await waitFor(
        async () => /result="failed"} 1$/m.test(await metric('relay_validation_resyncs_total')),
        'the counted resync failure',
      );
      assert.match(
        await metric('relay_repo_fetches_total'),
        /relay_repo_fetches_total\{purpose="resync",result="too-many-blocks"\} 1$/m,
      );
      const account = await relay.store?.getAccountByDid(victim);
      assert.equal(account?.status, 'desynchronized');
    } finally {
      consumer.close();
    }
  });
});
