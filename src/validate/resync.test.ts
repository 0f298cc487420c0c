import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Harness, startHarness } from '../../test/support/validator-harness.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { Keypair } from '../protocol/keys.ts';
import type { RuleContext } from './job.ts';
import { ResyncError, Resyncer } from './resync.ts';
import { resyncRepo } from './rules-resync.ts';
import { Validator, type ValidatorOptions } from './validator.ts';

async function withHarness(
  settings: Parameters<typeof startHarness>[0],
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const h = await startHarness(settings);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

describe('resync', () => {
  it('leaves the account desynchronized when the PDS is down, and retries on a later event', () =>
    withHarness({ settings: { resyncRetryMs: 0 } }, async (h) => {
      const host = h.net.hosts[0];
      const did = h.net.createAccount(0);
      await h.submitAll(h.takeFrames(0));
      host.injectFault('brokenPrevData');
      host.writeRecord(did);
      const broken = h.takeFrames(0);
      await host.goOffline();
      await h.submitAll(broken);
      await h.validator.whenIdle();
      const m = h.validator.metrics;
      assert.equal(m.resyncs.failed, 1);
      assert.equal((await h.store.getAccountByDid(did))?.status, 'desynchronized');
      await host.goOnline();
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0)); // dropped as desynchronized; the resync is retried behind it
      await h.validator.whenIdle();
      assert.equal(m.droppedCount('desynchronized'), 1);
      assert.equal(m.resyncs.ok, 1);
      assert.equal((await h.store.getAccountByDid(did))?.status, 'active');
      const next = host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      const out = await h.output();
      assert.equal(out.at(-1)?.body.rev, next.rev);
      assert.deepEqual(
        out.slice(-4).map((e) => e.t),
        ['#account', '#sync', '#account', '#commit'],
      );
    }));

  it('an upstream #sync heals a desynchronized account', () =>
    withHarness({ settings: { resyncRetryMs: 3_600_000 } }, async (h) => {
      const host = h.net.hosts[0];
      const did = h.net.createAccount(0);
      await h.submitAll(h.takeFrames(0));
      host.injectFault('skippedCommit');
      host.writeRecord(did);
      const broken = h.takeFrames(0);
      await host.goOffline();
      await h.submitAll(broken);
      await h.validator.whenIdle();
      await host.goOnline();
      assert.equal(h.validator.metrics.resyncs.failed, 1);
      host.emitSync(did);
      await h.submitAll(h.takeFrames(0));
      await h.validator.whenIdle();
      const account = await h.store.getAccountByDid(did);
      assert.equal(account?.status, 'active');
      const out = await h.output();
      assert.deepEqual(
        out.slice(-2).map((e) => [e.t, e.body.active]),
        [
          ['#sync', undefined],
          ['#account', true],
        ],
      );
      host.writeRecord(did);
      await h.submitAll(h.takeFrames(0));
      assert.equal(h.validator.metrics.passed.get('#commit'), 2);
    }));
});

describe('Resyncer', () => {
  const failingFetcher = (starts: number[]): SafeFetcher => ({
    request: async () => {
      starts.push(performance.now());
      throw new Error('refused');
    },
    getJson: async () => {
      throw new Error('unused');
    },
    getText: async () => {
      throw new Error('unused');
    },
    close: () => {},
  });
  const key = Keypair.generate('k256').publicKey;

  it('rate-limits resync starts with a token bucket and bounds its queue', async () => {
    const starts: number[] = [];
    const r = new Resyncer({
      fetcher: failingFetcher(starts),
      perSecond: 20,
      concurrency: 100,
      maxQueued: 2,
      timeoutMs: 1000,
      maxRepoBytes: 1 << 20,
    });
    const t0 = performance.now();
    // each outcome is expected as soon as its promise exists: a rejection that
    // came before its handler (a busy machine) would be an unhandled rejection
    const burst = Array.from({ length: 20 }, () =>
      assert.rejects(r.fetchHead('did:plc:x', 'http://127.0.0.1:1', key), ResyncError),
    );
    // the bucket holds a burst of 20: all 20 fetches start at once, before anything is awaited
    assert.equal(starts.length, 20, 'the burst starts at once');
    const late = [
      assert.rejects(r.fetchHead('did:plc:y', 'http://127.0.0.1:1', key), ResyncError),
      assert.rejects(r.fetchHead('did:plc:z', 'http://127.0.0.1:1', key), ResyncError),
    ];
    await assert.rejects(r.fetchHead('did:plc:w', 'http://127.0.0.1:1', key), /queue full/);
    await Promise.all([...burst, ...late]);
    assert.equal(starts.length, 22);
    assert.ok(starts[21] - t0 >= 80, `then one per 50 ms (${(starts[21] - t0).toFixed(0)} ms)`);
    r.close();
  });
});

