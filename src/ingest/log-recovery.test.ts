import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimNetwork } from '../../sim/network.ts';
import { openTempEventLog, tempMetadataStore } from '../../test/support/temp.ts';
import { EventKind } from '../eventlog/types.ts';
import { silentLogger } from '../log.ts';
import { rewriteSeq } from '../protocol/frames.ts';
import { headOfFrame, recordCursorReset, recoverFromLog } from './log-recovery.ts';

async function setup() {
  const net = await SimNetwork.start({ hosts: 1, accountsPerHost: 1, seed: 'recovery' });
  const { store } = await tempMetadataStore();
  const log = await openTempEventLog();
  const a = (await store.createHost({ hostname: 'a.example.com' })).value;
  const b = (await store.createHost({ hostname: 'b.example.com' })).value;
  const did = net.accounts[0].did;
  const account = (await store.createAccount({ did, hostId: a.id, status: 'active' })).value;
  const host = net.hosts[0];
  /** A fresh #commit of the account, as the host's frame. */
  const commit = () => {
    const ev = host.writeRecord(did);
    return { frame: host.firehose.frameAt(host.seq)!, rev: ev.rev! };
  };
  return { net, store, log, a, b, did, account, commit };
}

describe('recoverFromLog', () => {
  it('finds the events relayed above each stored cursor and repairs repo heads the store lost', async () => {
    const { net, store, log, a, b, account, commit } = await setup();
    try {
      store.setLogCheckpointSource(() => log.head());
      store.updateHostCursor(a.id, 10);
      await store.flushCursors(); // checkpoint 0: everything after it is scanned
      const c1 = commit();
      const c2 = commit();
      const append = (frame: Uint8Array, kind: number, origin?: { hostId: number; seq: number }) =>
        log.append([{ kind, uid: account.uid, frame: (seq) => rewriteSeq(frame, seq), origin }]);
      await append(c1.frame, EventKind.commit, { hostId: a.id, seq: 9 }); // at or below the cursor
      await append(c1.frame, EventKind.commit, { hostId: a.id, seq: 11 });
      await append(c2.frame, EventKind.commit, { hostId: a.id, seq: 12 });
      await log.append([{ kind: EventKind.account, uid: account.uid, frame: new Uint8Array([0xa0]) }]);
      await log.append([
        {
          kind: EventKind.identity,
          uid: account.uid,
          frame: new Uint8Array([0xa0]),
          origin: { hostId: b.id, seq: 3 },
        },
      ]);
      // the store never got the head writes
      assert.equal((await store.getAccountByUid(account.uid))?.head, null);
      const r = await recoverFromLog({ log, store, logger: silentLogger });
      assert.deepEqual(Object.fromEntries(r.byHost), { [a.id]: [11, 12], [b.id]: [3] });
      assert.equal(r.mark, 0);
      assert.equal(r.scanned, 5);
      assert.equal(r.headsRepaired, 1);
      assert.equal(
        (await store.getAccountByUid(account.uid))?.head?.rev,
        c2.rev,
        'the last commit in the log',
      );
      // run again: nothing left to repair
      assert.equal((await recoverFromLog({ log, store, logger: silentLogger })).headsRepaired, 0);
    } finally {
      await log.close();
      await store.close();
      await net.stop();
    }
  });

  it('scans only after the stored checkpoint, and ignores a host records from before its cursor reset', async () => {
    const { net, store, log, a, account, commit } = await setup();
    try {
      const frame = commit().frame;
      const append = (seq: number) =>
        log.append([
          {
            kind: EventKind.commit,
            uid: account.uid,
            frame: (s) => rewriteSeq(frame, s),
            origin: { hostId: a.id, seq },
          },
        ]);
      await append(5);
      store.setLogCheckpointSource(() => log.head()); // checkpoint 1: record 1 is not scanned
      await store.flushCursors();
      assert.equal(await store.getLogCheckpoint(), 1);
      await append(6);
      await append(7);
      assert.deepEqual(
        Object.fromEntries((await recoverFromLog({ log, store, logger: silentLogger })).byHost),
        {
          [a.id]: [6, 7],
        },
      );
      // The operator resets the cursor (the PDS reset its seqs): 6 and 7 mean nothing now.
      await recordCursorReset(store, a.id, log.head());
      await append(2);
      assert.deepEqual(
        Object.fromEntries((await recoverFromLog({ log, store, logger: silentLogger })).byHost),
        {
          [a.id]: [2],
        },
      );
    } finally {
      await log.close();
      await store.close();
      await net.stop();
    }
  });

  it('reads the head a #commit or #sync frame sets, and nothing from other frames', async () => {
    const { net, store, log, commit, did } = await setup();
    try {
      const c = commit();
      const h = headOfFrame(c.frame);
      assert.equal(h?.did, did);
      assert.equal(h?.head.rev, c.rev);
      assert.match(h?.head.dataCid ?? '', /^bafy/);
      const sync = net.hosts[0].emitSync(did);
      const s = headOfFrame(net.hosts[0].firehose.frameAt(net.hosts[0].seq)!);
      assert.equal(s?.head.rev, sync.rev);
      assert.equal(headOfFrame(new Uint8Array([1, 2, 3])), undefined);
    } finally {
      await log.close();
      await store.close();
      await net.stop();
    }
  });
});
