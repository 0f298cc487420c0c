// Issue 12: every crawled host may be hostile. Each test scripts an upstream
// (loopback only) that sends what a hostile PDS could, and checks that the
// bad input is refused before work or memory is spent on it, counted by
// reason, and that nothing else is lost: oversized DIDs, deep nesting,
// oversized small events, #info floods against the rate limiter, garbage and
// error floods (disconnect with a growing back-off, then offline), a queue
// that cannot grow past its bound, the global byte budget for frames in
// flight across hosts with a fair share per host, a bound on concurrent host
// additions, and numeric host names that would dial 127.0.0.1.
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RecordingSink, range, scriptedPds, testConfig } from '../../test/support/ingest-support.ts';
import { socketOwners } from '../../test/support/socket-owners.ts';
import { type TempMetadataStore, tempMetadataStore } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { concatBytes } from '../protocol/bytes.ts';
import { encodeCbor } from '../protocol/cbor.ts';
import { encodeErrorFrame, encodeFrame, encodeInfoFrame } from '../protocol/frames.ts';
import { createSafeFetcher, type LookupFn, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { bootstrapFromUpstream } from './bootstrap.ts';
import { assertDialable } from './host-checks.ts';
import { HostManager, type HostManager as Manager } from './host-manager.ts';
import { CrawlRefusedError } from './host-policy.ts';
import type { IngestConfig } from './ingest-config.ts';
import type { UpstreamDialer } from './upstream-socket.ts';

const fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });

const commit = (seq: number, extra: Record<string, unknown> = {}) =>
  encodeFrame('#commit', { seq, repo: 'did:plc:a', rev: 'x', ops: [], ...extra });

/** Who reads host sockets in the tests below (socket-owners.ts). */
let dial: UpstreamDialer | undefined;

interface Rig {
  m: Manager;
  sink: RecordingSink;
  db: TempMetadataStore;
  stop(): Promise<void>;
}

async function rig(cfg: Partial<IngestConfig> = {}, sink = new RecordingSink()): Promise<Rig> {
  const db = await tempMetadataStore({ cursorFlushMs: 50 });
  const m = new HostManager({ store: db.store, sink, fetcher, config: testConfig(cfg), dial });
  await m.start();
  return {
    m,
    sink,
    db,
    async stop() {
      await m.stop();
      await db.destroy();
    },
  };
}

async function metricByLabel(
  metric: { get(): Promise<{ values: { labels: Record<string, string | number>; value: number }[] }> },
  label: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metric.get()).values) out[String(v.labels[label])] = v.value;
  return out;
}

const drops = (m: Manager) => metricByLabel(m.metrics.dropped, 'reason');
const disconnects = (m: Manager) => metricByLabel(m.metrics.disconnects, 'reason');

/** `n` nested one-item arrays around a 0. */
function nested(n: number): Uint8Array {
  const b = new Uint8Array(n + 1);
  b.fill(0x81, 0, n);
  return b;
}

