// End to end: Jetstream subscribers of a real relay fed by the simulated
// network. The test writes records through the simulated hosts and keeps its
// own list of those writes (did, operation, collection, rkey, record); each
// subscriber must receive exactly the operations its filter asks for, in
// order, with the records as written: filtered by collection (NSID and
// prefix), by DID, all of them; live and from a time_us cursor, including
// across a relay restart (the time index is rebuilt from disk); and with a
// filter changed mid-stream by options_update (requireHello holds everything
// until the first one).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { SimNetwork } from '../../sim/network.ts';
import {
  type JetCommitEvent,
  perDid,
  WriteRecorder,
  type Written,
  writtenOf,
} from '../../test/support/jetstream-writes.ts';
import { crawlAll, startTestRelay, waitRelayCaughtUp } from '../../test/support/relay-harness.ts';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { Relay } from '../relay.ts';

interface JetEvent extends JetCommitEvent {
  kind: 'commit' | 'identity' | 'account';
}

class TestSubscriber {
  readonly events: JetEvent[] = [];
  closed = false;
  closeCode = 0;
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'Jetstream messages are text frames');
      this.events.push(JSON.parse(data.toString()) as JetEvent);
    });
    ws.on('close', (code) => {
      this.closed = true;
      this.closeCode = code;
    });
  }
  static open(url: string): Promise<TestSubscriber> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const s = new TestSubscriber(ws);
      ws.once('open', () => resolve(s));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }
  commits(): Written[] {
    return this.events.filter((e) => e.kind === 'commit').map(writtenOf);
  }
  close(): void {
    this.ws.close();
  }
}

