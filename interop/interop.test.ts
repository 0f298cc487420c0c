// Proves the interop harness against Bluesky's own code end to end, before
// any relay is involved: the reference PDS (Node 22 child process) performs
// every kind of write the relay scenarios need, and an @atproto/sync Firehose
// consumer with verification on (another Node 22 child) reads that PDS's own
// firehose, live and replayed from cursor 0. Each message must arrive, in
// order, exactly as the PDS sequenced it, and every op must pass the
// library's signature and MST proof checks. Run with `npm run test:interop`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertConsumerSaw, expectedEvents } from './compare.ts';
import { type CommitResult, Consumer, Harness, type PdsEvent, ProcessGroup } from './procs.ts';

// The Firehose library appends /xrpc/com.atproto.sync.subscribeRepos itself.
const firehoseUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');

describe('interop harness: reference PDS firehose read by @atproto/sync', { timeout: 240_000 }, () => {
  const group = new ProcessGroup();
  let harness: Harness;

  before(async () => {
    harness = await Harness.start(group, 1);
  });
  after(async () => {
    await group.killAll();
  });

  it('every kind of event arrives verified, complete and in order, live and replayed', async () => {
    const { plc, pds } = harness.info;
    const live = Consumer.start(group, { service: firehoseUrl(pds[0]), plc, pds, cursor: 0 });
    await live.waitFor((c) => c.lines.some((l) => l.type === 'started'), 30_000, 'consumer start');

    const alice = await harness.call<{ did: string }>('createAccount', { pds: 0, handle: 'alice.test' });
    const bob = await harness.call<{ did: string }>('createAccount', { pds: 0, handle: 'bob.test' });
    const p1 = await harness.call<CommitResult>('post', { did: alice.did, text: 'first' });
    const p2 = await harness.call<CommitResult>('post', { did: alice.did, text: 'second' });
    await harness.call('like', { did: bob.did, uri: p1.uri, cid: p1.cid });
    await harness.call('follow', { did: bob.did, subject: alice.did });
    const rkey2 = p2.uri!.split('/').pop();
    const upd = await harness.call<CommitResult>('putRecord', {
      did: alice.did,
      collection: 'app.bsky.feed.post',
      rkey: rkey2,
      record: { $type: 'app.bsky.feed.post', text: 'second, edited', createdAt: new Date().toISOString() },
    });
    assert.deepEqual(
      upd.ops.map((o) => o.action),
      ['update'],
    );
    const del = await harness.call<CommitResult>('deleteRecord', {
      did: alice.did,
      collection: 'app.bsky.feed.post',
      rkey: p1.uri!.split('/').pop(),
    });
    assert.deepEqual(del.ops, [
      { action: 'delete', path: `app.bsky.feed.post/${p1.uri!.split('/').pop()}`, cid: null },
    ]);
    const batch = await harness.call<CommitResult>('batch', { did: alice.did, count: 200 });
    assert.equal(batch.ops.length, 200);
    await harness.call('updateHandle', { did: alice.did, handle: 'alice2.test' });
    await harness.call('deactivate', { did: bob.did });
    await harness.call('activate', { did: bob.did });
    await harness.call('post', { did: bob.did, text: 'back again' });
    const carol = await harness.call<{ did: string }>('createAccount', { pds: 0, handle: 'carol.test' });
    await harness.call('post', { did: carol.did, text: 'short-lived' });

    // The PDS drops a deleted account's past events from its log (a reader
    // that has not read them yet never will), so wait until the consumer has
    // them, and keep the record of what was emitted before deleting.
    const beforeDelete = await harness.events(0, 0);
    const lastBefore = beforeDelete[beforeDelete.length - 1].seq;
    await live.waitForSeq(lastBefore);
    await harness.call('deleteAccount', { did: carol.did });
    const tail = await harness.events(0, lastBefore);
    const emitted: PdsEvent[] = [...beforeDelete, ...tail];
    const lastSeq = emitted[emitted.length - 1].seq;

    // What the scenario covered, as the PDS sequenced it.
    const kinds = new Set(emitted.map((e) => e.type));
    for (const k of ['commit', 'identity', 'account', 'sync']) assert.ok(kinds.has(k as PdsEvent['type']), k);
    assert.ok(emitted.some((e) => e.type === 'identity' && e.handle === 'alice2.test'));
    assert.ok(emitted.some((e) => e.type === 'account' && e.did === bob.did && e.status === 'deactivated'));
    assert.ok(emitted.some((e) => e.type === 'account' && e.did === carol.did && e.status === 'deleted'));
    const ops = expectedEvents(emitted).map((e) => e.event);
    for (const k of ['create', 'update', 'delete']) assert.ok(ops.includes(k), k);

    await live.waitForSeq(lastSeq);
    assertConsumerSaw(live.lines, emitted, { sameSeqs: true });

    // Replay from the start: the deleted account's history is gone from the
    // PDS's log, everything else is served again and verifies again.
    const replay = Consumer.start(group, { service: firehoseUrl(pds[0]), plc, pds, cursor: 0 });
    const now = await harness.events(0, 0);
    await replay.waitForSeq(now[now.length - 1].seq);
    assertConsumerSaw(replay.lines, now, { sameSeqs: true });
    assert.ok(
      replay.events().some((e) => e.event === 'create' && e.did === alice.did),
      'replay verified commits',
    );
    await Promise.all([live.stop(), replay.stop()]);
  });
});
