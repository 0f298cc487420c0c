// The bootstrap from the seed relay is retried with back-off until it
// succeeds and then repeated: the loop on its own (scripted passes), and a
// HostManager whose seed relay (a loopback server) fails before it answers.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { SimNetwork } from '../../sim/network.ts';
import { RecordingSink, testConfig } from '../../test/support/ingest-support.ts';
import { tempMetadataStore } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { silentLogger } from '../log.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { BootstrapStats } from './bootstrap.ts';
import { BootstrapLoop } from './bootstrap-loop.ts';
import { HostManager } from './host-manager.ts';

const ok: BootstrapStats = { listed: 2, added: 1, refused: 1, failed: 0 };

async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}) {
  const m = await registry.getSingleMetric(name)?.get();
  const v = m?.values.find((x) => Object.entries(labels).every(([k, l]) => x.labels[k] === l));
  return v?.value ?? 0;
}

describe('bootstrap loop', () => {
  it('retries a failing pass with back-off until it succeeds, then repeats it', async () => {
    const registry = new Registry();
    let calls = 0;
    const loop = new BootstrapLoop({
      upstream: 'seed.example',
      log: silentLogger,
      registry,
      retryBaseMs: 5,
      retryMaxMs: 20,
      intervalMs: 10,
      random: () => 0.5,
      run: async () => {
        calls++;
        if (calls <= 3) throw new Error(`seed unreachable (${calls})`);
        return ok;
      },
    });
    loop.start();
    await loop.firstSuccess;
    assert.equal(calls, 4);
    assert.equal(await metricValue(registry, 'relay_bootstrap_runs_total', { result: 'failed' }), 3);
    assert.equal(await metricValue(registry, 'relay_bootstrap_consecutive_failures'), 0);
    assert.ok((await metricValue(registry, 'relay_bootstrap_last_success_timestamp_seconds')) > 0);
    await waitFor(() => calls >= 6, 'two more passes on the interval');
    await loop.stop();
    const after = calls;
    assert.ok((await metricValue(registry, 'relay_bootstrap_runs_total', { result: 'ok' })) >= 3);
    assert.ok((await metricValue(registry, 'relay_bootstrap_hosts_total', { outcome: 'added' })) >= 3);
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, after, 'no pass after stop');
  });

  it('doubles the retry delay up to the cap, with jitter', () => {
    const loop = new BootstrapLoop({
      upstream: 'seed.example',
      log: silentLogger,
      retryBaseMs: 1000,
      retryMaxMs: 60_000,
      random: () => 0.5,
      run: async () => ok,
    });
    assert.deepEqual(
      [1, 2, 3, 4, 7, 8, 50].map((n) => loop.retryDelayMs(n)),
      [1000, 2000, 4000, 8000, 60_000, 60_000, 60_000],
    );
    const low = new BootstrapLoop({
      upstream: 's',
      log: silentLogger,
      retryBaseMs: 1000,
      random: () => 0,
      run: async () => ok,
    });
    assert.equal(low.retryDelayMs(1), 500);
  });

  it('stop() ends a long wait at once and settles firstSuccess', async () => {
    const loop = new BootstrapLoop({
      upstream: 'seed.example',
      log: silentLogger,
      retryBaseMs: 3_600_000,
      run: async () => {
        throw new Error('down');
      },
    });
    loop.start();
    await waitFor(() => loop.consecutiveFailures === 1, 'first failure');
    await loop.stop();
    await loop.firstSuccess;
  });
});

describe('HostManager bootstrap against a seed relay that fails first', () => {
  let net: SimNetwork;
  before(async () => {
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 1, seed: 19 });
  });
  after(async () => {
    await net.stop();
  });

  it('keeps retrying until the seed answers, adds its hosts, and counts it', async () => {
    let requests = 0;
    const seed = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname !== '/xrpc/com.atproto.sync.listHosts') return void res.writeHead(404).end();
      requests++;
      if (requests <= 2) return void res.writeHead(503, { 'content-type': 'application/json' }).end('{}');
      // a second host appears on the seed after the first successful pass
      const hosts = requests === 3 ? [net.hosts[0]] : net.hosts;
      const body = { hosts: hosts.map((h) => ({ hostname: h.hostname, status: 'active' })) };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => seed.listen(0, '127.0.0.1', resolve));
    const upstream = `127.0.0.1:${(seed.address() as AddressInfo).port}`;
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    const registry = new Registry();
    const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    const manager = new HostManager({
      store: db.store,
      sink: new RecordingSink(),
      fetcher,
      registry,
      config: testConfig({
        bootstrapHosts: true,
        upstream,
        bootstrapRetryBaseMs: 10,
        bootstrapRetryMaxSeconds: 1,
      }),
    });
    try {
      await manager.start();
      await manager.bootstrapDone;
      assert.equal(requests, 3, 'two failed passes, then one that worked');
      assert.deepEqual(
        (await db.store.listHosts({ limit: 10 })).map((h) => h.hostname),
        [net.hosts[0].hostname],
      );
      assert.equal(await metricValue(registry, 'relay_bootstrap_runs_total', { result: 'failed' }), 2);
      assert.equal(await metricValue(registry, 'relay_bootstrap_runs_total', { result: 'ok' }), 1);
      assert.equal(await metricValue(registry, 'relay_bootstrap_hosts_total', { outcome: 'added' }), 1);
      await waitFor(() => manager.connectedCount === 1, 'the bootstrapped host connected');
    } finally {
      await manager.stop();
      fetcher.close();
      await db.destroy();
      await new Promise<void>((resolve) => seed.close(() => resolve()));
    }
  });
});
