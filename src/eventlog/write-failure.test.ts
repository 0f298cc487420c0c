// Write failures of the file event log (ENOSPC, EIO on fsync, EMFILE on a new
// segment), injected through the log's test-only `writeFault` hook: appends
// wait instead of failing, the log reports `failing` while it retries, and
// once the cause clears every event is written once, in order, intact — or,
// past maxWriteFailureMs, the log gives up loudly.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { tempDir } from '../../test/support/temp.ts';
import { waitFor } from '../../test/support/wait.ts';
import { openEventLog } from './file-log.ts';
import type { LogRecord, WriteState } from './types.ts';

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected`), { code });
}

function frameFor(seq: number): Uint8Array {
  const b = Buffer.alloc(60, seq % 251);
  b.writeUInt32LE(seq, 0);
  return b;
}

async function readAll(log: { readFrom(after: number): Promise<LogRecord[]> }): Promise<number[]> {
  const out: number[] = [];
  let after = 0;
  for (;;) {
    const recs = await log.readFrom(after);
    if (recs.length === 0) return out;
    for (const r of recs) {
      assert.equal(Buffer.from(r.frame).readUInt32LE(0), r.seq, 'frame matches its seq');
      out.push(r.seq);
    }
    after = recs[recs.length - 1].seq;
  }
}

const append = (
  log: {
    append: (e: { kind: number; uid: number; frame: (s: number) => Uint8Array }[]) => Promise<number[]>;
  },
  n: number,
) => log.append(Array.from({ length: n }, () => ({ kind: 1, uid: 1, frame: frameFor })));

describe('event log write failures', () => {
  for (const [op, code] of [
    ['write', 'ENOSPC'],
    ['sync', 'EIO'],
    ['create', 'EMFILE'],
  ] as const) {
    it(`retries through ${code} on ${op}, reports failing meanwhile, then writes everything once`, async () => {
      const dir = tempDir();
      let failing = false;
      const registry = new Registry();
      const log = await openEventLog({
        dir,
        fsync: true,
        segmentEvents: 25,
        gcIntervalMs: 0,
        writeRetryMs: 5,
        registry,
        writeFault: (o) => (failing && o === op ? errno(code) : undefined),
      });
      const states: WriteState[] = [];
      log.onWriteState((s) => states.push(s));
      const durable: number[] = [];
      log.onDurable((recs) => durable.push(...recs.map((r) => r.seq)));
      await append(log, 20);
      failing = true;
      // crosses into a second segment, so a 'create' fault is met too
      const waiting = [append(log, 10), append(log, 10)];
      let settled = false;
      void Promise.all(waiting).then(
        () => {
          settled = true;
        },
        () => {
          settled = true;
        },
      );
      await waitFor(() => log.getWriteState().failing, 'the failing state');
      const failures = async () =>
        (await registry.getSingleMetric('relay_eventlog_write_failures_total')?.get())?.values.reduce(
          (n, v) => n + v.value,
          0,
        ) ?? 0;
      await waitFor(async () => (await failures()) >= 3, 'a few retries');
      assert.equal(settled, false, 'appends wait while writes fail');
      assert.equal(log.getWriteState().error?.message, `${code}: injected`);
      failing = false; // space freed
      const [a, b] = await Promise.all(waiting);
      assert.deepEqual(
        [...a, ...b],
        Array.from({ length: 20 }, (_, i) => 21 + i),
      );
      assert.equal(log.getWriteState().failing, false);
      assert.deepEqual(
        states.map((s) => s.failing),
        [true, false],
        'one change each way',
      );
      assert.deepEqual(
        durable,
        Array.from({ length: 40 }, (_, i) => i + 1),
        'published once, in order',
      );
      await append(log, 5);
      assert.deepEqual(
        await readAll(log),
        Array.from({ length: 45 }, (_, i) => i + 1),
      );
      await log.close();
      // the files hold exactly that, intact (recovery checks every CRC)
      const again = await openEventLog({ dir, gcIntervalMs: 0 });
      assert.equal(again.head(), 45);
      assert.deepEqual(
        await readAll(again),
        Array.from({ length: 45 }, (_, i) => i + 1),
      );
      await again.close();
    });
  }

  it('gives up after maxWriteFailureMs: appends are refused and fatal listeners run', async () => {
    let now = 1_000_000;
    let broken = false;
    const log = await openEventLog({
      dir: tempDir(),
      fsync: false,
      gcIntervalMs: 0,
      writeRetryMs: 1,
      maxWriteFailureMs: 60_000,
      now: () => now,
      writeFault: () => (broken ? errno('EIO') : undefined),
    });
    broken = true;
    const fatal: Error[] = [];
    log.onFatal((e) => fatal.push(e));
    const pending = append(log, 3);
    await waitFor(() => log.getWriteState().failing, 'the failing state');
    now += 61_000;
    await assert.rejects(pending, /failing for 61 s/);
    assert.equal(fatal.length, 1);
    await assert.rejects(append(log, 1), /failing/);
    await log.close();
  });
});
