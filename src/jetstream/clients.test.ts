// Interop: the real Jetstream client libraries from npm (@skyware/jetstream
// and @atcute/jetstream) against a real relay fed by the simulated network.
// Node 20 has no global WebSocket, so both get the `ws` package's. Each
// client must receive exactly the operations it asked for, compared with the
// test's own record of what it wrote through the simulated hosts: filtered
// by collection and by DID, from a time_us cursor across a relay restart
// (@atcute always connects with requireHello=true and a cursor, and sends
// its filters as an options_update on open), and with filters changed by
// options_update while connected.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { JetstreamSubscription } from '@atcute/jetstream';
import { Jetstream } from '@skyware/jetstream';
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

/** Collects an @atcute subscription's commit events until stopped. */
function collectAtcute(sub: JetstreamSubscription): { events: JetCommitEvent[]; stop: () => Promise<void> } {
  const events: JetCommitEvent[] = [];
  const it = sub[Symbol.asyncIterator]();
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const r = await it.next();
      if (r.done) return;
      events.push(r.value as JetCommitEvent);
    }
  })();
  return {
    events,
    // closes the socket; the iterator's pending next() never settles, which holds nothing open
    stop: async () => {
      stopped = true;
      await it.return?.();
    },
  };
}

function collectSkyware(js: Jetstream): JetCommitEvent[] {
  const events: JetCommitEvent[] = [];
  js.on('commit', (e) => events.push(e as unknown as JetCommitEvent));
  return events;
}

const commitsOf = (events: readonly JetCommitEvent[]): Written[] =>
  events.filter((e) => e.kind === 'commit').map(writtenOf);

describe('Jetstream client libraries against the relay', () => {
  let net: SimNetwork;
  let dataDir: string;
  let relay: Relay;
  let recorder: WriteRecorder;
  let dids: string[];
  const wsUrl = () => `ws://127.0.0.1:${relay.port}`;
  const liveCount = () => relay.jetstream!.listSubscribers().filter((s) => s.state === 'live').length;

  before(async () => {
    dataDir = tempDir('atrelay-jetstream-clients-');
    net = await SimNetwork.start({ hosts: 2, accountsPerHost: 3, seed: 11 });
    dids = net.accounts.map((a) => a.did);
    recorder = new WriteRecorder(net, dids);
    relay = await startTestRelay(net, dataDir);
    await crawlAll(relay, net);
  });

  after(async () => {
    await relay?.stop();
    await net.stop();
  });

  it('@skyware/jetstream and @atcute/jetstream get exactly what they filter for, live, from a cursor across a restart, and after options_update', async () => {
    const startUs = Date.now() * 1000 - 1;
    // @skyware: by collection, and by DID (query parameters)
    const skyPosts = new Jetstream({
      ws: WebSocket,
      endpoint: `${wsUrl()}/subscribe`,
      wantedCollections: ['app.bsky.feed.post'],
    });
    const skyOne = new Jetstream({ ws: WebSocket, endpoint: `${wsUrl()}/subscribe`, wantedDids: [dids[4]] });
    const postsEvents = collectSkyware(skyPosts);
    const oneEvents = collectSkyware(skyOne);
    skyPosts.start();
    skyOne.start();
    // @atcute: a prefix filter, sent as its hello (options_update)
    const atGraph = new JetstreamSubscription({
      url: wsUrl(),
      ws: { WebSocket },
      wantedCollections: ['app.bsky.graph.*'],
    });
    const graph = collectAtcute(atGraph);
    await waitFor(() => liveCount() === 3, 'three clients live');

    const round1 = recorder.writeSome(2);
    await waitRelayCaughtUp(relay, net);
    const posts1 = round1.filter((w) => w.collection === 'app.bsky.feed.post');
    const graph1 = round1.filter((w) => w.collection.startsWith('app.bsky.graph.'));
    const one1 = round1.filter((w) => w.did === dids[4]);
    await waitFor(() => commitsOf(postsEvents).length >= posts1.length, 'skyware posts');
    await waitFor(() => commitsOf(oneEvents).length >= one1.length, 'skyware did');
    await waitFor(() => commitsOf(graph.events).length >= graph1.length, 'atcute graph');
    assert.deepEqual(perDid(commitsOf(postsEvents)), perDid(posts1));
    assert.deepEqual(commitsOf(oneEvents), one1);
    assert.deepEqual(perDid(commitsOf(graph.events)), perDid(graph1));

    // options_update through @skyware: switch to follows of dids[1] only
    skyPosts.updateOptions({ wantedCollections: ['app.bsky.graph.follow'], wantedDids: [dids[1]] });
    // (the @atcute client's hello was one update; @skyware's makes two)
    await waitFor(
      () => relay.jetstream!.listSubscribers().filter((s) => s.optionsUpdates >= 1).length === 2,
      'the relay applied the update',
    );
    const round2 = recorder.writeSome(1);
    await waitRelayCaughtUp(relay, net);
    const follows2 = round2.filter((w) => w.collection === 'app.bsky.graph.follow' && w.did === dids[1]);
    await waitFor(() => commitsOf(postsEvents).length >= posts1.length + follows2.length, 'updated skyware');
    assert.deepEqual(commitsOf(postsEvents).slice(posts1.length), follows2);
    skyPosts.close();
    skyOne.close();
    await graph.stop();
    await waitFor(() => relay.jetstream!.listSubscribers().length === 0, 'clients gone');

    // Restart; @atcute resumes from a cursor before everything: the whole history, once, then live.
    await relay.stop();
    relay = await startTestRelay(net, dataDir);
    await crawlAll(relay, net);
    const atAll = new JetstreamSubscription({ url: wsUrl(), ws: { WebSocket }, cursor: startUs });
    const all = collectAtcute(atAll);
    const before3 = [...round1, ...round2];
    await waitFor(() => commitsOf(all.events).length >= before3.length, 'atcute replay after restart');
    await waitFor(() => liveCount() === 1, 'atcute live after replay');
    const round3 = recorder.writeSome(1);
    await waitRelayCaughtUp(relay, net);
    await waitFor(() => commitsOf(all.events).length >= before3.length + round3.length, 'atcute live');
    assert.deepEqual(perDid(commitsOf(all.events)), perDid([...before3, ...round3]));
    const times = all.events.map((e) => e.time_us);
    for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1]);
    await all.stop();
  });
});
