// A full disk under a running relay: the event log's writes fail (ENOSPC,
// injected through RelayDeps.eventLogWriteFault) while the simulated network
// keeps writing. The relay must pause ingest without dropping or re-dialling
// any host, say so in /_health, /_readyz and a metric, and once space is
// freed relay every event of the outage exactly once, in order.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { subscribe } from '../sim/consumer.ts';
import { SimNetwork } from '../sim/network.ts';
import {
  assertEachCommitOnce,
  crawlAll,
  readyz,
  relayMetric,
  startTestRelay,
  waitRelayCaughtUp,
} from '../test/support/relay-harness.ts';
import { tempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import type { Relay } from './relay.ts';

describe('relay with a full disk', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay | undefined;
  let diskFull = false;

  before(async () => {
    dataDir = tempDir('atrelay-enospc-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 5, seed: 'enospc' });
    relay = await startTestRelay(
      net,
      dataDir,
      { RELAY_EVENTLOG_FSYNC: 'true' },
      {
        eventLogWriteFault: (op) =>
          diskFull && op === 'write'
            ? Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })
            : undefined,
      },
    );
  });

  after(async () => {
    await relay?.stop();
    await net.stop();
  });

  it('pauses ingest while writes fail, reports it, and relays the whole outage once space is freed', async () => {
    const r = relay!;
    const base = `http://127.0.0.1:${r.port}`;
    await crawlAll(r, net);
    const consumer = await subscribe(`ws://127.0.0.1:${r.port}/xrpc/com.atproto.sync.subscribeRepos`);
    try {
      const metric = (name: string) => relayMetric(r, name);
      const before = net.step(40);
      await waitRelayCaughtUp(r, net, consumer);
      const reconnects = await metric('relay_ingest_reconnects_total');

      diskFull = true;
      const during = net.step(120);
      await waitFor(async () => (await readyz(r)).status === 503, 'readiness to fail');
      const ready = (await readyz(r)).body;
      assert.equal(ready.status, 'degraded');
      assert.match(ready.reasons?.[0] ?? '', /event log writes failing: ENOSPC/);
      const health = await fetch(`${base}/_health`);
      assert.equal(health.status, 503);
      assert.match(((await health.json()) as { checks: { event_log: string } }).checks.event_log, /ENOSPC/);
      assert.equal(await metric('relay_eventlog_write_failing'), 1);
      assert.deepEqual(r.hosts?.pausedFor, ['event-log-write-failing']);
      await waitFor(async () => (await metric('relay_eventlog_write_failures_total')) >= 3, 'retries');
      // hosts stay connected, paused: no host is dropped or re-dialled
      assert.ok(r.hosts?.list().every((h) => h.connected));
      assert.equal(await metric('relay_ingest_reconnects_total'), reconnects);

      diskFull = false; // space freed
      const afterFix = net.step(40);
      await waitRelayCaughtUp(r, net, consumer);
      assert.equal((await readyz(r)).status, 200);
      assert.equal(await metric('relay_eventlog_write_failing'), 0);
      assert.deepEqual(r.hosts?.pausedFor, []);
      assert.equal(await metric('relay_ingest_reconnects_total'), reconnects);

      const seqs = consumer.seqs();
      for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1] + 1, 'gapless relay seqs');
      assertEachCommitOnce(consumer, [...before, ...during, ...afterFix]);
    } finally {
      await consumer.close();
    }
  });
});