describe('Resyncer budget per host', () => {
  const key = Keypair.generate('k256').publicKey;

  /** A fetcher whose getRepo requests wait until released (then fail), noting each request's host. */
  function heldFetcher() {
    const started: string[] = [];
    const waiting: (() => void)[] = [];
    const fetcher: SafeFetcher = {
      request: (url) => {
        started.push(new URL(url).host);
        return new Promise((_resolve, reject) => waiting.push(() => reject(new Error('refused'))));
      },
      getJson: async () => {
        throw new Error('unused');
      },
      getText: async () => {
        throw new Error('unused');
      },
      close: () => {},
    };
    const releaseAll = () => {
      for (const release of waiting.splice(0)) release();
    };
    return { fetcher, started, releaseAll };
  }

  it("one host's accounts take at most its slots and queue: another host's resync starts at once", async () => {
    const { fetcher, started, releaseAll } = heldFetcher();
    const limited = { deferred: 0, refused: 0 };
    const r = new Resyncer({
      fetcher,
      perSecond: 1000,
      concurrency: 4,
      maxQueued: 100,
      hostConcurrency: 1,
      hostPerSecond: 1000,
      hostMaxQueued: 2,
      onHostLimit: (result) => limited[result]++,
      timeoutMs: 1000,
      maxRepoBytes: 1 << 20,
    });
    try {
      // each settles as its request is released; caught now, checked at the end
      const hostile = [1, 2, 3].map((i) =>
        r.fetchHead(`did:plc:h${i}`, 'http://bad.test:1', key).catch((err: unknown) => err),
      );
      await assert.rejects(
        r.fetchHead('did:plc:h4', 'http://bad.test:1', key),
        /host bad\.test:1 full \(2\)/,
      );
      const good = r.fetchHead('did:plc:g', 'http://good.test:1', key).catch((err: unknown) => err);
      await waitFor(() => started.length === 2, 'the good host started beside the bad one');
      assert.deepEqual(started.sort(), ['bad.test:1', 'good.test:1']);
      assert.equal(r.queued, 2, "the bad host's two others wait for its one slot");
      assert.deepEqual(limited, { deferred: 2, refused: 1 });
      for (let n = 3; n <= 4; n++) {
        releaseAll();
        await waitFor(() => started.length === n, `bad host's resync ${n - 1} started after the one before`);
      }
      releaseAll();
      for (const p of [...hostile, good]) assert.ok((await p) instanceof ResyncError);
      await waitFor(() => r.hostsTracked === 0, 'idle hosts with full budgets are forgotten');
    } finally {
      r.close();
    }
  });

  it("rate-limits each host's starts on its own", async () => {
    const { fetcher, started, releaseAll } = heldFetcher();
    let now = 1_000_000; // the buckets' clock: only the test moves it
    const r = new Resyncer({
      fetcher,
      perSecond: 1000,
      concurrency: 10,
      maxQueued: 100,
      hostConcurrency: 10,
      hostPerSecond: 4,
      timeoutMs: 1000,
      maxRepoBytes: 1 << 20,
      now: () => now,
    });
    try {
      const all = Array.from({ length: 6 }, (_, i) =>
        r.fetchHead(`did:plc:r${i}`, 'http://bad.test:1', key).catch((err: unknown) => err),
      );
      all.push(r.fetchHead('did:plc:other', 'http://good.test:1', key).catch((err: unknown) => err));
      await waitFor(() => started.length === 5, 'a burst of 4 from the bad host and the good one');
      assert.equal(started.filter((h) => h === 'bad.test:1').length, 4, 'the bad host gets its burst only');
      assert.equal(r.queued, 2);
      now += 250; // one token
      await waitFor(() => started.length === 6, 'one more a quarter second later');
      assert.equal(r.queued, 1);
      now += 250;
      await waitFor(() => started.length === 7, 'and the last');
      releaseAll();
      for (const p of all) assert.ok((await p) instanceof ResyncError);
    } finally {
      r.close();
    }
  });
});

describe('Validator resync attempts (lastResync)', () => {
  const noFetcher: SafeFetcher = {
    request: async () => {
      throw new Error('unused');
    },
    getJson: async () => {
      throw new Error('unused');
    },
    getText: async () => {
      throw new Error('unused');
    },
    close: () => {},
  };

  it('forgets attempts older than the retry interval and caps how many it remembers', async () => {
    let now = 0;
    const v = new Validator({
      // no such account: each resync records its attempt, then has nothing to do
      store: { getAccountByDid: async () => undefined } as unknown as ValidatorOptions['store'],
      log: {} as ValidatorOptions['log'],
      identity: {} as ValidatorOptions['identity'],
      handleResolver: { resolve: async () => undefined },
      fetcher: noFetcher,
      config: { resyncRetryMs: 1000 },
      now: () => now,
    });
    // the Validator's rule context, and the attempts it keeps (rules-resync.ts)
    const rules = (v as unknown as { rules: RuleContext }).rules;
    const internals = rules.resyncs as unknown as { lastResync: Map<string, number> };
    const attempt = (did: string) => resyncRepo(rules, { did, jobs: [], parked: false, resyncPending: true });
    try {
      for (let i = 0; i < 500; i++) await attempt(`did:plc:a${i}`);
      assert.equal(internals.lastResync.size, 500);
      now = 1000; // a retry interval later those attempts hold nothing back any more
      await attempt('did:plc:b');
      assert.equal(internals.lastResync.size, 1);
      // however many accounts fail within one interval, the map stays bounded
      for (let i = 0; i < 100_010; i++) await attempt(`did:plc:c${i}`);
      assert.ok(internals.lastResync.size <= 100_000, `${internals.lastResync.size} attempts remembered`);
      assert.ok(internals.lastResync.has('did:plc:c100009'), 'the newest attempt is kept');
    } finally {
      await v.close();
    }
  });
});
