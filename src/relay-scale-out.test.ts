// Scale-out (issue 17, docs/scale-out.md): two ingest processes and two
// fan-out processes, each a real `npm start` process, sharing a JetStream
// stream (the event log) and a PostgreSQL schema (the metadata store), both
// made for this test and removed after it, against the simulated network.
// Consumers on both fan-out nodes must receive the identical sequence; the
// ingest process holding host leases is SIGKILLed mid-stream (its hosts move
// to the other once the leases expire) and every upstream commit must still
// arrive exactly once; a fan-out node is killed and restarted mid-stream and
// its consumer resumes from its cursor with nothing missing or repeated.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { SimNetwork } from '../sim/network.ts';
import type { RelayProcess } from '../test/support/relay-process.ts';
import { processMetric as metric, ScaleOutCluster } from '../test/support/scale-out-cluster.ts';
import { followStream, StreamRecord } from '../test/support/stream-record.ts';
import { waitFor } from '../test/support/wait.ts';

const RATE = 400;
/** Events the network emits in all (about 20 s at RATE). */
const TOTAL = 8000;

describe('scale-out: two ingest and two fan-out processes on NATS JetStream and PostgreSQL', () => {
  const cluster = new ScaleOutCluster('so');
  after(() => cluster.remove());

  it('delivers one identical sequence on both fan-out nodes, every commit once through an ingest SIGKILL and a fan-out restart', async (t) => {
    await cluster.createSchema();
    const net = await SimNetwork.start({
      hosts: 4,
      accountsPerHost: 20,
      seed: 'scale-out',
      historySize: 20_000,
      pregenerate: 2000,
    });
    const upstream = net.hosts.map((h) => new StreamRecord(h.hostname));
    let readers: WebSocket[] = [];
    const fan = [new StreamRecord('fanout-1'), new StreamRecord('fanout-2')];
    const consumers: (WebSocket | undefined)[] = [undefined, undefined];
    const start = (role: 'ingest' | 'fanout', n: number) => cluster.start(role, n, net.plc.url);
    const connect = (i: number, r: RelayProcess) => {
      const cursor = fan[i].lastSeq;
      consumers[i] = followStream(
        `ws://127.0.0.1:${r.port}/xrpc/com.atproto.sync.subscribeRepos${cursor > 0 ? `?cursor=${cursor}` : ''}`,
        fan[i],
      );
    };
    try {
      // the schema is created by the first process; start one, then the others
      const ingest = [await start('ingest', 1)];
      ingest.push(await start('ingest', 2));
      const fanout = [await start('fanout', 1), await start('fanout', 2)];
      // the host list is shared: a requestCrawl at a fan-out node reaches the ingest processes
      for (const h of net.hosts)
        assert.equal(await h.requestCrawl(`http://127.0.0.1:${fanout[0].port}`), 200);
      await waitFor(
        () => net.hosts.every((h) => h.firehose.subscriberCount === 1),
        'every host read by one ingest process',
        {
          describe: () =>
            `${net.hosts.map((h) => h.firehose.subscriberCount)}; ${ingest[0].tail().slice(-3000)}`,
        },
      );
      readers = net.hosts.map((h, i) => followStream(`${h.wsUrl}?cursor=${h.seq}`, upstream[i]));
      await waitFor(() => net.hosts.every((h) => h.firehose.subscriberCount === 2), 'the readers subscribed');
      connect(0, fanout[0]);
      connect(1, fanout[1]);
      // an ingest process serves no firehose
      const refused = await new Promise<boolean>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${ingest[0].port}/xrpc/com.atproto.sync.subscribeRepos`);
        ws.on('open', () => resolve(false));
        ws.on('error', () => resolve(true));
        ws.on('close', () => resolve(true));
      });
      assert.equal(refused, true, 'an ingest process refuses firehose consumers');
      net.startGenerator(RATE);
      const emittedNow = () => net.hosts.reduce((n, h) => n + h.seq, 0);
      const first = emittedNow();

      // a third of the way: SIGKILL the ingest process holding the most hosts
      await waitFor(() => emittedNow() >= first + TOTAL / 3, 'a third of the events emitted');
      const held = await Promise.all(ingest.map((p) => metric(p, 'relay_host_leases_held')));
      const victim = held[0] >= held[1] ? 0 : 1;
      t.diagnostic(`leases held ${held.join('/')}: killing ingest ${victim + 1}`);
      await cluster.kill(ingest[victim]);
      const survivor = ingest[1 - victim];
      await waitFor(
        async () => (await metric(survivor, 'relay_host_leases_held')) === 4,
        'the survivor holds every host',
      );

      // two thirds: restart fan-out 2; its consumer resumes from its cursor
      await waitFor(() => emittedNow() >= first + (2 * TOTAL) / 3, 'two thirds of the events emitted');
      await cluster.kill(fanout[1]);
      consumers[1]?.terminate();
      fanout[1] = await start('fanout', 3);
      connect(1, fanout[1]);

      await waitFor(() => emittedNow() >= first + TOTAL, `the network to emit ${TOTAL} events`);
      net.stopGenerator();
      await waitFor(
        () => net.hosts.every((h, i) => upstream[i].lastSeq === h.seq),
        'the independent subscribers to see every event',
      );
      const want = new Map<string, string>();
      for (const u of upstream) for (const [cid, w] of u.where) want.set(cid, w);
      for (const rec of fan) {
        await waitFor(
          () => [...want.keys()].every((c) => rec.commits.has(c)),
          `every commit on ${rec.label}`,
          {
            describe: () => {
              const missing = [...want.keys()].filter((c) => !rec.commits.has(c));
              return `${missing.length} of ${want.size} missing (${missing
                .slice(0, 5)
                .map((c) => want.get(c))
                .join('; ')}); survivor log:\n${survivor.tail().slice(-4000)}`;
            },
          },
        );
      }
      await waitFor(() => fan[0].lastSeq === fan[1].lastSeq, 'both consumers at the same seq');
      for (const rec of fan) {
        const dup = [...rec.commits].filter(([, n]) => n > 1);
        const foreign = [...rec.commits.keys()].filter((c) => !want.has(c));
        t.diagnostic(
          `${rec.label}: ${want.size} commits upstream, ${rec.commits.size} relayed, ${dup.length} duplicated`,
        );
        assert.deepEqual(rec.problems, [], `${rec.label}: seqs only increase, no error frames`);
        assert.equal(
          dup.length,
          0,
          `${rec.label} duplicated: ${dup
            .slice(0, 5)
            .map(([c]) => rec.where.get(c))
            .join('; ')}`,
        );
        assert.deepEqual(foreign, [], `${rec.label}: nothing the hosts did not emit`);
      }
      assert.deepEqual(fan[1].seqs, fan[0].seqs, 'both fan-out nodes delivered the identical sequence');
      assert.deepEqual(
        upstream.flatMap((u) => u.problems),
        [],
        'upstream streams are clean',
      );
    } finally {
      net.stopGenerator();
      for (const c of consumers) c?.terminate();
      for (const r of readers) r.terminate();
      for (const p of cluster.procs) p.child.kill('SIGKILL');
      await net.stop();
    }
  });
});
