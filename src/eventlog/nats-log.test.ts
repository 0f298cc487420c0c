// The JetStream event log: the shared EventLog contract (test/support/eventlog-contract.ts),
// then what only a shared log has: dedupe by message id across writers and
// re-ingests, several processes seeing one order, meta on own records,
// takedowns shared through the KV bucket, retention on the stream.
// Each test uses its own stream on the machine's NATS (test/support/nats.ts).
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { frameFor, runEventLogContract } from '../../test/support/eventlog-contract.ts';
import { deleteStreams, NATS_URL, uniqueStreamName } from '../../test/support/nats.ts';
import { waitFor } from '../../test/support/wait.ts';
import { messageId, type NatsEventLogOptions, openNatsEventLog } from './nats-log.ts';
import type { AppendEvent, EventLog, LogRecord } from './types.ts';

const streams: string[] = [];
function options(extra: Partial<NatsEventLogOptions> = {}): NatsEventLogOptions {
  const stream = uniqueStreamName('tlog');
  streams.push(stream);
  return { url: NATS_URL, stream, memoryStorage: true, infoIntervalMs: 0, ...extra };
}

runEventLogContract({
  name: 'nats',
  async open() {
    const opts = options();
    return { log: await openNatsEventLog(opts), reopen: () => openNatsEventLog(opts) };
  },
  cleanup: () => deleteStreams(streams),
});

function commit(did: string, rev: string, hostId: number, seq: number): AppendEvent {
  return {
    kind: 1,
    uid: 1,
    frame: (s) => frameFor(s),
    origin: { hostId, seq },
    meta: { type: '#commit', did, rev, collections: { added: [], removed: [] } as never },
  };
}

async function readAll(log: EventLog): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  for (let c = 0; ; ) {
    const r = await log.readFrom(c);
    if (r.length === 0) return out;
    out.push(...r);
    c = r[r.length - 1].seq;
  }
}

describe('NatsEventLog', () => {
  after(() => deleteStreams(streams));

  it('message ids: commit/sync by DID + rev, otherwise by origin and position; none without either', () => {
    assert.equal(messageId(commit('did:plc:a', '3k1', 1, 9), 0), '#commit:did:plc:a:3k1');
    assert.equal(
      messageId({ kind: 3, uid: 1, frame: frameFor(1), origin: { hostId: 2, seq: 7 } }, 1),
      'o:2:7:1',
    );
    assert.equal(messageId({ kind: 3, uid: 1, frame: frameFor(1) }, 0), undefined);
  });

  it('stores a re-published upstream event once, also from another process (dedupe window)', async () => {
    const opts = options();
    const a = await openNatsEventLog(opts);
    const b = await openNatsEventLog(opts);
    const first = await a.append([commit('did:plc:a', 'r1', 1, 10), commit('did:plc:a', 'r2', 1, 11)]);
    assert.deepEqual(first, [1, 2]);
    // b re-ingests the same upstream frames after taking the host over, plus a new one
    const again = await b.append([commit('did:plc:a', 'r2', 1, 11), commit('did:plc:a', 'r3', 1, 12)]);
    assert.deepEqual(again, [2, 3]);
    await waitFor(() => a.head() === 3);
    assert.deepEqual(
      (await readAll(a)).map((r) => r.seq),
      [1, 2, 3],
    );
    await Promise.all([a.close(), b.close()]);
  });

  it('every process sees the same order; own records carry their meta, others do not', async () => {
    const opts = options();
    const a = await openNatsEventLog(opts);
    const b = await openNatsEventLog(opts);
    const seenA: LogRecord[] = [];
    const seenB: LogRecord[] = [];
    a.onDurable((r) => seenA.push(...r));
    b.onDurable((r) => seenB.push(...r));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).append([commit(`did:plc:${i % 2 ? 'a' : 'b'}`, `r${i}`, 1 + (i % 2), i)]),
      ),
    );
    await waitFor(() => seenA.length === 20 && seenB.length === 20);
    assert.deepEqual(
      seenA.map((r) => r.seq),
      seenB.map((r) => r.seq),
    );
    for (const r of seenA) assert.equal(r.meta !== undefined, r.origin?.hostId === 2, `meta on ${r.seq}`);
    for (const r of seenB) assert.equal(r.meta !== undefined, r.origin?.hostId === 1, `meta on ${r.seq}`);
    await Promise.all([a.close(), b.close()]);
  });

  it('a takedown made by one process hides the events on every process', async () => {
    const opts = options();
    const a = await openNatsEventLog(opts);
    const b = await openNatsEventLog(opts);
    await a.append([commit('did:plc:x', 'r1', 1, 1)]);
    await a.setTakedown(1, true);
    await waitFor(() => b.isTakenDown(1, 1));
    assert.deepEqual(await b.readFrom(0), []);
    await a.setTakedown(1, false);
    await waitFor(() => !b.isTakenDown(1, 1));
    await Promise.all([a.close(), b.close()]);
  });

  it('retention by size drops the oldest events on the stream; oldest() follows', async () => {
    const log = await openNatsEventLog(options({ retentionBytes: 8 * 1024 }));
    for (let i = 0; i < 10; i++) {
      await log.append(
        Array.from({ length: 10 }, () => ({ kind: 1, uid: 1, frame: (s: number) => frameFor(s, 200) })),
      );
    }
    await log.gc();
    assert.ok(log.oldest() > 1, `oldest ${log.oldest()}`);
    assert.ok(log.sizeBytes() <= 8 * 1024);
    const recs = await log.readFrom(0, { maxBytes: 1 << 20 });
    assert.equal(recs[0].seq, log.oldest());
    await log.close();
  });

  it('refuses a bad stream name and an unreachable server with a clear error', async () => {
    await assert.rejects(openNatsEventLog({ url: NATS_URL, stream: 'a.b' }), /invalid NATS stream name/);
    await assert.rejects(openNatsEventLog({ url: 'nats://127.0.0.1:1', stream: 'x' }));
  });
});
