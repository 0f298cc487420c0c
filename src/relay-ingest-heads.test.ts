// Exactly once when an ingest process (RELAY_ROLE=ingest) dies while its repo
// head writes are stalled. An ingest process has no log scan at start (the
// log is shared: log-recovery.ts is for RELAY_ROLE=all), so whatever takes a
// host over relies on the stored cursor never passing a frame whose repo head
// is not in the store: otherwise the repo's next commit looks unchained to the
// new owner, which resyncs the repo and drops the commits in between.
//
// The stall is real, not injected: the test holds row locks on every account
// in PostgreSQL (SELECT ... FOR UPDATE in an open transaction), so head writes
// wait while cursor writes (another table) could go through. It kills the
// ingest process once a cursor batch has been taken after the stall began,
// then starts another ingest process on the same stream and schema; every
// upstream commit must reach the fan-out node's consumer exactly once. (The
// same rule for account status written at decision time is tested in
// validate/validator.test.ts, where the order of writes can be held exactly.)
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import type WebSocket from 'ws';
import { SimNetwork } from '../sim/network.ts';
import { processMetric as metric, PG_URL, ScaleOutCluster } from '../test/support/scale-out-cluster.ts';
import { followStream, StreamRecord } from '../test/support/stream-record.ts';
import { waitFor } from '../test/support/wait.ts';

const RATE = 150;

describe('an ingest process killed while its head writes stall', () => {
  const cluster = new ScaleOutCluster('ih');
  const schema = cluster.schema;
  after(() => cluster.remove());

  it('loses no commit: the stored cursor never passes a frame whose head is unwritten', async (t) => {
    await cluster.createSchema();
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    const locker = new pg.Client({ connectionString: PG_URL });
    await locker.connect();
    const net = await SimNetwork.start({
      hosts: 1,
      accountsPerHost: 8,
      seed: 'ingest-heads',
      historySize: 10_000,
      pregenerate: 0,
      accountShare: 0, // no deactivation: this test is about heads alone
    });
    const host = net.hosts[0];
    const upstream = new StreamRecord(host.hostname);
    const downstream = new StreamRecord('fanout');
    let reader: WebSocket | undefined;
    let consumer: WebSocket | undefined;
    const start = (role: 'ingest' | 'fanout', n: number) => cluster.start(role, n, net.plc.url);
    const storedCursor = async () =>
      Number((await admin.query(`SELECT last_seq FROM ${schema}.hosts`)).rows[0]?.last_seq ?? 0);
    try {
      const first = await start('ingest', 1);
      const fanout = await start('fanout', 1);
      assert.equal(await host.requestCrawl(`http://127.0.0.1:${fanout.port}`), 200);
      await waitFor(() => host.firehose.subscriberCount === 1, 'the ingest process reads the host');
      reader = followStream(`${host.wsUrl}?cursor=${host.seq}`, upstream);
      await waitFor(() => host.firehose.subscriberCount === 2, 'the reader subscribed');
      consumer = followStream(
        `ws://127.0.0.1:${fanout.port}/xrpc/com.atproto.sync.subscribeRepos`,
        downstream,
      );
      net.startGenerator(RATE);
      // every account has committed through the relay (so has a row to lock)
      await waitFor(async () => {
        const n = await admin.query(
          `SELECT count(*)::int AS n FROM ${schema}.accounts WHERE rev IS NOT NULL`,
        );
        return n.rows[0].n === 8;
      }, 'every account has a stored head');

      // stall every head write, then wait until a cursor batch was taken after that
      await locker.query('BEGIN');
      await locker.query(`SELECT uid FROM ${schema}.accounts FOR UPDATE`);
      const stalledAt = host.seq;
      const relayedAtStall = downstream.commits.size;
      await waitFor(
        async () =>
          downstream.commits.size > relayedAtStall + 20 &&
          ((await storedCursor()) > stalledAt ||
            (await metric(first, 'relay_ingest_cursor_write_waiting_for_heads')) === 1),
        'a cursor batch taken after the stall (written, or waiting for its heads)',
      );
      t.diagnostic(`stalled at upstream seq ${stalledAt}; stored cursor ${await storedCursor()}`);
      await cluster.kill(first);
      await locker.query('ROLLBACK');

      // another ingest process takes the host over once the dead one's lease expires
      await start('ingest', 2);
      const until = host.seq + 600;
      await waitFor(() => host.seq >= until, 'the network to emit 600 more events');
      net.stopGenerator();
      await waitFor(() => upstream.lastSeq === host.seq, 'the reader to see every event');
      await waitFor(
        () => [...upstream.where.keys()].every((c) => downstream.commits.has(c)),
        'every upstream commit relayed',
        {
          describe: () => {
            const missing = [...upstream.where.keys()].filter((c) => !downstream.commits.has(c));
            return `${missing.length} of ${upstream.where.size} missing (${missing
              .slice(0, 5)
              .map((c) => upstream.where.get(c))
              .join('; ')})`;
          },
        },
      );
      const dup = [...downstream.commits].filter(([, n]) => n > 1);
      assert.deepEqual(downstream.problems, [], 'seqs only increase, no error frames');
      assert.equal(dup.length, 0, `duplicated: ${dup.slice(0, 5).map(([c]) => downstream.where.get(c))}`);
      assert.deepEqual(upstream.problems, [], 'the upstream stream is clean');
    } finally {
      net.stopGenerator();
      consumer?.terminate();
      reader?.terminate();
      for (const p of cluster.procs) p.child.kill('SIGKILL');
      await locker.end().catch(() => {});
      await admin.end().catch(() => {});
      await net.stop();
    }
  });
});
