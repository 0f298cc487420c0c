// The EventLog contract as one suite, run against every backend (the file log
// in eventlog-contract.test.ts, JetStream in nats-log.test.ts): every backend
// passes the same tests. Frames are real wire frames (encodeFrame) so a
// backend that stores them without the relay seq and rewrites it on read
// (nats-log.ts) is checked the same way as one that stores them final.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { AppendEvent, EventLog, LogRecord } from '../../src/eventlog/types.ts';
import { encodeFrame, readFrameSeq } from '../../src/protocol/frames.ts';

/** Opens a log for one test; `reopen` opens the same storage again (after close). */
export interface EventLogFactory {
  name: string;
  /** A fresh, empty log; calling `reopen` on the returned handle opens the same one again. */
  open(): Promise<{ log: EventLog; reopen: () => Promise<EventLog> }>;
  /** Removes everything the factory made (called once at the end). */
  cleanup(): Promise<void>;
}

export function frameFor(seq: number, size = 40): Uint8Array {
  return encodeFrame('#commit', { seq, pad: new Uint8Array(size).fill(seq % 251) });
}

function events(n: number, uid = 1, size = 40): AppendEvent[] {
  return Array.from({ length: n }, () => ({ kind: 1, uid, frame: (seq: number) => frameFor(seq, size) }));
}

async function readAll(
  log: EventLog,
  from = 0,
  maxBytes = 4096,
  includeTakenDown = false,
): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  let cursor = from;
  for (;;) {
    const recs = await log.readFrom(cursor, { maxBytes, includeTakenDown });
    if (recs.length === 0) return out;
    out.push(...recs);
    cursor = recs[recs.length - 1].seq;
  }
}

function checkFrames(recs: readonly LogRecord[]): void {
  for (const r of recs)
    assert.equal(readFrameSeq(r.frame), r.seq, `frame of record ${r.seq} carries its seq`);
}

export function runEventLogContract(factory: EventLogFactory): void {
  describe(`EventLog contract: ${factory.name}`, () => {
    after(() => factory.cleanup());

    it('starts empty: head 0, oldest 1, nothing to read', async () => {
      const { log } = await factory.open();
      assert.equal(log.head(), 0);
      assert.equal(log.oldest(), 1);
      assert.deepEqual(await log.readFrom(0), []);
      await log.close();
    });

    it('assigns increasing seqs in call order, resolves when durable, notifies in order with head first', async () => {
      const { log } = await factory.open();
      const seen: number[] = [];
      log.onDurable((recs) => {
        for (const r of recs) {
          assert.ok(r.seq <= log.head(), 'head advances before listeners run');
          seen.push(r.seq);
        }
      });
      const [a, b] = await Promise.all([log.append(events(3)), log.append(events(2))]);
      assert.deepEqual(a, [1, 2, 3]);
      assert.deepEqual(b, [4, 5]);
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);
      assert.equal(log.head(), 5);
      assert.equal(log.oldest(), 1);
      await log.close();
      await assert.rejects(log.append(events(1)), /closed/);
    });

    it('reads from any cursor with small and large budgets; frames carry the record seq', async () => {
      const { log } = await factory.open();
      for (let i = 0; i < 6; i++) await log.append(events(23, 1, 30 + i * 7));
      assert.equal(log.head(), 138);
      for (const cursor of [0, 1, 22, 23, 64, 100, 137]) {
        const recs = await readAll(log, cursor, cursor % 2 ? 300 : 1 << 20);
        assert.deepEqual(
          recs.map((r) => r.seq),
          Array.from({ length: 138 - cursor }, (_, i) => cursor + 1 + i),
        );
        checkFrames(recs);
      }
      const one = await log.readFrom(10, { maxBytes: 1 });
      assert.equal(one.length, 1, 'at least one record even over budget');
      const until = await log.readFrom(10, { untilSeq: 15 });
      assert.deepEqual(
        until.map((r) => r.seq),
        [11, 12, 13, 14, 15],
      );
      assert.deepEqual(await log.readFrom(138), []);
      await log.close();
    });

    it('stores kind, uid, flags, time and origin', async () => {
      const { log } = await factory.open();
      const before = Date.now();
      await log.append([
        { kind: 2, uid: 77, flags: 3, frame: (s) => frameFor(s), origin: { hostId: 5, seq: 123456789 } },
        { kind: 3, uid: 0, frame: (s) => frameFor(s) },
      ]);
      const [r1, r2] = await log.readFrom(0);
      assert.equal(r1.kind, 2);
      assert.equal(r1.uid, 77);
      assert.equal(r1.flags, 3);
      assert.deepEqual(r1.origin, { hostId: 5, seq: 123456789 });
      assert.ok(r1.time >= before - 5000 && r1.time <= Date.now() + 5000);
      assert.equal(r2.kind, 3);
      assert.equal(r2.origin, undefined);
      await log.close();
    });

    it('hides a taken-down account up to a seq, shows it again, and keeps the hide across a reopen', async () => {
      const { log, reopen } = await factory.open();
      await log.append([...events(2, 1), ...events(2, 2), ...events(1, 1)]); // 1,2 uid1; 3,4 uid2; 5 uid1
      await log.setTakedown(1, true);
      assert.equal(log.isTakenDown(1, 5), true);
      await log.append(events(1, 1)); // 6: after the hide, visible
      assert.equal(log.isTakenDown(1, 6), false);
      assert.deepEqual(
        (await readAll(log)).map((r) => r.seq),
        [3, 4, 6],
      );
      assert.deepEqual(
        (await readAll(log, 0, 4096, true)).map((r) => r.seq),
        [1, 2, 3, 4, 5, 6],
      );
      await log.setTakedown(2, true, 3);
      assert.deepEqual(
        (await readAll(log)).map((r) => r.seq),
        [4, 6],
      );
      await log.close();
      const again = await reopen();
      assert.deepEqual(
        (await readAll(again)).map((r) => r.seq),
        [4, 6],
      );
      await again.setTakedown(1, false);
      assert.deepEqual(
        (await readAll(again)).map((r) => r.seq),
        [1, 2, 4, 5, 6],
      );
      await again.close();
    });

    it('a takedown bound given as the seq before a frame-function seq covers exactly the earlier events', async () => {
      const { log } = await factory.open();
      await log.append(events(2, 9));
      let announced = -1;
      const appended = log.append([
        {
          kind: 4,
          uid: 9,
          frame: (s) => {
            announced = s;
            return frameFor(s);
          },
        },
      ]);
      // as the validator does: the hide is made in the same step as the append
      const hidden = log.setTakedown(9, true, announced - 1);
      const [seq] = await appended;
      await hidden;
      assert.equal(seq, 3);
      assert.deepEqual(
        (await readAll(log)).map((r) => r.seq),
        [3],
      );
      await log.close();
    });

    it('continues after a reopen: same head, next seqs follow, old records readable', async () => {
      const { log, reopen } = await factory.open();
      await log.append(events(7));
      await log.close();
      const again = await reopen();
      assert.equal(again.head(), 7);
      assert.equal(again.oldest(), 1);
      assert.deepEqual(await again.append(events(2)), [8, 9]);
      const recs = await readAll(again);
      assert.deepEqual(
        recs.map((r) => r.seq),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      checkFrames(recs);
      assert.ok(again.sizeBytes() >= 0);
      await again.gc();
      assert.equal(again.getWriteState().failing, false);
      await again.close();
    });
  });
}