// What a host sends is handled the same whichever thread reads its socket.
for (const owner of socketOwners()) {
  describe(`hostile hosts (${owner.name})`, () => {
    before(() => {
      owner.start();
      dial = owner.dial;
    });
    after(() => owner.stop());

    describe('hostile hosts: frames', () => {
      it('drops an event whose DID is over 2 KB or not DID syntax before it reaches validation', async () => {
        const long = `did:plc:${'a'.repeat(4 * 1024 * 1024)}`;
        const pds = await scriptedPds([
          (ws) => {
            ws.send(encodeFrame('#commit', { seq: 1, repo: long, rev: 'x', ops: [] }));
            ws.send(encodeFrame('#identity', { seq: 2, did: 'did:nope', time: 'x' }));
            ws.send(encodeFrame('#account', { seq: 3, time: 'x', active: true }));
            ws.send(commit(4));
          },
        ]);
        const r = await rig();
        try {
          const { host } = await r.m.crawl(pds.hostname, { admin: true });
          await waitFor(() => r.sink.count === 1, 'the valid event');
          assert.deepEqual(r.sink.seqs.get(host.id), [4]);
          assert.equal((await drops(r.m))['bad-did'], 3);
        } finally {
          await r.stop();
          await pds.close();
        }
      });

      it('drops deep nesting and oversized small events at ingest; #info bodies are scanned, not decoded', async () => {
        const deepInfo = concatBytes([
          encodeCbor({ op: 1, t: '#info' }),
          Uint8Array.of(0xa2, 0x64, 0x6e, 0x61, 0x6d, 0x65, 0x61, 0x78), // {name: "x",
          Uint8Array.of(0x67, ...new TextEncoder().encode('message')), //   message:
          nested(60_000), //                                                [[[[…0…]]]]} (under the 64 KB cap)
        ]);
        const deepCommit = concatBytes([
          encodeCbor({ op: 1, t: '#commit' }),
          Uint8Array.of(0xa3, 0x61, 0x78), // {x:
          nested(100_000), //                 [[[[…]]]],
          encodeCbor('seq'),
          encodeCbor(1),
          encodeCbor('repo'),
          encodeCbor('did:plc:a'),
        ]);
        const bigIdentity = encodeFrame('#identity', {
          seq: 2,
          did: 'did:plc:a',
          time: 'x',
          pad: new Uint8Array(100 * 1024),
        });
        const pds = await scriptedPds([
          (ws) => {
            ws.send(deepInfo);
            ws.send(deepCommit);
            ws.send(bigIdentity);
            ws.send(commit(3));
          },
        ]);
        const r = await rig();
        try {
          const { host } = await r.m.crawl(pds.hostname, { admin: true });
          await waitFor(() => r.sink.count === 1, 'the valid event');
          assert.deepEqual(r.sink.seqs.get(host.id), [3]);
          const d = await drops(r.m);
          assert.equal(d['too-deep'], 2);
          assert.equal(d['too-large'], 1);
        } finally {
          await r.stop();
          await pds.close();
        }
      });

      it('counts #info frames against the rate limit, like events', async () => {
        const pds = await scriptedPds([
          (ws) => {
            for (let i = 0; i < 4; i++) ws.send(encodeInfoFrame('OutdatedCursor', `info ${i}`));
            ws.send(commit(1));
          },
        ]);
        // two tokens a second: the four #info frames and the event need five
        const r = await rig({ hostRatePerSecond: 2 });
        try {
          const started = Date.now();
          const { host } = await r.m.crawl(pds.hostname, { admin: true });
          await waitFor(() => r.sink.count === 1, 'the event behind the #info frames');
          assert.deepEqual(r.sink.seqs.get(host.id), [1]);
          assert.ok((await r.m.metrics.throttled.get()).values[0].value >= 1, 'the host was throttled');
          assert.ok(Date.now() - started >= 1000, 'five tokens at 2/s take at least a second');
          assert.equal(
            (await drops(r.m))['repeated-info'],
            3,
            'only the first #info of a connection is logged',
          );
        } finally {
          await r.stop();
          await pds.close();
        }
      });
    });

    describe('hostile hosts: disconnects', () => {
      it('disconnects a host after the bad-frame threshold, counts it, and reads its events on the next connection', async () => {
        const garbage = concatBytes([encodeCbor({ op: 1, t: '#commit' }), Uint8Array.of(0xa1, 0x1c)]);
        const pds = await scriptedPds([
          (ws) => {
            for (let i = 0; i < 12; i++) ws.send(garbage);
            ws.send(commit(1));
          },
          (ws) => {
            ws.send(commit(1));
            ws.send(commit(2));
          },
        ]);
        const r = await rig({ hostBadFramesPerMinute: 5 });
        try {
          const { host } = await r.m.crawl(pds.hostname, { admin: true });
          await waitFor(() => r.sink.count === 2, 'both events on the second connection');
          assert.deepEqual(r.sink.seqs.get(host.id), [1, 2]);
          assert.equal((await disconnects(r.m))['bad-frames'], 1);
          assert.equal((await drops(r.m)).malformed, 5, 'the frames after the threshold were not even read');
          assert.deepEqual(pds.cursors, [null, null]);
        } finally {
          await r.stop();
          await pds.close();
        }
      });

      it('a host that sends an error frame on every connection backs off and ends offline, even between valid events', async () => {
        const scripts = Array.from({ length: 20 }, (_, i) => (ws: import('ws').WebSocket) => {
          ws.send(commit(i + 1));
          ws.send(encodeErrorFrame('ConsumerTooSlow', 'x'.repeat(5000)));
        });
        const pds = await scriptedPds(scripts);
        const r = await rig({ hostMaxFailures: 3 });
        try {
          const { host } = await r.m.crawl(pds.hostname, { admin: true });
          await waitFor(
            async () => (await r.db.store.getHost(host.id))?.status === 'offline',
            'host offline',
          );
          assert.equal(pds.cursors.length, 3, 'three connections, each one a failure');
          assert.deepEqual(r.sink.seqs.get(host.id), [1, 2, 3], 'the valid events were all handed on');
          assert.ok(((await disconnects(r.m))['error-frame'] ?? 0) >= 3);
          const sub = r.m.subscriber(host.id)!;
          assert.ok((sub.lastError ?? '').length < 300, 'upstream error text is truncated');
        } finally {
          await r.stop();
          await pds.close();
        }
      });

      it('a garbage host does not hold up a good one', async () => {
        const garbage = Uint8Array.of(0xff, 0xff, 0xff);
        const bad = await scriptedPds(
          Array.from({ length: 20 }, () => (ws: import('ws').WebSocket) => {
            for (let i = 0; i < 50; i++) ws.send(garbage);
          }),
        );
        const good = await scriptedPds([
          (ws) => {
            for (let i = 1; i <= 200; i++) ws.send(commit(i));
          },
        ]);
        const r = await rig({ hostMaxFailures: 3, hostBadFramesPerMinute: 10 });
        try {
          const b = await r.m.crawl(bad.hostname, { admin: true });
          const g = await r.m.crawl(good.hostname, { admin: true });
          await waitFor(() => r.sink.count === 200, 'every event of the good host');
          assert.deepEqual(r.sink.seqs.get(g.host.id), range(1, 200));
          await waitFor(
            async () => (await r.db.store.getHost(b.host.id))?.status === 'offline',
            'bad host offline',
          );
          assert.ok(((await disconnects(r.m))['bad-frames'] ?? 0) >= 3);
        } finally {
          await r.stop();
          await bad.close();
          await good.close();
        }
      });

      it('closes a connection whose queue of parsed frames reaches its bound; the cursor keeps the rest', async () => {
        const tiny = range(1, 40).map((seq) => commit(seq));
        const pds = await scriptedPds([{ raw: tiny }, { raw: tiny.slice(1) }]);
        // one token a second: frame 1 is handed on, 2..5 queue up, 6 overflows the queue of 4
        const r = await rig({ hostRatePerSecond: 1, maxQueuedFrames: 4 });
        try {
          const { host } = await r.m.crawl(pds.hostname, { admin: true });
          await waitFor(
            async () => ((await disconnects(r.m))['queue-full'] ?? 0) >= 1,
            'queue-full disconnect',
          );
          await waitFor(() => pds.cursors.length === 2, 'reconnected');
          assert.equal(pds.cursors[1], '1', 'the reconnect resumes after the one finished frame');
          assert.deepEqual(r.sink.seqs.get(host.id), [1]);
        } finally {
          await r.stop();
          await pds.close();
        }
      });
    });

    describe('hostile hosts: global frame budget', () => {
      it('many hosts sending large frames stay under the budget, with a fair share each, and nothing is lost', async () => {
        const hosts = 8;
        const perHost = 24;
        const frameSize = 100 * 1024;
        const frame = (seq: number) => commit(seq, { blocks: new Uint8Array(frameSize) });
        const maxFrame = frame(perHost).length;
        const pdses = await Promise.all(
          Array.from({ length: hosts }, () =>
            scriptedPds([
              (ws) => {
                for (let i = 1; i <= perHost; i++) ws.send(frame(i));
              },
            ]),
          ),
        );
        const sink = new RecordingSink();
        sink.delay = () => 2;
        const r = await rig({ ingestFrameBudgetMb: 1, hostMaxInFlight: 8 }, sink);
        const limit = 1024 * 1024;
        try {
          const ids: number[] = [];
          for (const p of pdses) ids.push((await r.m.crawl(p.hostname, { admin: true })).host.id);
          await waitFor(() => sink.count === hosts * perHost, 'every frame of every host');
          for (const id of ids) assert.deepEqual(sink.seqs.get(id), range(1, perHost));
          assert.equal(r.m.frameBudget.limitBytes, limit);
          // a socket thread reads on until its credit is spent (socket-threads.ts)
          const readAhead = owner.readAhead(maxFrame);
          const bound = limit + maxFrame + hosts * readAhead;
          assert.ok(r.m.frameBudget.peakBytes <= bound, `peak ${r.m.frameBudget.peakBytes}`);
          assert.ok(sink.maxBytesInFlight <= bound, `sink peak ${sink.maxBytesInFlight}`);
          for (const id of ids) {
            const peak = r.m.subscriber(id)!.peakHeldBytes;
            assert.ok(peak <= limit / 2 + maxFrame + readAhead, `host ${id} held ${peak}`);
          }
          assert.ok(r.m.frameBudget.fills >= 1, 'the budget filled up at least once');
          await waitFor(() => r.m.frameBudget.usedBytes === 0, 'every byte given back');
          assert.equal((await r.m.metrics.frameBytesInFlight.get()).values[0].value, 0);
        } finally {
          await r.stop();
          for (const p of pdses) await p.close();
        }
      });
    });
  });
}

