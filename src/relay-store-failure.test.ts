// Repo head writes refused under a running relay: PostgreSQL raises on every
// head update (a trigger the test installs) while the simulated network keeps
// writing. The writes are retried in order, the repos' next commits still
// chain against the heads kept in memory (no chain break, no resync, nothing
// lost), /_readyz says so after 5 s of failures, and once the store takes
// writes again every commit has been relayed exactly once and every stored
// head is current.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
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

const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

describe('relay with a metadata store refusing repo head writes', () => {
  const schema = `sf_${process.pid}_${randomBytes(3).toString('hex')}`;
  let net: SimNetwork;
  let relay: Relay | undefined;
  let db: pg.Client;

  before(async () => {
    db = new pg.Client({ connectionString: PG_URL });
    await db.connect();
    await db.query(`CREATE SCHEMA ${schema}`);
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 5, seed: 'store-failure' });
    relay = await startTestRelay(net, tempDir('atrelay-store-failure-'), {
      DATABASE_URL: `${PG_URL}?options=-c%20search_path%3D${schema}`,
    });
  });

  after(async () => {
    await db.query(`DROP TRIGGER IF EXISTS refuse_heads ON ${schema}.accounts`).catch(() => {});
    await relay?.stop();
    await net.stop();
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
  });

  it('retries refused head writes: nothing lost, no resync, readiness degraded meanwhile', async () => {
    const r = relay!;
    await crawlAll(r, net);
    const consumer = await subscribe(`ws://127.0.0.1:${r.port}/xrpc/com.atproto.sync.subscribeRepos`);
    try {
      const metric = (name: string) => relayMetric(r, name);
      const before = net.step(40);
      await waitRelayCaughtUp(r, net, consumer);

      await db.query(`CREATE FUNCTION ${schema}.refuse_heads() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'head writes refused (test)'; END $$`);
      await db.query(
        `CREATE TRIGGER refuse_heads BEFORE UPDATE OF rev ON ${schema}.accounts
         FOR EACH ROW EXECUTE FUNCTION ${schema}.refuse_heads()`,
      );
      const during = net.step(60);
      await waitFor(async () => (await readyz(r)).status === 503, 'readiness to fail');
      const ready = (await readyz(r)).body;
      assert.equal(ready.status, 'degraded');
      assert.match(ready.reasons?.join('; ') ?? '', /repo head writes failing since/);
      assert.ok((await metric('relay_validation_head_write_failures_total')) >= 2);

      await db.query(`DROP TRIGGER refuse_heads ON ${schema}.accounts`);
      const afterFix = net.step(40);
      await waitRelayCaughtUp(r, net, consumer);
      await waitFor(async () => (await readyz(r)).status === 200, 'ready again');

      const v = r.validator!;
      assert.equal(v.metrics.droppedCount('chain-break'), 0, 'no commit looked unchained');
      assert.deepEqual(v.metrics.resyncs, { ok: 0, failed: 0 });
      assertEachCommitOnce(consumer, [...before, ...during, ...afterFix]);
      // every stored head is the account's current one
      for (const h of net.hosts) {
        for (const [did, a] of h.accounts) {
          const want = a.repo.head()?.rev;
          if (want === undefined || a.status !== 'active') continue;
          const { rows } = await db.query(`SELECT rev FROM ${schema}.accounts WHERE did = $1`, [did]);
          assert.equal(rows[0]?.rev, want, did);
        }
      }
    } finally {
      await consumer.close();
    }
  });
});
