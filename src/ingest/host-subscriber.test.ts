// The per-frame rules against a scripted upstream (a loopback WebSocket
// server that sends exactly the frames a test lists): lower and repeated seqs
// are dropped and counted, deprecated and unknown types are dropped, #info is
// not handed on, and an error frame other than FutureCursor makes the
// subscriber reconnect from its cursor.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RecordingSink, scriptedPds, testConfig } from '../../test/support/ingest-support.ts';
import { tempMetadataStore } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { encodeErrorFrame, encodeFrame, encodeInfoFrame } from '../protocol/frames.ts';
import { createSafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { HostManager } from './host-manager.ts';

const commit = (seq: number) => encodeFrame('#commit', { seq, repo: 'did:plc:a', rev: 'x', ops: [] });

describe('HostSubscriber frame rules', () => {
  it('drops lower seqs, deprecated and unknown types; logs #info; reconnects after an error frame', async () => {
    const pds = await scriptedPds([
      (ws) => {
        for (const f of [
          commit(1),
          commit(2),
          commit(2), // repeated
          commit(1), // lower
          encodeFrame('#handle', { seq: 3, did: 'did:plc:a', handle: 'a.test' }),
          encodeFrame('#tombstone', { seq: 4, did: 'did:plc:a' }),
          encodeFrame('#somethingNew', { seq: 5 }),
          encodeInfoFrame('OutdatedCursor', 'x'),
          encodeFrame('#identity', { seq: 6, did: 'did:plc:a', time: 'x' }),
          encodeErrorFrame('ConsumerTooSlow', 'too slow'),
        ]) {
          ws.send(f);
        }
      },
      (ws) => ws.send(commit(7)),
    ]);
    const db = await tempMetadataStore({ cursorFlushMs: 50 });
    const sink = new RecordingSink();
    const m = new HostManager({
      store: db.store,
      sink,
      fetcher: createSafeFetcher({ allowPrivate: true, allowInsecure: true }),
      config: testConfig(),
    });
    await m.start();
    try {
      const { host } = await m.crawl(pds.hostname, { admin: true });
      await waitFor(() => sink.seqs.get(host.id)?.length === 4, 'four events');
      assert.deepEqual(sink.seqs.get(host.id), [1, 2, 6, 7]);
      assert.deepEqual(pds.cursors, [null, '6']);
      const drops = Object.fromEntries(
        (await m.metrics.dropped.get()).values.map((v) => [v.labels.reason, v.value]),
      );
      assert.deepEqual(drops, {
        'seq-not-increasing': 2,
        'deprecated-type': 2,
        'unknown-type': 1,
        'error-frame': 1,
      });
      const types = Object.fromEntries(
        (await m.metrics.framesByType.get()).values.map((v) => [v.labels.type, v.value]),
      );
      assert.equal(types.other, 1); // the unknown type does not become a label value
      assert.equal(types['#info'], 1);
      assert.equal((await m.metrics.connected.get()).values[0].value, 1);
      await m.stop();
      assert.equal((await m.metrics.connected.get()).values[0].value, 0);
    } finally {
      await m.stop();
      await db.destroy();
      await pds.close();
    }
  });
});

describe('HostSubscriber with one slow frame', () => {
  // A frame whose validation waits on the network (a DID resolution, a
  // resync) must not stop its host: the validator parks that repo and goes
  // on with the others, so ingest must keep reading too, as far as the
  // cursor window. Only the cursor waits for the slow frame.
  async function withSlowFirstFrame(
    cfg: { hostMaxInFlight: number; hostCursorWindow: number },
    body: (t: {
      m: HostManager;
      hostId: number;
      sink: RecordingSink;
      submitted: number[];
      release: () => void;
    }) => Promise<void>,
  ): Promise<void> {
    const pds = await scriptedPds([
      (ws) => {
        for (let seq = 1; seq <= FRAMES; seq++) ws.send(commit(seq));
      },
    ]);
    const db = await tempMetadataStore({ cursorFlushMs: 20 });
    const sink = new RecordingSink();
    let release!: () => void;
    const slow = new Promise<void>((r) => {
      release = r;
    });
    const submitted: number[] = [];
    const submit = sink.submit.bind(sink);
    sink.submit = async (f) => {
      submitted.push(f.upstreamSeq);
      if (f.upstreamSeq === 1) await slow;
      return submit(f);
    };
    const m = new HostManager({
      store: db.store,
      sink,
      fetcher: createSafeFetcher({ allowPrivate: true, allowInsecure: true }),
      config: testConfig(cfg),
    });
    await m.start();
    try {
      const { host } = await m.crawl(pds.hostname, { admin: true });
      await body({ m, hostId: host.id, sink, submitted, release });
    } finally {
      release();
      await m.stop();
      await db.destroy();
      await pds.close();
    }
  }
  const FRAMES = 40;
  const all = Array.from({ length: FRAMES }, (_, i) => i + 1);

  it('keeps reading past an unfinished frame; the cursor stays before it until it finishes', async () => {
    await withSlowFirstFrame(
      { hostMaxInFlight: 4, hostCursorWindow: 8192 },
      async ({ m, hostId, sink, release }) => {
        await waitFor(
          () => sink.seqs.get(hostId)?.length === FRAMES - 1,
          'every frame but the slow one finished',
        );
        assert.equal(m.subscriber(hostId)?.cursor, 0, 'the cursor waits for the slow frame');
        release();
        await waitFor(() => m.subscriber(hostId)?.cursor === FRAMES, 'the cursor passes them all');
        assert.deepEqual(sink.sorted(hostId), all);
      },
    );
  });

  it('reads no further than the cursor window past the slow frame', async () => {
    await withSlowFirstFrame(
      { hostMaxInFlight: 4, hostCursorWindow: 16 },
      async ({ m, hostId, sink, submitted, release }) => {
        const sub = () => m.subscriber(hostId);
        await waitFor(
          () => sink.seqs.get(hostId)?.length === 15 && sub()?.paused === true,
          'the window full and the socket paused',
        );
        assert.deepEqual(
          [...submitted].sort((a, b) => a - b),
          all.slice(0, 16),
          'frames 1-16 handed on, nothing past the window',
        );
        assert.equal(sub()?.cursor, 0);
        assert.equal(
          m.list().find((h) => h.hostId === hostId)?.pastCursor,
          16,
          'the admin listing shows the window in use',
        );
        release();
        await waitFor(() => sub()?.cursor === FRAMES, 'the cursor passes them all');
        assert.deepEqual(sink.sorted(hostId), all);
        assert.equal(submitted.length, FRAMES, 'each frame handed on once');
      },
    );
  });
});
