// Exactly once through crashes: the relay runs as its own process (as
// `npm start` runs it) against the simulated network at 2,000 events/s and is
// SIGKILLed at random moments, then restarted on the same data directory. An
// independent subscriber of every simulated host records what was emitted; a
// consumer of the relay's firehose reconnects from the last seq it saw after
// each restart. Every upstream commit must come out exactly once and relay
// seqs must only increase.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type WebSocket from 'ws';
import { SimNetwork } from '../sim/network.ts';
import { type RelayProcess, spawnRelay } from '../test/support/relay-process.ts';
import { followStream, StreamRecord } from '../test/support/stream-record.ts';
import { tempDir } from '../test/support/temp.ts';
import { waitFor } from '../test/support/wait.ts';

const RATE = 2000;
/** Events the network emits in all (20 s at RATE); the relay may lag behind on a busy machine. */
const TOTAL = 40_000;
const KILLS = 3;

describe('exactly once through SIGKILL', () => {
  let relay: RelayProcess | undefined;
  after(() => {
    relay?.child.kill('SIGKILL');
  });

  it(`relays every commit exactly once while killed ${KILLS} times at ${RATE} events/s`, async (t) => {
    const dataDir = tempDir('atrelay-crash-');
    const net = await SimNetwork.start({
      hosts: 4,
      accountsPerHost: 25,
      seed: 'crash',
      historySize: 60_000,
      pregenerate: 4000,
    });
    const upstream = net.hosts.map((h) => new StreamRecord(h.hostname));
    let readers: WebSocket[] = [];
    const downstream = new StreamRecord('relay');
    let consumer: WebSocket | undefined;
    const env = {
      RELAY_PORT: '0',
      RELAY_METRICS_PORT: '0',
      RELAY_BIND: '127.0.0.1',
      RELAY_DATA_DIR: dataDir,
      RELAY_PLC_URL: net.plc.url,
      RELAY_UPSTREAM: 'none',
      RELAY_ALLOW_INSECURE_HOSTS: 'true',
      RELAY_ADMIN_PASSWORD: 'crash-test',
      // the simulated hosts are small but busy: lift the per-host rate limits
      RELAY_HOST_RATE_PER_SECOND: '100000',
      RELAY_HOST_RATE_PER_HOUR: '1000000000',
      RELAY_HOST_RATE_PER_DAY: '1000000000',
      ...(process.env.ATRELAY_TEST_RELAY_LOG ? { RELAY_LOG_LEVEL: 'debug' } : {}),
    };
    const connect = (r: RelayProcess) => {
      const cursor = downstream.lastSeq;
      consumer = followStream(
        `ws://127.0.0.1:${r.port}/xrpc/com.atproto.sync.subscribeRepos${cursor > 0 ? `?cursor=${cursor}` : ''}`,
        downstream,
      );
    };
    const upstreamCommits = () => {
      const all = new Map<string, string>();
      for (const u of upstream) for (const [cid, w] of u.where) all.set(cid, w);
      return all;
    };
    try {
      relay = await spawnRelay(env);
      for (const h of net.hosts) assert.equal(await h.requestCrawl(`http://127.0.0.1:${relay.port}`), 200);
      // A relay subscribes to a new host live (no cursor): what a host emitted
      // before that is not the relay's to deliver. Nothing more is emitted
      // until the relay and our readers (from that point) are subscribed.
      await waitFor(() => net.hosts.every((h) => h.firehose.subscriberCount === 1), 'the relay subscribed');
      readers = net.hosts.map((h, i) => followStream(`${h.wsUrl}?cursor=${h.seq}`, upstream[i]));
      await waitFor(() => net.hosts.every((h) => h.firehose.subscriberCount === 2), 'the readers subscribed');
      connect(relay);
      net.startGenerator(RATE);
      const emittedNow = () => net.hosts.reduce((n, h) => n + h.seq, 0);
      const start = emittedNow();
      for (let k = 0; k < KILLS; k++) {
        // a random moment in the k-th quarter of the run
        const at = start + Math.floor((TOTAL * (k + 0.5 + Math.random() * 0.5)) / (KILLS + 1));
        await waitFor(() => emittedNow() >= at, `the network to emit ${at} events (kill ${k + 1})`);
        relay.child.kill('SIGKILL');
        await relay.exited;
        relay = await spawnRelay(env);
        connect(relay);
      }
      await waitFor(() => emittedNow() >= start + TOTAL, `the network to emit ${TOTAL} events`);
      net.stopGenerator();
      await waitFor(
        () => net.hosts.every((h, i) => upstream[i].lastSeq === h.seq),
        'the independent subscribers to see every event',
      );
      const want = upstreamCommits();
      await waitFor(
        () => [...want.keys()].every((c) => downstream.commits.has(c)),
        'every commit from the relay',
        {
          describe: () => {
            const missing = [...want.keys()].filter((c) => !downstream.commits.has(c));
            const some = missing.slice(0, 5).map((c) => want.get(c));
            return `${missing.length} of ${want.size} missing (${some.join('; ')}); relay log:\n${relay?.tail() ?? ''}`;
          },
        },
      );
      // Nothing left in flight: the consumer holds the relay's log head.
      const head = async () => {
        const res = await fetch(`http://127.0.0.1:${relay!.port}/_stats`);
        return ((await res.json()) as { eventLog?: { head?: number } }).eventLog?.head ?? -1;
      };
      await waitFor(async () => (await head()) === downstream.lastSeq, 'the consumer at the log head');

      const dup = [...downstream.commits].filter(([, n]) => n > 1);
      const foreign = [...downstream.commits.keys()].filter((c) => !want.has(c));
      t.diagnostic(
        `${want.size} commits upstream, ${downstream.commits.size} distinct relayed, ` +
          `${dup.length} duplicated, ${KILLS} kills, ${downstream.frames} relay frames`,
      );
      assert.deepEqual(
        upstream.flatMap((u) => u.problems),
        [],
        'upstream streams are clean',
      );
      assert.deepEqual(downstream.problems, [], 'relay seqs only increase, no error frames');
      assert.equal(
        dup.length,
        0,
        `duplicated commits: ${dup.length}: ${dup
          .slice(0, 5)
          .map(([c]) => downstream.where.get(c))
          .join('; ')}`,
      );
      assert.deepEqual(foreign, [], 'nothing the hosts did not emit after the relay subscribed');
    } finally {
      net.stopGenerator();
      consumer?.terminate();
      for (const r of readers) r.terminate();
      relay?.child.kill('SIGKILL');
      await net.stop();
    }
  });
});
