// Self-healing on the simulated network (issue 18): a host that was down
// comes back with no admin action and its backlog is relayed (re-probe,
// src/ingest/reprobe.ts); a stream that stalls while its host keeps writing is
// noticed and reconnected (stall watchdog, src/ingest/coverage.ts); a silent
// partial outage drops the coverage figure and fails /_readyz; account drift
// a lost event left (a status changed without #account, a commit never
// announced) is found by the reconciliation sweep and repaired
// (src/ingest/reconcile.ts). Every schedule is configured small and every
// wait is on a condition.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { type ReceivedFrame, subscribe } from '../sim/consumer.ts';
import { SimNetwork } from '../sim/network.ts';
import type { EmittedEvent } from '../sim/pds.ts';
import { crawlAll, readyz, startTestRelay, waitRelayCaughtUp } from '../test/support/relay-harness.ts';
import { tempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';
import { cidToString } from './protocol/cid.ts';
import type { Relay } from './relay.ts';

/** One write per account of every host, so the relay knows each account and its head. */
function writeEveryAccount(net: SimNetwork, hostIndex?: number): EmittedEvent[] {
  return net.accounts
    .filter((a) => hostIndex === undefined || a.host === hostIndex)
    .map((a) => net.hostOf(a.did).writeRecord(a.did));
}

function commitCids(frames: readonly ReceivedFrame[]): Set<string> {
  const out = new Set<string>();
  for (const f of frames) {
    const b = f.frame?.body;
    if (b?.commit && b.ops) out.add(cidToString(b.commit as never));
  }
  return out;
}

/** A frame of event type `t` (#sync, #account) about `did`. */
function eventFor(t: string, did: string): (f: ReceivedFrame) => boolean {
  return (f) =>
    f.frame?.header.op === 1 && 't' in f.frame.header && f.frame.header.t === t && f.frame.body.did === did;
}

/** A consumer of the relay's firehose, live from now. */
function firehoseOf(relay: Relay) {
  return subscribe(`ws://127.0.0.1:${relay.port}/xrpc/com.atproto.sync.subscribeRepos`);
}

describe('self-healing hosts and coverage', () => {
  let net: SimNetwork | undefined;
  let relay: Relay | undefined;
  let dataDir: string;

  beforeEach(() => {
    dataDir = tempDir('atrelay-heal-');
  });

  afterEach(async () => {
    await relay?.stop();
    await net?.stop();
    relay = undefined;
    net = undefined;
  });

  /** A simulated network and a relay with `env` on it (stopped after the test), every host crawled. */
  async function start(
    netOpts: Parameters<typeof SimNetwork.start>[0],
    env: Record<string, string>,
  ): Promise<{ r: Relay; n: SimNetwork }> {
    const n = await SimNetwork.start(netOpts);
    net = n;
    const r = await startTestRelay(n, dataDir, env);
    relay = r;
    await crawlAll(r, n);
    return { r, n };
  }

  it('a host that was down comes back with no admin action, and its backlog is relayed', async () => {
    const { r, n } = await start(
      { hosts: 2, accountsPerHost: 3, seed: 'heal-reprobe' },
      {
        RELAY_HOST_MAX_FAILURES: '1',
        RELAY_HOST_REPROBE_BASE_SECONDS: '0.1',
        RELAY_HOST_REPROBE_MAX_SECONDS: '0.4',
        RELAY_COVERAGE_READY_THRESHOLD: '0',
      },
    );
    const store = r.store!;
    const consumer = await firehoseOf(r);
    try {
      writeEveryAccount(n);
      await waitRelayCaughtUp(r, n, consumer);

      const down = n.hosts[1];
      await down.goOffline();
      await waitFor(
        async () => (await store.getHostByHostname(down.hostname))?.status === 'offline',
        'the host marked offline',
      );
      // written while the host is unreachable: its backlog
      const backlog = writeEveryAccount(n, 1);
      await waitFor(
        () =>
          r.reprober!.schedule().some((e) => e.hostname === down.hostname && e.lastResult === 'unreachable'),
        'a re-probe that found the host still down',
      );
      await down.goOnline();
      await waitFor(
        async () => (await store.getHostByHostname(down.hostname))?.status === 'active',
        'the host active again by itself',
      );
      await waitRelayCaughtUp(r, n, consumer);
      const seen = commitCids(consumer.frames);
      for (const e of backlog) assert.ok(seen.has(cidToString(e.commit!)), `backlog commit ${e.rev} relayed`);
      const revived = r.reprober!.schedule().find((e) => e.hostname === down.hostname);
      assert.ok(revived === undefined || revived.lastResult === 'revived', JSON.stringify(revived));
    } finally {
      await consumer.close();
    }
  });

  it('a stream that stalls while its host keeps writing is detected and reconnected', async () => {
    const { r, n } = await start(
      { hosts: 2, accountsPerHost: 3, seed: 'heal-stall' },
      {
        RELAY_COVERAGE_CURRENT_WITHIN_SECONDS: '1',
        RELAY_COVERAGE_SAMPLE_SECONDS: '0.2',
        RELAY_COVERAGE_READY_THRESHOLD: '0',
      },
    );
    const consumer = await firehoseOf(r);
    try {
      writeEveryAccount(n);
      await waitRelayCaughtUp(r, n, consumer);

      const stalled = n.hosts[0];
      assert.equal(stalled.stallStreams(), 1, 'the relay had one stream open');
      const written = writeEveryAccount(n, 0);
      // nothing arrives on the stalled socket; only a reconnect from the cursor brings these
      await waitRelayCaughtUp(r, n, consumer);
      const seen = commitCids(consumer.frames);
      for (const e of written) assert.ok(seen.has(cidToString(e.commit!)), `commit ${e.rev} relayed`);
      const metric = await r.registry.getSingleMetric('relay_host_stall_reconnects_total')?.get();
      assert.ok((metric?.values[0]?.value ?? 0) >= 1, 'counted as a stall reconnect');
    } finally {
      await consumer.close();
    }
  });

  it("a throttled account's writes arrive (#sync, then later commits) after its host's limit is raised", async () => {
    const { r, n } = await start(
      { hosts: 1, accountsPerHost: 3, seed: 'heal-throttle' },
      { RELAY_COVERAGE_READY_THRESHOLD: '0' },
    );
    const store = r.store!;
    const host = n.hosts[0];
    const limited = await r.hosts!.setAccountLimit(host.hostname, 1);
    assert.ok(limited.ok);
    const consumer = await firehoseOf(r);
    try {
      // the first account is admitted before the others are seen (accounts
      // created at once are each checked against the count before any of them)
      const [first, ...rest] = n.accounts;
      host.writeRecord(first.did);
      await waitRelayCaughtUp(r, n, consumer);
      for (const a of rest) host.writeRecord(a.did);
      await waitRelayCaughtUp(r, n, consumer);
      const hostRow = (await store.getHostByHostname(host.hostname))!;
      const throttled = await store.listThrottledAccounts(hostRow.id, { limit: 10 });
      assert.equal(throttled.length, 2, 'two of three accounts over the limit of 1');
      const did = throttled[0].did;
      // written while throttled: dropped, to be recovered by the resync
      const meanwhile = [host.writeRecord(did), host.writeRecord(did)];
      await waitRelayCaughtUp(r, n, consumer);
      assert.ok(
        !commitCids(consumer.frames).has(cidToString(meanwhile[1].commit!)),
        'dropped while throttled',
      );

      const raised = await r.hosts!.setAccountLimit(host.hostname, 10);
      assert.ok(raised.ok);
      assert.equal((await store.listThrottledAccounts(hostRow.id, { limit: 10 })).length, 0);
      assert.ok(
        ['desynchronized', 'active'].includes((await store.getAccountByDid(did))?.status ?? ''),
        'released: desynchronized until its resync',
      );
      const released = await r.registry.getSingleMetric('relay_throttle_released_accounts_total')?.get();
      assert.equal(released?.values[0]?.value, 2);

      // resynced at once, with no further write: #sync at the host's current rev
      const isSync = eventFor('#sync', did);
      await waitFor(() => consumer.frames.some(isSync), '#sync of the released account');
      const sync = consumer.frames.find(isSync)!;
      assert.equal(sync.frame?.body.rev, meanwhile[1].rev, 'the #sync carries the writes made meanwhile');
      await waitFor(async () => (await store.getAccountByDid(did))?.status === 'active', 'account active');
      const later = host.writeRecord(did);
      await waitRelayCaughtUp(r, n, consumer);
      assert.ok(commitCids(consumer.frames).has(cidToString(later.commit!)), 'later commit relayed');
    } finally {
      await consumer.close();
    }
  });

  it('a silent partial outage drops the coverage figure and fails readiness', async () => {
    const { r, n } = await start(
      { hosts: 4, accountsPerHost: 2, seed: 'heal-coverage' },
      {
        // the hosts stay `active`: the relay keeps dialling, nothing marks them down
        RELAY_HOST_MAX_FAILURES: '10000',
        RELAY_COVERAGE_CURRENT_WITHIN_SECONDS: '1',
        RELAY_COVERAGE_SAMPLE_SECONDS: '0.2',
        RELAY_COVERAGE_READY_THRESHOLD: '0.75',
      },
    );
    writeEveryAccount(n);
    await waitRelayCaughtUp(r, n);
    const coverage = r.coverage!;
    await waitFor(
      () => coverage.report().coverage === 1 && coverage.report().accounts.carried === 8,
      'full coverage with every account known',
      { describe: () => JSON.stringify(coverage.report()) },
    );
    assert.equal((await readyz(r)).status, 200);

    await Promise.all([n.hosts[2].goOffline(), n.hosts[3].goOffline()]);
    await waitFor(() => coverage.report().coverage === 0.5, 'coverage at one half', {
      describe: () => JSON.stringify(coverage.report()),
    });
    const ready = await readyz(r);
    assert.equal(ready.status, 503);
    assert.match(ready.body.reasons?.join(' ') ?? '', /coverage 0\.500 below 0\.75/);
    const stats = (await (await fetch(`http://127.0.0.1:${r.port}/_stats`)).json()) as {
      coverage: { coverage: number; behind: { hostname: string }[] };
    };
    assert.equal(stats.coverage.coverage, 0.5);
    assert.deepEqual(
      stats.coverage.behind.map((h) => h.hostname).sort(),
      [n.hosts[2].hostname, n.hosts[3].hostname].sort(),
    );
    const gauge = await r.registry.getSingleMetric('relay_coverage_ratio')?.get();
    assert.equal(gauge?.values[0]?.value, 0.5);

    await Promise.all([n.hosts[2].goOnline(), n.hosts[3].goOnline()]);
    await waitFor(() => coverage.report().coverage === 1, 'coverage back to whole');
    await waitFor(async () => (await readyz(r)).status === 200, 'ready again');
  });

  it('an account whose status changed upstream unseen is reconciled, and its #account reaches consumers', async () => {
    const { r, n } = await start(
      { hosts: 1, accountsPerHost: 2, seed: 'heal-reconcile-status' },
      {
        RELAY_COVERAGE_SAMPLE_SECONDS: '0',
        RELAY_COVERAGE_READY_THRESHOLD: '0',
        RELAY_RECONCILE_INTERVAL_SECONDS: '0.1',
        RELAY_RECONCILE_GRACE_SECONDS: '0.2',
      },
    );
    const store = r.store!;
    const consumer = await firehoseOf(r);
    try {
      writeEveryAccount(n);
      await waitRelayCaughtUp(r, n, consumer);
      const host = n.hosts[0];
      const did = n.accounts[0].did;
      const accountFrames = (status: string) => (f: ReceivedFrame) =>
        eventFor('#account', did)(f) &&
        (status === 'active' ? f.frame?.body.active === true : f.frame?.body.status === status);

      // a missed #account: the host deactivates the account and says nothing
      host.setStatusSilently(did, 'deactivated');
      await waitFor(
        () => consumer.frames.some(accountFrames('deactivated')),
        '#account deactivated relayed',
        {
          describe: () => JSON.stringify(r.reconciler?.report()),
        },
      );
      assert.equal((await store.getAccountByDid(did))?.upstreamStatus, 'deactivated');

      // a stale inactive: back to active upstream, again unannounced
      host.setStatusSilently(did, 'active');
      await waitFor(() => consumer.frames.some(accountFrames('active')), '#account active relayed');
      assert.equal((await store.getAccountByDid(did))?.upstreamStatus, 'active');
      const repairs = await r.registry.getSingleMetric('relay_reconcile_repairs_total')?.get();
      assert.equal(repairs?.values.find((v) => v.labels.kind === 'status')?.value, 2);
      const stats = (await (await fetch(`http://127.0.0.1:${r.port}/_stats`)).json()) as {
        reconcile: { repairs: { status: number } };
      };
      assert.equal(stats.reconcile.repairs.status, 2);
      // later commits flow as before
      const later = host.writeRecord(did);
      await waitRelayCaughtUp(r, n, consumer);
      assert.ok(commitCids(consumer.frames).has(cidToString(later.commit!)), 'later commit relayed');
    } finally {
      await consumer.close();
    }
  });

  it('a commit the stream never carried is recovered by a resync (#sync), with no admin action', async () => {
    const { r, n } = await start(
      { hosts: 1, accountsPerHost: 2, seed: 'heal-reconcile-commit' },
      {
        RELAY_COVERAGE_SAMPLE_SECONDS: '0',
        RELAY_COVERAGE_READY_THRESHOLD: '0',
        RELAY_RECONCILE_INTERVAL_SECONDS: '0.1',
        RELAY_RECONCILE_GRACE_SECONDS: '0.2',
      },
    );
    const consumer = await firehoseOf(r);
    try {
      writeEveryAccount(n);
      await waitRelayCaughtUp(r, n, consumer);
      const host = n.hosts[0];
      const did = n.accounts[1].did;
      // the host writes, and the event is lost: nothing on the stream
      const missed = host.applyUnannounced(did, [host.randomWriteFor(host.accounts.get(did)!)]);
      const isSync = eventFor('#sync', did);
      await waitFor(() => consumer.frames.some(isSync), '#sync of the account behind its host', {
        describe: () => JSON.stringify(r.reconciler?.report()),
      });
      assert.equal(
        consumer.frames.find(isSync)?.frame?.body.rev,
        missed.rev,
        'the #sync is at the missed rev',
      );
      const repairs = await r.registry.getSingleMetric('relay_reconcile_repairs_total')?.get();
      assert.ok((repairs?.values.find((v) => v.labels.kind === 'resync')?.value ?? 0) >= 1);
      await waitFor(async () => (await r.store!.getAccountByDid(did))?.status === 'active', 'account active');
      const later = host.writeRecord(did);
      await waitRelayCaughtUp(r, n, consumer);
      assert.ok(commitCids(consumer.frames).has(cidToString(later.commit!)), 'later commit relayed');
    } finally {
      await consumer.close();
    }
  });
});
