// Proves the interop harness against Bluesky's own code end to end, before
// any relay is involved: the reference PDS (Node 22 child process) performs
// every kind of write the relay scenarios need, and an @atproto/sync Firehose
// consumer with verification on (another Node 22 child) reads that PDS's own
// firehose, live and replayed from cursor 0. Each message must arrive, in
// order, exactly as the PDS sequenced it, and every op must pass the
// library's signature and MST proof checks. Run with `npm run test:interop`.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { readCar, writeCar } from '../src/protocol/car.ts';
import { parseCid } from '../src/protocol/cid.ts';
import { decodeFrame, encodeFrame } from '../src/protocol/frames.ts';
import { WAIT_DEADLINE_MS } from '../test/support/wait.ts';
import { assertConsumerSaw, assertRelayedPerDid, expectedEvents } from './compare.ts';
import {
  type CommitResult,
  Consumer,
  type ConsumerLine,
  Harness,
  type PdsEvent,
  ProcessGroup,
} from './procs.ts';

// The Firehose library appends /xrpc/com.atproto.sync.subscribeRepos itself.
const firehoseUrl = (httpUrl: string) => httpUrl.replace(/^http/, 'ws');

describe('interop harness: reference PDS firehose read by @atproto/sync', { timeout: 240_000 }, () => {
  const group = new ProcessGroup();
  let harness: Harness;
  // Kept from the first test for the ones that check the checks.
  let liveLines: ConsumerLine[] = [];
  let liveEmitted: PdsEvent[] = [];

  before(async () => {
    harness = await Harness.start(group, 1);
  });
  after(async () => {
    await group.killAll();
  });

  it('every kind of event arrives verified, complete and in order, live and replayed', async () => {
    const { plc, pds } = harness.info;
    const live = Consumer.start(group, { service: firehoseUrl(pds[0]), plc, pds, cursor: 0 });
    await live.waitFor((c) => c.lines.some((l) => l.type === 'started'), WAIT_DEADLINE_MS, 'consumer start');

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
    liveLines = [...live.lines];
    liveEmitted = emitted;

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

  it('the relay comparison fails on a dropped, duplicated, reordered or altered event', () => {
    assert.ok(liveLines.length > 0, 'needs the first test');
    // As a relay would show them: same messages, its own seqs.
    const blocks = toBlocks(liveLines.filter((l) => l.type === 'frame' || l.type === 'event'));
    assertRelayedPerDid(renumber(blocks), liveEmitted);
    const commitAt = blocks.findIndex((b) => b[0].kind === 'commit' && (b[0].ops?.length ?? 0) === 1);
    const sameDidNext = blocks.findIndex(
      (b, i) => i > commitAt && b[0].did === blocks[commitAt][0].did && b[0].kind === 'commit',
    );
    assert.ok(commitAt >= 0 && sameDidNext > commitAt);
    const mutations: Record<string, ConsumerLine[][]> = {
      dropped: blocks.filter((_, i) => i !== commitAt),
      duplicated: [...blocks.slice(0, commitAt + 1), blocks[commitAt], ...blocks.slice(commitAt + 1)],
      reordered: blocks.map((b, i) =>
        i === commitAt ? blocks[sameDidNext] : i === sameDidNext ? blocks[commitAt] : b,
      ),
      'altered op CID': blocks.map((b, i) =>
        i === commitAt
          ? [
              { ...b[0], ops: b[0].ops!.map((o) => ({ ...o, cid: blocks[sameDidNext][0].commit ?? null })) },
              ...b.slice(1),
            ]
          : b,
      ),
      'unverified op': blocks.map((b, i) => (i === commitAt ? [b[0]] : b)),
    };
    for (const [name, mutated] of Object.entries(mutations)) {
      assert.throws(() => assertRelayedPerDid(renumber(mutated), liveEmitted), assert.AssertionError, name);
    }
  });

  it('a byte changed in a commit on the wire is caught by the verifying consumer', async () => {
    const { plc, pds } = harness.info;
    // A proxy in front of the PDS firehose that alters one record block of the
    // first commit that creates a record, keeping its CID.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    let tampered = '';
    wss.on('connection', (down, req) => {
      const up = new WebSocket(`${pds[0].replace(/^http/, 'ws')}${req.url}`);
      up.on('message', (data: Buffer) => {
        let out: Uint8Array = new Uint8Array(data);
        const frame = decodeFrame(out);
        const body = frame.body as {
          ops?: { action: string; cid?: unknown }[];
          blocks?: Uint8Array;
          commit?: unknown;
        };
        const op = body.ops?.find((o) => o.action === 'create');
        if (!tampered && 't' in frame.header && frame.header.t === '#commit' && op && body.blocks) {
          const car = readCar(body.blocks);
          const cid = parseCid(String((op.cid as { $link: string }).$link));
          const block = car.blocks.get(cid)!.slice();
          block[block.length - 2] ^= 0x01;
          car.blocks.set(cid, block);
          out = encodeFrame('#commit', { ...body, blocks: writeCar(car.roots, car.blocks) });
          tampered = String((body.commit as { $link: string }).$link);
        }
        down.send(out);
      });
      up.on('close', () => down.close());
      down.on('close', () => up.close());
    });
    await new Promise((r) => wss.once('listening', r));
    try {
      const port = (wss.address() as AddressInfo).port;
      const c = Consumer.start(group, { service: `ws://127.0.0.1:${port}`, plc, pds, cursor: 0 });
      const now = await harness.events(0, 0);
      await c.waitForSeq(now[now.length - 1].seq);
      assert.ok(tampered, 'a commit was altered');
      assert.ok(c.errors().length > 0, 'the library reported the altered commit');
      assert.ok(!c.events().some((e) => e.commit === tampered), 'no event of the altered commit passed');
      assert.throws(() => assertConsumerSaw(c.lines, now, { sameSeqs: true }), assert.AssertionError);
      await c.stop();
    } finally {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((r) => wss.close(r));
    }
  });
});

/** Groups consumer lines into [frame, ...its verified events]. */
function toBlocks(lines: ConsumerLine[]): ConsumerLine[][] {
  const out: ConsumerLine[][] = [];
  for (const l of lines) {
    if (l.type === 'frame') out.push([l]);
    else out[out.length - 1]?.push(l);
  }
  return out;
}

/** Flattens blocks and gives them fresh consecutive seqs, as a relay would. */
function renumber(blocks: ConsumerLine[][]): ConsumerLine[] {
  return blocks.flatMap((b, i) => b.map((l) => ({ ...l, seq: 1000 + i })));
}
