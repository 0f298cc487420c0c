// The PLC directory goes down for 30 s while the simulated network keeps
// writing, including new accounts the relay has never resolved. Identities
// already known are served stale; events whose DID cannot be resolved wait
// (their host's cursor does not pass them) and are retried; once the
// directory answers again, every event of the outage arrives, none twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { subscribe } from '../sim/consumer.ts';
import { SimNetwork } from '../sim/network.ts';
import { crawlAll, startTestRelay, waitRelayCaughtUp } from '../test/support/relay-harness.ts';
import { tempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import { cidToString } from './protocol/cid.ts';
import type { Relay } from './relay.ts';

const OUTAGE_MS = 30_000;

describe('relay through a PLC outage', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay | undefined;

  before(async () => {
    dataDir = tempDir('atrelay-plc-outage-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 4, seed: 'plc-outage' });
    // identities expire during the outage: they must be served stale, not dropped
    relay = await startTestRelay(net, dataDir, { RELAY_IDENTITY_TTL_SECONDS: '1' });
  });

  after(async () => {
    await relay?.stop();
    await net.stop();
  });

  it('relays every event of a 30 s outage once the directory is back, none twice', async () => {
    const r = relay!;
    await crawlAll(r, net);
    const consumer = await subscribe(`ws://127.0.0.1:${r.port}/xrpc/com.atproto.sync.subscribeRepos`);
    try {
      const emitted = net.step(30);
      await waitRelayCaughtUp(r, net, consumer);

      net.plc.outage = 503;
      const outageStart = Date.now();
      const fresh = [net.createAccount(0), net.createAccount(1)];
      for (let round = 0; round < 3; round++) {
        emitted.push(...net.step(40));
        for (const did of fresh) emitted.push(net.hostOf(did).writeRecord(did));
      }
      const v = r.validator!;
      await waitFor(() => v.metrics.identityWaiting().events > 0, 'events waiting for the directory');
      await waitFor(() => Date.now() - outageStart >= OUTAGE_MS, 'the end of the outage');
      assert.equal(v.metrics.droppedCount('identity-unresolved'), 0, 'nothing dropped while it was down');
      assert.ok(v.metrics.identityRetries > 0);
      net.plc.outage = undefined;

      emitted.push(...net.step(30));
      await waitRelayCaughtUp(r, net, consumer);
      assert.equal(v.metrics.droppedCount('identity-unresolved'), 0);
      const seen = new Map<string, number>();
      for (const f of consumer.frames) {
        const b = f.frame?.body;
        if (b?.commit && b.ops)
          seen.set(cidToString(b.commit as never), (seen.get(cidToString(b.commit as never)) ?? 0) + 1);
      }
      const commits = emitted.filter((e) => e.t === '#commit');
      for (const e of commits)
        assert.equal(seen.get(cidToString(e.commit!)), 1, `commit ${e.rev} of ${e.did} once`);
      // the new accounts' creation (#identity, #account, #commit) came through too
      for (const did of fresh) {
        const kinds = consumer.frames
          .filter((f) => (f.frame?.body.did ?? f.frame?.body.repo) === did)
          .map((f) => (f.frame?.header.op === 1 && 't' in f.frame.header ? f.frame.header.t : ''));
        assert.ok(kinds.includes('#identity') && kinds.includes('#account'), `${did}: ${kinds}`);
      }
    } finally {
      await consumer.close();
    }
  });
});