describe('hostile hosts: additions', () => {
  it('bounds concurrent host additions', async () => {
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const hanging = {
      getJson: () => held.then(() => Promise.reject(new Error('released'))),
      close() {},
    } as unknown as SafeFetcher;
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    const m = new HostManager({
      store: db.store,
      sink: new RecordingSink(),
      fetcher: hanging,
      config: testConfig({ maxPendingAdds: 2, allowInsecureHosts: false }),
    });
    await m.start();
    try {
      const first = m.crawl('a.example.com');
      const second = m.crawl('b.example.com');
      await assert.rejects(m.crawl('c.example.com'), (e: unknown) => {
        return e instanceof CrawlRefusedError && e.status === 503;
      });
      release();
      await assert.rejects(first);
      await assert.rejects(second);
    } finally {
      release();
      await m.stop();
      await db.destroy();
    }
  });
});

describe('hostile seed relay', () => {
  it('skips listHosts names longer than any valid hostname before checking or logging them', async () => {
    const added: string[] = [];
    const logged: unknown[] = [];
    const seed = {
      getJson: async () => ({
        json: {
          hosts: [{ hostname: `${'a'.repeat(1_000_000)}.example.com` }, { hostname: 'ok.example.com' }],
        },
      }),
      close() {},
    } as unknown as SafeFetcher;
    const log = { debug: (o: unknown) => logged.push(o), info: () => {}, warn: () => {} };
    const stats = await bootstrapFromUpstream({
      upstream: 'seed.example.com',
      fetcher: seed,
      allowInsecure: false,
      log: log as unknown as Parameters<typeof bootstrapFromUpstream>[0]['log'],
      add: async (name) => {
        added.push(name);
      },
      isStopping: () => false,
    });
    assert.deepEqual(added, ['ok.example.com']);
    assert.equal(stats.listed, 1);
    assert.ok(JSON.stringify(logged).length < 10_000);
  });
});