describe('Jetstream /subscribe end to end', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay;
  let recorder: WriteRecorder;
  let written: Written[];
  let dids: string[];
  const writeSome = (rounds: number) => recorder.writeSome(rounds);

  const url = (q = '') => `ws://127.0.0.1:${relay.port}/subscribe${q ? `?${q}` : ''}`;

  before(async () => {
    dataDir = tempDir('atrelay-jetstream-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 3, seed: 7 });
    dids = net.accounts.map((a) => a.did);
    recorder = new WriteRecorder(net, dids);
    written = recorder.written;
    relay = await startTestRelay(net, dataDir);
    await crawlAll(relay, net);
  });

  after(async () => {
    await relay?.stop();
    await net.stop();
  });

  it('sends each subscriber exactly the operations its filter asks for, live and from a cursor, across a restart', async () => {
    const all = await TestSubscriber.open(url());
    const posts = await TestSubscriber.open(url('wantedCollections=app.bsky.feed.post'));
    const graph = await TestSubscriber.open(url('wantedCollections=app.bsky.graph.*'));
    const one = await TestSubscriber.open(url(`wantedDids=${encodeURIComponent(dids[1])}`));
    const before1 = Date.now() * 1000;
    await waitFor(() => relay.jetstream!.listSubscribers().every((s) => s.state === 'live'));

    writeSome(2);
    await waitRelayCaughtUp(relay, net);
    await waitFor(() => all.commits().length === written.length, 'all-subscriber got every write', {
      describe: () => `${all.commits().length} of ${written.length}`,
    });
    // exactly, in each account's write order, record bodies as written
    assert.deepEqual(perDid(all.commits()), perDid(written));
    const want = (f: (w: Written) => boolean) => written.filter(f);
    await waitFor(() => posts.commits().length >= want((w) => w.collection === 'app.bsky.feed.post').length);
    assert.deepEqual(perDid(posts.commits()), perDid(want((w) => w.collection === 'app.bsky.feed.post')));
    await waitFor(
      () => graph.commits().length >= want((w) => w.collection.startsWith('app.bsky.graph.')).length,
    );
    assert.deepEqual(
      perDid(graph.commits()),
      perDid(want((w) => w.collection.startsWith('app.bsky.graph.'))),
    );
    await waitFor(() => one.commits().length >= want((w) => w.did === dids[1]).length);
    assert.deepEqual(
      one.commits(),
      want((w) => w.did === dids[1]),
    );
    assert.ok(one.events.every((e) => e.did === dids[1]));

    // time_us: unique, increasing, microseconds of now
    const times = all.events.map((e) => e.time_us);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], 'time_us never goes back');
    assert.ok(times[0] >= before1 - 5_000_000);
    // the messages of one commit share the commit's time_us; different commits never do
    const creates = all.events.filter((e) => e.commit?.operation === 'create' && e.commit.record);
    assert.ok(creates.every((e) => typeof e.commit!.cid === 'string' && e.commit!.cid.startsWith('bafyrei')));

    // A cursor in the middle: replay from the first event with time_us ≥ cursor, then live.
    const firstOfSecondRound = all.events.find(
      (e) => e.kind === 'commit' && e.commit?.operation === 'delete',
    )!;
    // (a commit's messages share its time_us: the replay starts at the commit's first operation)
    const fromIndex = all.events.findIndex((e) => e.time_us >= firstOfSecondRound.time_us);
    const expectedTail = all.events.slice(fromIndex);
    const replay = await TestSubscriber.open(url(`cursor=${firstOfSecondRound.time_us}`));
    await waitFor(() => replay.events.length >= expectedTail.length);
    assert.deepEqual(replay.events, expectedTail);
    // A cursor older than everything: the whole log, then live; the same as the live subscriber saw.
    const fromStart = await TestSubscriber.open(url('cursor=1&wantedCollections=app.bsky.feed.post'));
    await waitFor(() => fromStart.commits().length >= posts.commits().length);
    assert.deepEqual(fromStart.commits(), posts.commits());

    // Restart: the relay reopens its log and time index; a cursor still finds its place.
    for (const s of [all, posts, graph, one, replay, fromStart]) s.close();
    const timesBefore = all.events.map((e) => e.time_us);
    await relay.stop();
    relay = await startTestRelay(net, dataDir);
    await crawlAll(relay, net);
    const again = await TestSubscriber.open(url(`cursor=${firstOfSecondRound.time_us}`));
    await waitFor(() => again.events.length >= expectedTail.length);
    assert.deepEqual(again.events.slice(0, expectedTail.length), expectedTail, 'same events, same time_us');
    const writtenBefore = written.length;
    writeSome(1);
    await waitRelayCaughtUp(relay, net);
    const newWrites = written.slice(writtenBefore);
    await waitFor(
      () =>
        again.commits().length >= expectedTail.filter((e) => e.kind === 'commit').length + newWrites.length,
    );
    const liveAfter = again.commits().slice(expectedTail.filter((e) => e.kind === 'commit').length);
    assert.deepEqual(
      perDid(liveAfter),
      perDid(newWrites),
      'live after the restart: the new writes, once each',
    );
    const newTimes = again.events.slice(expectedTail.length).map((e) => e.time_us);
    assert.ok(newTimes[0] > timesBefore[timesBefore.length - 1], 'time_us keeps increasing across a restart');
    again.close();
  });

  it('applies options_update mid-stream, and requireHello holds events until the first one', async () => {
    const hello = await TestSubscriber.open(url('requireHello=true'));
    const sub = await TestSubscriber.open(url('wantedCollections=app.bsky.feed.post'));
    await waitFor(() => relay.jetstream!.listSubscribers().filter((s) => s.state === 'live').length >= 1);
    const mark = written.length;
    writeSome(1);
    await waitRelayCaughtUp(relay, net);
    const batch1 = written.slice(mark);
    await waitFor(
      () => sub.commits().length >= batch1.filter((w) => w.collection === 'app.bsky.feed.post').length,
    );
    assert.equal(hello.events.length, 0, 'nothing before the hello');

    // switch: only follows of dids[2]
    const update = {
      type: 'options_update',
      payload: {
        wantedCollections: ['app.bsky.graph.follow'],
        wantedDids: [dids[2]],
        maxMessageSizeBytes: 0,
      },
    };
    sub.ws.send(JSON.stringify(update));
    hello.ws.send(JSON.stringify(update));
    // wait until the relay has read both updates (before writing more)
    await waitFor(
      () => relay.jetstream!.listSubscribers().filter((s) => s.optionsUpdates === 1).length === 2,
    );
    const mark2 = written.length;
    writeSome(1);
    await waitRelayCaughtUp(relay, net);
    const batch1Posts = batch1.filter((w) => w.collection === 'app.bsky.feed.post');
    const batch2 = written
      .slice(mark2)
      .filter((w) => w.collection === 'app.bsky.graph.follow' && w.did === dids[2]);
    assert.ok(batch2.length > 0);
    await waitFor(() => hello.commits().length >= batch2.length);
    assert.deepEqual(perDid(hello.commits()), perDid(batch2));
    await waitFor(() => sub.commits().length >= batch1Posts.length + batch2.length);
    assert.deepEqual(perDid(sub.commits().slice(0, batch1Posts.length)), perDid(batch1Posts));
    assert.deepEqual(sub.commits().slice(batch1Posts.length), batch2);

    // a bad update closes the connection
    sub.ws.send(JSON.stringify({ type: 'options_update', payload: { wantedDids: ['not a did'] } }));
    await waitFor(() => sub.closed);
    assert.equal(sub.closeCode, 1008);
    hello.close();
  });

  it('refuses a bad query before the upgrade', async () => {
    await assert.rejects(TestSubscriber.open(url('wantedCollections=not..valid')), /HTTP 400/);
    await assert.rejects(TestSubscriber.open(url('wantedDids=nope')), /HTTP 400/);
    await assert.rejects(TestSubscriber.open(url('compress=true')), /HTTP 400/, 'zstd is not offered');
  });
});
