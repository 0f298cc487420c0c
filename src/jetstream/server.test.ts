// The /subscribe server on its own (an event log, no relay): hostile and slow
// subscribers. A subscriber that stops reading is closed with
// ConsumerTooSlow once its backlog passes the outbox limit, and the others
// keep getting everything; subscriber messages that are not JSON, binary or
// of an unknown type are ignored, an oversized one closes only that
// connection; the per-network limit refuses before the upgrade; nothing is
// encoded while nobody is live.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import WebSocket from 'ws';
import { openTempEventLog } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import type { FileEventLog } from '../eventlog/file-log.ts';
import { writeCar } from '../protocol/car.ts';
import { encodeCbor } from '../protocol/cbor.ts';
import { cidForCbor } from '../protocol/cid.ts';
import { encodeFrame } from '../protocol/frames.ts';
import { identityFrame } from '../protocol/relay-frames.ts';
import { JETSTREAM_PATH, type JetstreamOptions, JetstreamServer } from './server.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';

/** A one-record #commit frame whose record is about `textBytes` long. */
function bigCommit(i: number, textBytes: number): Uint8Array {
  const bytes = encodeCbor({ $type: 'app.bsky.feed.post', text: 'x'.repeat(textBytes), createdAt: `${i}` });
  const cid = cidForCbor(bytes);
  const commitBlock = encodeCbor({ did: DID, i });
  const commitCid = cidForCbor(commitBlock);
  return encodeFrame('#commit', {
    seq: i,
    rebase: false,
    tooBig: false,
    repo: DID,
    commit: commitCid,
    rev: '3l7tqjqmdaa2k',
    since: null,
    blocks: writeCar(
      [commitCid],
      [
        [commitCid, commitBlock],
        [cid, bytes],
      ],
    ),
    ops: [{ action: 'create', path: `app.bsky.feed.post/r${i}`, cid }],
    blobs: [],
    time: 't',
  });
}

describe('Jetstream server: hostile and slow subscribers', () => {
  let log: FileEventLog;
  let server: Server;
  let jet: JetstreamServer;
  let registry: Registry;

  async function start(opts: Partial<JetstreamOptions>): Promise<string> {
    registry = new Registry();
    jet = new JetstreamServer({ log, pingIntervalMs: 0, registry, ...opts });
    server = createServer((_q, r) => r.writeHead(404).end());
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => {});
      if (!jet.handleUpgrade(req, socket, head)) socket.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `ws://127.0.0.1:${(server.address() as AddressInfo).port}${JETSTREAM_PATH}`;
  }

  const metric = async (name: string) => (await registry.getSingleMetricAsString(name)).split('\n');

  beforeEach(async () => {
    log = await openTempEventLog();
  });
  afterEach(async () => {
    await jet.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await log.close();
  });

  it('closes a subscriber that stopped reading with ConsumerTooSlow; a reading one gets everything', async () => {
    const url = await start({ outboxMaxEvents: 50, outboxMaxBytes: 1024 ** 3 });
    // the stalled one: a raw socket that completes the handshake and never reads again
    const { port } = new URL(url);
    const stalled = connect(Number(port), '127.0.0.1');
    stalled.on('error', () => {});
    stalled.write(
      `GET ${JETSTREAM_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    stalled.once('data', () => stalled.pause());
    let received = 0;
    const reader = new WebSocket(url);
    reader.on('message', () => received++);
    await new Promise((r) => reader.once('open', r));
    await waitFor(() => jet.listSubscribers().filter((s) => s.state === 'live').length === 2);

    const total = 400;
    for (let i = 0; i < total; i += 20) {
      await log.append(
        Array.from({ length: 20 }, (_, k) => ({ kind: 1, uid: 1, frame: bigCommit(i + k, 60_000) })),
      );
    }
    await waitFor(() => jet.listSubscribers().length === 1, 'the stalled subscriber is dropped');
    assert.ok(
      (await metric('relay_jetstream_subscriber_drops_total')).some(
        (l) => l.includes('slow') && l.endsWith(' 1'),
      ),
    );
    await waitFor(() => received === total, 'the reading subscriber got every message', {
      describe: () => `${received}`,
    });
    reader.close();
    stalled.destroy();
  });

  it('ignores what is not an options_update, closes only a connection that sends too much, refuses past the per-network limit', async () => {
    const url = await start({ maxPayload: 1024, maxSubscribersPerIp: 2 });
    const a = new WebSocket(url);
    const b = new WebSocket(url);
    const got: string[] = [];
    a.on('message', (d) => got.push(d.toString()));
    await Promise.all([new Promise((r) => a.once('open', r)), new Promise((r) => b.once('open', r))]);
    // a third from the same network: refused before the upgrade
    const c = new WebSocket(url);
    const status = await new Promise<number>((resolve) => {
      c.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0));
      c.once('open', () => resolve(101));
    });
    assert.equal(status, 429);

    a.send('not json');
    a.send(Buffer.from([1, 2, 3]));
    a.send(JSON.stringify({ type: 'something_else', payload: {} }));
    a.send(JSON.stringify({ type: 'options_update' })); // no payload: no filter, as Jetstream
    const bClosed = new Promise<number>((r) => b.once('close', (code) => r(code)));
    b.send('x'.repeat(5000));
    assert.equal(await bClosed, 1009, 'message too big');

    await log.append([{ kind: 3, uid: 1, frame: identityFrame(DID, '2026-01-01T00:00:00.000Z', 'a.test') }]);
    await waitFor(() => got.length === 1);
    assert.equal(JSON.parse(got[0]).kind, 'identity');
    assert.equal(a.readyState, WebSocket.OPEN);
    a.close();
  });

  it('encodes nothing while no subscriber is live', async () => {
    await start({});
    await log.append([{ kind: 3, uid: 1, frame: identityFrame(DID, 't', 'a.test') }]);
    await waitFor(() => log.head() === 1);
    assert.ok(
      (await metric('relay_jetstream_live_encoded_events_total')).some((l) =>
        /^relay_jetstream_live_encoded_events_total 0$/.test(l),
      ),
    );
    assert.equal(jet.window.end - jet.window.start, 0);
  });
});
