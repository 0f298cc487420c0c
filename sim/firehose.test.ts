import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { WebSocketServer } from 'ws';
import { waitFor } from '../test/support/wait.ts';
import { subscribe } from './consumer.ts';
import { Firehose } from './firehose.ts';
import { prepareFrame } from './wire.ts';

// A bare HTTP server routing every upgrade to one Firehose, so the cursor
// semantics are tested without repos.
describe('Firehose (subscribeRepos semantics)', () => {
  let server: Server;
  let wss: WebSocketServer;
  let hose: Firehose;
  let url: string;

  function publish(n: number): void {
    for (let i = 0; i < n; i++) {
      hose.publish(
        prepareFrame('#identity', 'did:plc:x', { did: 'did:plc:x', time: new Date(0).toISOString() }),
      );
    }
  }

  before(async () => {
    hose = new Firehose(20);
    wss = new WebSocketServer({ noServer: true });
    server = createServer((_req, res) => res.end());
    server.on('upgrade', (req, socket, head) => {
      const cursor = new URL(req.url ?? '/', 'http://x').searchParams.get('cursor');
      wss.handleUpgrade(req, socket, head, (ws) =>
        hose.attach(ws, cursor === null ? undefined : Number(cursor)),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/xrpc/com.atproto.sync.subscribeRepos`;
  });
  after(async () => {
    hose.terminateAll();
    wss.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('without a cursor sends only live events', async () => {
    publish(3);
    const r = await subscribe(url);
    publish(2);
    await r.waitFor(2);
    assert.deepEqual(r.seqs(), [4, 5]);
    await r.close();
  });

  it('replays after the cursor, then cuts over to live without gap or duplicate', async () => {
    const r = await subscribe(url, 2);
    publish(3);
    await r.waitFor(6);
    assert.deepEqual(r.seqs(), [3, 4, 5, 6, 7, 8]);
    await r.close();
  });

  it('closes with FutureCursor for a cursor past the head', async () => {
    const r = await subscribe(url, hose.head + 1);
    await r.waitClosed();
    assert.equal(r.frames.length, 1);
    assert.deepEqual(r.frames[0].frame?.header, { op: -1 });
    assert.equal(r.frames[0].frame?.body.error, 'FutureCursor');
  });

  it('a cursor equal to the head replays nothing', async () => {
    const head = hose.head;
    const r = await subscribe(url, head);
    publish(1);
    await r.waitFor(1);
    assert.deepEqual(r.seqs(), [head + 1]);
    await r.close();
  });

  it('sends #info OutdatedCursor for a cursor older than the history, then everything kept', async () => {
    publish(30);
    const oldest = hose.oldest;
    assert.equal(oldest, hose.head - 19);
    const r = await subscribe(url, 1);
    await r.waitFor(21);
    const first = r.frames[0].frame!;
    assert.deepEqual(first.header, { op: 1, t: '#info' });
    assert.equal(first.body.name, 'OutdatedCursor');
    const seqs = r.seqs();
    assert.equal(seqs[0], oldest);
    assert.equal(seqs.length, 20);
    await r.close();
    // the oldest-minus-one cursor is not outdated
    const r2 = await subscribe(url, oldest - 1);
    await r2.waitFor(20);
    assert.equal(r2.frames[0].frame?.header.op, 1);
    assert.equal(r2.seqs()[0], oldest);
    await r2.close();
  });

  it('terminateAll drops subscribers without a close frame', async () => {
    const r = await subscribe(url);
    await waitFor(() => hose.subscriberCount === 1, 'the subscription');
    hose.terminateAll();
    await r.waitClosed();
    assert.equal(r.closeCode, 1006);
  });

  it('a subscriber that falls out of the history gets ConsumerTooSlow', async () => {
    const slowHose = new Firehose(50, 1024);
    const slowServer = createServer((_req, res) => res.end());
    const slowWss = new WebSocketServer({ noServer: true });
    slowServer.on('upgrade', (req, socket, head) => {
      slowWss.handleUpgrade(req, socket, head, (ws) => slowHose.attach(ws, undefined));
    });
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', r));
    const port = (slowServer.address() as AddressInfo).port;
    const r = await subscribe(`ws://127.0.0.1:${port}/`);
    try {
      r.ws.pause();
      const body = { did: 'did:plc:x', time: 'x'.repeat(16 * 1024) };
      // enough to fill the loopback socket buffers, so frames back up in the server
      for (let i = 0; i < 2000; i++) slowHose.publish(prepareFrame('#identity', 'did:plc:x', body));
      // the server gives up on it (it fell out of the 50-event history) while it is paused
      await waitFor(() => slowHose.subscriberCount === 0, 'the ConsumerTooSlow verdict');
      r.ws.resume();
      await r.waitClosed();
      const last = r.frames.at(-1)!.frame!;
      assert.deepEqual(last.header, { op: -1 });
      assert.equal(last.body.error, 'ConsumerTooSlow');
      assert.ok(r.frames.length < 2000);
    } finally {
      await r.close();
      slowHose.terminateAll();
      slowWss.close();
      slowServer.closeAllConnections();
      await new Promise((res) => slowServer.close(res));
    }
  });
});
