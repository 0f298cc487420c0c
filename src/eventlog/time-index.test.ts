// The event log's time index (time-index.ts, wired in file-log.ts): every
// durable record gets a time_us, unique and increasing with the seq even when
// many records share a millisecond or the clock steps back; a reader
// recomputes the same values from a checkpoint; a cursor finds its place;
// and after a reopen (the index file intact, torn, or gone) the values are
// the same and the chain continues.
import assert from 'node:assert/strict';
import { statSync, truncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { tempDir } from '../../test/support/temp.ts';
import { type FileEventLog, openEventLog } from './file-log.ts';
import { nextTimeUs, type TimeChainPosition } from './time-index.ts';
import type { LogRecord } from './types.ts';

describe('event log time index', () => {
  let dir: string;
  let now: number;
  const open = () =>
    openEventLog({
      dir,
      fsync: false,
      gcIntervalMs: 0,
      segmentEvents: 50,
      timeIndexEveryEvents: 20,
      now: () => now,
    });

  beforeEach(() => {
    dir = tempDir('atrelay-timeidx-');
    now = 1_700_000_000_000;
  });

  /** Appends `n` events at the current clock, collecting the durable records (with their time_us). */
  async function append(log: FileEventLog, n: number, seen: LogRecord[]): Promise<void> {
    const off = log.onDurable((recs) => seen.push(...recs));
    await log.append(
      Array.from({ length: n }, () => ({ kind: 1, uid: 1, frame: new Uint8Array([1, 2, 3]) })),
    );
    off();
  }

  /** Every record after `pos` with its recomputed time_us (the way a Jetstream replay reads). */
  async function walk(log: FileEventLog, pos: TimeChainPosition): Promise<[number, number][]> {
    const out: [number, number][] = [];
    let after = pos.afterSeq;
    let prev = pos.prevTimeUs;
    for (;;) {
      const recs = await log.readFrom(after, { includeTakenDown: true });
      if (recs.length === 0) return out;
      for (const r of recs) {
        prev = nextTimeUs(prev, r.time);
        out.push([r.seq, prev]);
        after = r.seq;
      }
    }
  }

  it('assigns unique increasing time_us, recomputable from any checkpoint, across reopen and a lost or torn index', async () => {
    let log = await open();
    const seen: LogRecord[] = [];
    await append(log, 30, seen); // 30 records in one millisecond
    now += 1;
    await append(log, 5, seen);
    now -= 10_000; // the clock steps back
    await append(log, 40, seen);
    now += 20_000;
    await append(log, 60, seen);
    const live = seen.map((r) => [r.seq, r.timeUs!] as [number, number]);
    assert.equal(live.length, 135);
    for (let i = 1; i < live.length; i++) assert.ok(live[i][1] > live[i - 1][1], `time_us increases at ${i}`);
    assert.equal(live[0][1], 1_700_000_000_000_000);
    assert.equal(live[29][1], 1_700_000_000_000_029, 'records of one ms take consecutive microseconds');

    // a reader starting at the first checkpoint recomputes exactly the live values
    assert.deepEqual(await walk(log, log.timeIndex.first()!), live);
    // seek: from the checkpoint at or before the cursor, the first record ≥ cursor is where live says
    for (const [seq, t] of [live[0], live[17], live[64], live[100], live[134]]) {
      const pos = log.timeIndex.seek(t)!;
      assert.ok(pos.afterSeq < seq);
      const first = (await walk(log, pos)).find(([, tt]) => tt >= t)!;
      assert.deepEqual(first, [seq, t]);
    }
    assert.equal(log.timeIndex.seek(live[134][1] + 1), undefined, 'future cursor: live');
    const old = log.timeIndex.seek(1)!;
    assert.equal(old.afterSeq, 0, 'cursor older than everything: from the start');
    await log.close();

    // reopen: same values, the chain continues
    log = await open();
    assert.deepEqual(await walk(log, log.timeIndex.first()!), live);
    const more: LogRecord[] = [];
    await append(log, 3, more);
    assert.ok(more[0].timeUs! > live[134][1]);
    const all = [...live, ...more.map((r) => [r.seq, r.timeUs!] as [number, number])];
    await log.close();

    // a torn index file: the lost checkpoints come back from the records
    const idxFile = join(dir, 'time-index.bin');
    truncateSync(idxFile, statSync(idxFile).size - 20);
    log = await open();
    assert.deepEqual(await walk(log, log.timeIndex.first()!), all);
    await append(log, 1, more);
    assert.ok(more.at(-1)!.timeUs! > all.at(-1)![1]);
    await log.close();

    // no index at all: a fresh chain from the active segment on, still increasing
    unlinkSync(idxFile);
    log = await open();
    const first = log.timeIndex.first()!;
    assert.ok(first.afterSeq >= 100, 'older segments are not indexed');
    const rebuilt = await walk(log, first);
    for (let i = 1; i < rebuilt.length; i++) assert.ok(rebuilt[i][1] > rebuilt[i - 1][1]);
    const after: LogRecord[] = [];
    await append(log, 2, after);
    assert.ok(after[0].timeUs! > rebuilt.at(-1)![1]);
    await log.close();
  });

  it('retention trims the index with the segments', async () => {
    const log = await openEventLog({
      dir,
      fsync: false,
      gcIntervalMs: 0,
      segmentEvents: 50,
      timeIndexEveryEvents: 20,
      retentionMs: 5000,
      now: () => now,
    });
    const seen: LogRecord[] = [];
    for (let i = 0; i < 4; i++) {
      await append(log, 50, seen);
      now += 1000;
    }
    await append(log, 1, seen); // the fifth segment, so four are sealed
    const sizeBefore = log.timeIndex.size;
    now += 4500; // the first segments are now older than the retention
    assert.ok((await log.gc()) > 0);
    assert.ok(log.timeIndex.size < sizeBefore);
    const first = log.timeIndex.first()!;
    assert.equal(first.afterSeq + 1, log.oldest(), 'the oldest kept record is a checkpoint');
    const oldestRecord = seen.find((r) => r.seq === log.oldest())!;
    assert.equal(log.timeIndex.checkpointAt(log.oldest()), oldestRecord.timeUs);
    await log.close();
  });
});
