import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { subscribe } from './consumer.ts';
import { ThreadedSimNetwork } from './threaded.ts';
import { checkCommitBody } from './verify.ts';

describe('ThreadedSimNetwork', () => {
  it('runs hosts in worker threads with the PLC in the main thread', async () => {
    const net = await ThreadedSimNetwork.start({ threads: 2, hosts: 3, accounts: 9, seed: 5 });
    try {
      assert.deepEqual(
        net.hosts.map((h) => [h.name, h.accounts]),
        [
          ['pds0', 3],
          ['pds1', 3],
          ['pds2', 3],
        ],
      );
      assert.equal(net.plc.entries.size, 9);
      for (const e of net.plc.entries.values()) assert.ok(net.hosts.some((h) => h.url === e.pds));
      const readers = await Promise.all(net.hosts.map((h) => subscribe(h.wsUrl)));
      await net.pregenerate(300);
      await net.startGenerator(1500);
      await Promise.all(readers.map((r) => r.waitFor(40, 10_000)));
      await net.stopGenerator();
      const stats = await net.stats();
      assert.ok(stats.emitted >= 120);
      assert.equal(stats.subscribers, 3);
      let commits = 0;
      for (const r of readers) {
        for (const { frame } of r.frames) {
          if (frame?.header.op !== 1 || frame.header.t !== '#commit') continue;
          assert.deepEqual(checkCommitBody(frame.body, net.plc).problems, []);
          commits++;
        }
        await r.close();
      }
      assert.ok(commits >= 100);
      const res = await fetch(`${net.hosts[1].url}/xrpc/com.atproto.server.describeServer`);
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      await net.stop();
    }
  });
});
