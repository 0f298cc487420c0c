import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { Keypair } from '../protocol/keys.ts';
import { ResyncError, Resyncer } from './resync.ts';
import { type Harness, startHarness } from './test-harness.ts';

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
    const burst = Array.from({ length: 20 }, () => r.fetchHead('did:plc:x', 'http://127.0.0.1:1', key));
    // the bucket holds a burst of 20: all 20 fetches start at once, before anything is awaited
    assert.equal(starts.length, 20, 'the burst starts at once');
    const late = [
      r.fetchHead('did:plc:y', 'http://127.0.0.1:1', key),
      r.fetchHead('did:plc:z', 'http://127.0.0.1:1', key),
    ];
    await assert.rejects(r.fetchHead('did:plc:w', 'http://127.0.0.1:1', key), /queue full/);
    for (const p of [...burst, ...late]) await assert.rejects(p, ResyncError);
    assert.equal(starts.length, 22);
    assert.ok(starts[21] - t0 >= 80, `then one per 50 ms (${(starts[21] - t0).toFixed(0)} ms)`);
    r.close();
  });
});
