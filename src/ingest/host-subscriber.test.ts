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