describe('hostile hosts: numeric host names', () => {
  let sockets = 0;
  const onSocket = (): void => {
    sockets++;
  };
  let server: Server;
  let port = 0;
  before(async () => {
    diagnosticsChannel.subscribe('net.client.socket', onSocket);
    // a describeServer answer on loopback: what 0x7f.0x1:PORT would reach if it were dialled
    server = createServer((_req, res) => res.end(JSON.stringify({ did: 'did:web:x' })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    diagnosticsChannel.unsubscribe('net.client.socket', onSocket);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('refuses hex, octal and single-number IPv4 forms before any DNS or connection', async () => {
    const lookups: string[] = [];
    const lookup: LookupFn = async (name) => {
      lookups.push(name);
      return [{ address: '127.0.0.1', family: 4 }];
    };
    for (const allowInsecureHosts of [false, true]) {
      const db = await tempMetadataStore({ cursorFlushMs: 50 });
      const m = new HostManager({
        store: db.store,
        sink: new RecordingSink(),
        fetcher: createSafeFetcher({
          allowPrivate: allowInsecureHosts,
          allowInsecure: allowInsecureHosts,
          lookup,
        }),
        lookup,
        config: testConfig({ allowInsecureHosts }),
      });
      await m.start();
      try {
        const before = sockets;
        for (const name of ['0x7f.0x1', '127.0.0.0x1', '2130706433', '0177.0.0.1', '127.1']) {
          for (const raw of [name, `${name}:${port}`, `https://${name}`]) {
            await assert.rejects(
              m.crawl(raw),
              (e: unknown) =>
                e instanceof CrawlRefusedError && e.status === 400 && /hostname|numeric/.test(e.message),
              `${raw} (insecure ${allowInsecureHosts})`,
            );
          }
        }
        assert.deepEqual(lookups, []);
        assert.equal(sockets, before, 'no socket was opened');
        assert.equal((await db.store.listHosts({ limit: 10 })).length, 0);
      } finally {
        await m.stop();
        await db.destroy();
      }
    }
  });

  it('the dial guard refuses them too, for a name that is already stored', () => {
    for (const allowPrivate of [false, true]) {
      for (const name of ['0x7f.0x1:2583', '2130706433:80', '0177.0.0.1', '127.0.0.0x1']) {
        assert.throws(() => assertDialable(name, allowPrivate), /numeric|refused/, name);
      }
      assert.doesNotThrow(() => assertDialable('pds.example.com', allowPrivate));
    }
    assert.doesNotThrow(() => assertDialable('127.0.0.1:2583', true));
  });
});
