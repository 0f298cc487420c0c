// The hostile-host knobs and client attackers do what they say: each hostile
// frame is refused by the relay's own frame check for the intended reason
// (so an integration test that sees the drop knows which attack caused it),
// floods respect their caps per connection and start again on a new one,
// CAR bombs are served with or without a declared length, and the client
// attackers hold their sockets the way a slowloris does.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifyFrame } from '../src/ingest/frame-check.ts';
import { waitFor } from '../test/support/wait.ts';
import { slowConsumer, trickleHeaders } from './attackers.ts';
import { subscribe } from './consumer.ts';
import { HOSTILE_FRAME_KINDS, type HostileFrameKind, hostileFrame } from './hostile.ts';
import { SimPds } from './pds.ts';
import { SimPlc } from './plc.ts';

describe('hostile frames', () => {
  const expected: Record<HostileFrameKind, string[]> = {
    giantDid: ['bad:bad-did'],
    nestedHeader: ['bad:bad-header'],
    nestedBody: ['bad:too-deep'],
    infoFlood: ['info'],
    errorFlood: ['error'],
    garbage: ['bad:bad-header', 'bad:malformed', 'bad:malformed'],
    oversize: ['bad:too-large'],
  };
  for (const kind of HOSTILE_FRAME_KINDS) {
    it(`${kind} is refused by the relay's frame check as intended`, () => {
      const verdicts = expected[kind].map((_, variant) => {
        const v = classifyFrame(hostileFrame(kind, 7, {}, variant), true, 0);
        return v.kind === 'bad' ? `bad:${v.reason}` : v.kind;
      });
      assert.deepEqual(verdicts, expected[kind]);
    });
  }

  it('sizes follow the options', () => {
    assert.ok(hostileFrame('giantDid', 1).length > 4 * 1024 * 1024);
    assert.ok(hostileFrame('giantDid', 1, { size: 3000 }).length < 4000);
    assert.ok(hostileFrame('oversize', 1).length > 5_000_000);
  });
});

describe('hostile host knobs', () => {
  let plc: SimPlc;
  let host: SimPds;
  let did: string;

  before(async () => {
    plc = await SimPlc.start('hostile');
    host = await SimPds.start({ plc, name: 'hostile', seed: 3 });
    did = host.createAccount().did;
  });
  after(async () => {
    await host.stop();
    await plc.stop();
  });

  it('a flood sends at most perConnection frames per connection, starts again on a new one, mixes valid events', async () => {
    const first = await subscribe(host.wsUrl);
    const head = host.seq;
    host.hostile.flood('garbage', { perConnection: 6, validEvery: 3 });
    try {
      await first.waitFor(8); // 6 garbage + 2 valid commits
      // The flood ticks every 5 ms: a later timer runs after at least one more tick.
      await sleep(20);
      assert.equal(first.count, 8);
      assert.equal(host.hostile.sent.garbage, 6);
      assert.deepEqual(first.seqs(), [head + 1, head + 2], 'the valid commits keep their sequence');
      const second = await subscribe(host.wsUrl);
      try {
        await waitFor(() => host.hostile.sent.garbage === 12, 'six more on the new connection');
        assert.equal(host.hostile.floodedConnections, 2);
      } finally {
        await second.close();
      }
    } finally {
      host.hostile.stopFlood();
      await first.close();
    }
  });

  it('breakChain emits a commit whose prevData breaks the chain', () => {
    const ev = host.hostile.breakChain(did);
    assert.deepEqual(ev.faults, ['brokenPrevData']);
    assert.equal(host.hostile.brokenChains.at(-1), ev);
  });

  it('CAR bombs: tiny blocks and declared sizes with a Content-Length, endless bodies without', async () => {
    const getRepo = () => fetch(`${host.url}/xrpc/com.atproto.sync.getRepo?did=${did}`);
    const real = host.account(did).repo.exportCar();
    try {
      host.hostile.carBombs('blocks', { blocks: 1000 });
      let res = await getRepo();
      assert.equal(Number(res.headers.get('content-length')), real.length + 1000 * 41);
      assert.equal((await res.arrayBuffer()).byteLength, real.length + 1000 * 41);

      host.hostile.carBombs('declared-size', { bytes: 3 * 1024 * 1024 });
      res = await getRepo();
      assert.ok(Number(res.headers.get('content-length')) >= 3 * 1024 * 1024);
      await res.body?.cancel();

      host.hostile.carBombs('endless', { bytes: 3 * 1024 * 1024 });
      res = await getRepo();
      assert.equal(res.headers.get('content-length'), null);
      assert.equal(res.headers.get('transfer-encoding'), 'chunked');
      assert.ok((await res.arrayBuffer()).byteLength >= 3 * 1024 * 1024);

      host.hostile.carBombs(null);
      res = await getRepo();
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), host.account(did).repo.exportCar());
    } finally {
      host.hostile.carBombs(null);
    }
  });
});

describe('client attackers', () => {
  it('a slow consumer completes the handshake and then reads nothing', async () => {
    const plc = await SimPlc.start('slow');
    const host = await SimPds.start({ plc, name: 'slow', seed: 4 });
    const did = host.createAccount().did;
    const slow = await slowConsumer(host.wsUrl);
    try {
      assert.match(slow.status, /^HTTP\/1\.1 101 /);
      await waitFor(() => host.firehose.subscriberCount === 1, 'subscribed');
      for (let i = 0; i < 20; i++) host.writeRecord(did);
      assert.equal(slow.bytesRead(), 0);
      assert.equal(slow.closed(), false);
    } finally {
      slow.close();
      await host.stop();
      await plc.stop();
    }
  });

  it('a header trickler is answered 408 once the server gives up on its head', async () => {
    const server = createServer(
      { headersTimeout: 300, requestTimeout: 300, connectionsCheckingInterval: 50 },
      (_req, res) => res.end('never'),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const t = await trickleHeaders((server.address() as AddressInfo).port, { intervalMs: 20 });
    try {
      await waitFor(() => t.closed(), 'the trickler cut off');
      assert.match(t.received(), /^HTTP\/1\.1 408 /);
      assert.ok(t.sent() > 0);
    } finally {
      t.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
