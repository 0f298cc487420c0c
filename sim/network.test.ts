import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEventBody } from '../src/protocol/events.ts';
import { isValidHandle, isValidNsid, isValidRecordKey } from '../src/protocol/syntax.ts';
import { waitFor } from '../test/support/wait.ts';
import { subscribe } from './consumer.ts';
import { SimNetwork } from './network.ts';
import { checkCommitBody, checkSyncBody } from './verify.ts';

describe('SimNetwork', () => {
  it('step(n) emits exactly n events, the same ones for the same seed', async () => {
    const runs: string[][] = [];
    for (let r = 0; r < 2; r++) {
      const net = await SimNetwork.start({
        hosts: 3,
        accountsPerHost: 4,
        seed: 42,
        identityShare: 0.05,
        accountShare: 0.05,
        syncShare: 0.05,
      });
      try {
        assert.equal(net.accountCount, 12);
        const events = net.step(200);
        assert.equal(events.length, 200);
        runs.push([...events.map((e) => `${e.t} ${e.did} ${e.seq}`), net.plc.get(events[0].did)!.signingKey]);
      } finally {
        await net.stop();
      }
    }
    assert.deepEqual(runs[0], runs[1]);
    const types = new Set(runs[0].slice(0, -1).map((l) => l.split(' ')[0]));
    assert.deepEqual([...types].sort(), ['#account', '#commit', '#identity', '#sync']);
  });

  it('every generated commit verifies and chains per account', async () => {
    const net = await SimNetwork.start({
      hosts: 2,
      accountsPerHost: 3,
      seed: 7,
      identityShare: 0.1,
      accountShare: 0.03,
      syncShare: 0.03,
    });
    const readers = await Promise.all(net.hosts.map((h) => subscribe(h.wsUrl, 0)));
    try {
      for (const h of net.hosts) h.multiWriteShare = 0.3;
      net.pregenerate(100);
      net.step(150);
      const last = new Map<string, string>();
      let multiOp = 0;
      for (let i = 0; i < readers.length; i++) {
        await readers[i].waitFor(net.hosts[i].seq);
        for (const { frame } of readers[i].frames) {
          assert.ok(frame?.header.op === 1);
          parseEventBody(frame.header.t, frame.body); // the relay's own shape check
          if (frame.header.t === '#identity')
            assert.ok(isValidHandle(frame.body.handle), String(frame.body.handle));
          if (frame.header.t === '#commit') {
            for (const op of frame.body.ops as { path: string }[]) {
              const [collection, rkey] = op.path.split('/');
              assert.ok(isValidNsid(collection) && isValidRecordKey(rkey), op.path);
            }
          }
          if (frame.header.t !== '#commit') continue;
          if ((frame.body.ops as unknown[]).length > 1) multiOp++;
          const check = checkCommitBody(frame.body, net.plc);
          assert.deepEqual(check.problems, []);
          const did = frame.body.repo as string;
          assert.equal(frame.body.since, last.get(did) ?? null);
          last.set(did, check.rev);
        }
      }
      assert.ok(multiOp > 10, `${multiOp} multi-op commits`);
    } finally {
      await Promise.all(readers.map((r) => r.close()));
      await net.stop();
    }
  });

  it('migrates an account between hosts like a real PDS move', async () => {
    const net = await SimNetwork.start({ hosts: 2, accountsPerHost: 2, seed: 3 });
    const [r0, r1] = await Promise.all(net.hosts.map((h) => subscribe(h.wsUrl)));
    try {
      const did = net.accounts.find((a) => a.host === 0)!.did;
      const events = net.migrate(did, 1);
      assert.deepEqual(
        events.map((e) => e.t),
        ['#identity', '#account', '#sync', '#account'],
      );
      assert.equal(net.plc.document(did)?.service[0].serviceEndpoint, net.hosts[1].url);
      assert.equal(net.hostOf(did), net.hosts[1]);
      await r1.waitFor(3);
      const [id, acct, sync] = r1.frames.map((f) => f.frame!);
      assert.deepEqual(
        [id.header, acct.body.active, sync.header],
        [{ op: 1, t: '#identity' }, true, { op: 1, t: '#sync' }],
      );
      assert.deepEqual(
        checkSyncBody(sync.body, net.plc).problems,
        [],
        'signed with the new key in the DID document',
      );
      await r0.waitFor(1);
      assert.deepEqual(
        [r0.frames[0].frame!.body.active, r0.frames[0].frame!.body.status],
        [false, 'deactivated'],
      );
      const old = await fetch(`${net.hosts[0].url}/xrpc/com.atproto.sync.getLatestCommit?did=${did}`);
      assert.equal(((await old.json()) as { error: string }).error, 'RepoDeactivated');
      const now = await fetch(`${net.hosts[1].url}/xrpc/com.atproto.sync.getLatestCommit?did=${did}`);
      assert.equal(((await now.json()) as { rev: string }).rev, sync.body.rev);
      net.hosts[1].writeRecord(did);
      await r1.waitFor(4);
      const c = r1.frames[3].frame!;
      assert.equal(c.body.since, sync.body.rev);
      assert.deepEqual(checkCommitBody(c.body, net.plc).problems, []);
    } finally {
      await r0.close();
      await r1.close();
      await net.stop();
    }
  });

  it('the timed generator emits at about the configured rate over all hosts', async () => {
    const net = await SimNetwork.start({ hosts: 4, accountsPerHost: 5, seed: 9, pregenerate: 400 });
    const readers = await Promise.all(net.hosts.map((h) => subscribe(h.wsUrl, undefined, false)));
    try {
      net.startGenerator(2000);
      await waitFor(() => net.generatorStats().emitted >= 800, '800 events');
      net.stopGenerator();
      const stats = net.generatorStats();
      // The generator's quota is the configured rate times the time it ticked
      // (carried over between ticks): never more, and exactly that unless its
      // queues ran dry (a busy machine), whatever the timer's jitter.
      const quota = 2000 * stats.tickedSeconds;
      assert.ok(stats.emitted <= quota + 1, `emitted ${stats.emitted} > quota ${quota}`);
      if (stats.starvedTicks === 0)
        assert.ok(stats.emitted >= quota - 1, `emitted ${stats.emitted} < ${quota}`);
      const total = net.hosts.reduce((n, h) => n + h.firehose.head, 0);
      await Promise.all(readers.map((r, i) => r.waitFor(net.hosts[i].firehose.head - 3 * 5)));
      assert.ok(total >= stats.emitted);
      const counts = net.hosts.map((h) => h.counts['#commit']);
      assert.ok(Math.max(...counts) - Math.min(...counts) < 50, `spread ${counts}`);
    } finally {
      await Promise.all(readers.map((r) => r.close()));
      await net.stop();
    }
  });

  it('a cursor subscription taken while events flow replays then goes live with consecutive seqs', async () => {
    const net = await SimNetwork.start({ hosts: 1, accountsPerHost: 5, seed: 11, pregenerate: 600 });
    const host = net.hosts[0];
    try {
      net.startGenerator(3000);
      await waitFor(() => host.seq >= 100, 'events flowing');
      const cursor = host.seq - 40;
      const r = await subscribe(host.wsUrl, cursor);
      await r.waitFor(300);
      net.stopGenerator();
      const seqs = r.seqs();
      assert.deepEqual(
        seqs,
        seqs.map((_, i) => cursor + 1 + i),
      );
      await r.close();
    } finally {
      await net.stop();
    }
  });
});
