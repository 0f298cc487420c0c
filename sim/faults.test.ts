import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { compareTid, tidTimestampMs } from '../src/protocol/tid.ts';
import { type StreamReader, subscribe } from './consumer.ts';
import { SimPds } from './pds.ts';
import { SimPlc } from './plc.ts';
import { checkCommitBody } from './verify.ts';

describe('fault knobs', () => {
  let plc: SimPlc;
  let host: SimPds;
  let reader: StreamReader;
  let did: string;

  before(async () => {
    plc = await SimPlc.start('faults');
    host = await SimPds.start({ plc, name: 'faulty', seed: 2 });
  });
  after(async () => {
    await reader?.close();
    await host.stop();
    await plc.stop();
  });
  beforeEach(async () => {
    await reader?.close();
    did = host.createAccount().did;
    host.writeRecord(did);
    reader = await subscribe(host.wsUrl, host.seq);
  });

  /** The decoded frames received for seqs after `from`, plus undecodable ones. */
  async function next(n: number) {
    await reader.waitFor(n);
    return reader.frames;
  }

  function lastRev(): string {
    return host.account(did).repo.head()!.rev;
  }

  it('fault-free commits verify', async () => {
    host.writeRecord(did);
    const [f] = await next(1);
    assert.deepEqual(checkCommitBody(f.frame!.body, plc).problems, []);
  });

  it('wrongKey signs with a key the DID document does not name', async () => {
    host.injectFault('wrongKey');
    const ev = host.writeRecord(did);
    assert.deepEqual(ev.faults, ['wrongKey']);
    const [f] = await next(1);
    assert.deepEqual(checkCommitBody(f.frame!.body, plc).problems, ['signature']);
    assert.deepEqual(host.faultLog.at(-1), { kind: 'wrongKey', seq: ev.seq, did, rev: ev.rev });
    host.writeRecord(did);
    const [, g] = await next(2);
    assert.deepEqual(checkCommitBody(g.frame!.body, plc).problems, [], 'only the next commit is faulty');
  });

  it('highS emits the high-S form of a valid signature', async () => {
    host.injectFault('highS');
    host.writeRecord(did);
    const [f] = await next(1);
    assert.deepEqual(checkCommitBody(f.frame!.body, plc).problems, ['high-s']);
  });

  it('revRollback and futureRev', async () => {
    const before = lastRev();
    host.injectFault('revRollback');
    const ev = host.writeRecord(did);
    assert.ok(compareTid(ev.rev!, before) < 0);
    host.injectFault('futureRev');
    const ev2 = host.writeRecord(did);
    assert.ok(tidTimestampMs(ev2.rev!) > Date.now() + 10 * 60_000);
    const [a, b] = await next(2);
    assert.equal(a.frame!.body.rev, ev.rev);
    assert.equal(b.frame!.body.rev, ev2.rev);
    // both are otherwise valid commits
    assert.deepEqual(checkCommitBody(a.frame!.body, plc).problems, []);
  });

  it('brokenPrevData makes the inversion proof miss prevData', async () => {
    const prevRev = lastRev();
    host.injectFault('brokenPrevData');
    host.writeRecord(did);
    const [f] = await next(1);
    assert.equal(f.frame!.body.since, prevRev);
    assert.deepEqual(checkCommitBody(f.frame!.body, plc).problems, ['proof:prev-data-mismatch']);
  });

  it('skippedCommit leaves a gap in the since/prevData chain', async () => {
    const prev = host.account(did).repo.head()!;
    host.injectFault('skippedCommit');
    host.writeRecord(did);
    const [f] = await next(1);
    const body = f.frame!.body;
    assert.deepEqual(checkCommitBody(body, plc).problems, []);
    assert.notEqual(body.since, prev.rev);
    assert.notEqual((body.prevData as { $link: string }).$link, prev.dataCid.$link);
  });

  it('wrongHost points the DID document elsewhere before emitting', async () => {
    host.injectFault('wrongHost', { pds: 'http://127.0.0.1:2' });
    const ev = host.writeRecord(did);
    assert.equal(plc.document(did)?.service[0].serviceEndpoint, 'http://127.0.0.1:2');
    const [f] = await next(1);
    assert.equal(f.frame!.body.seq, ev.seq);
    assert.equal(f.frame!.body.repo, did);
    plc.update(did, { pds: host.url });
  });

  it('malformedCbor and truncatedFrame send an undecodable frame before the real event', async () => {
    host.injectFault('malformedCbor');
    const a = host.writeRecord(did);
    host.injectFault('truncatedFrame');
    const b = host.writeRecord(did);
    const frames = await next(4);
    assert.equal(frames[0].frame, null);
    assert.equal(frames[1].frame!.body.seq, a.seq);
    assert.equal(frames[2].frame, null);
    assert.ok(frames[2].bytes.length < frames[3].bytes.length);
    assert.equal(frames[3].frame!.body.seq, b.seq);
    assert.deepEqual(
      host.faultLog.slice(-2).map((r) => [r.kind, r.seq]),
      [
        ['malformedCbor', a.seq],
        ['truncatedFrame', b.seq],
      ],
    );
    assert.equal(host.firehose.frameAt(a.seq) !== undefined, true, 'the real event is kept for replay');
  });

  it('oversizedFrame sends a frame over 5 MB', async () => {
    host.injectFault('oversizedFrame');
    const ev = host.writeRecord(did);
    const [big, real] = await next(2);
    assert.ok(big.bytes.length > 5 * 1024 * 1024);
    assert.equal(big.frame?.header.op, 1);
    assert.equal(real.frame!.body.seq, ev.seq);
  });

  it('abruptDisconnect drops subscribers; the event is still there on reconnect', async () => {
    const cursor = host.seq;
    host.injectFault('abruptDisconnect');
    const ev = host.writeRecord(did);
    await reader.waitClosed();
    assert.equal(reader.closeCode, 1006);
    reader = await subscribe(host.wsUrl, cursor);
    await reader.waitFor(1);
    assert.equal(reader.frames[0].frame!.body.seq, ev.seq);
  });

  it('random fault rates fire per commit', async () => {
    host.faults.setRates({ highS: 1 });
    host.writeRecord(did);
    host.faults.setRates({ highS: 0 });
    host.writeRecord(did);
    const [a, b] = await next(2);
    assert.deepEqual(checkCommitBody(a.frame!.body, plc).problems, ['high-s']);
    assert.deepEqual(checkCommitBody(b.frame!.body, plc).problems, []);
  });
});
