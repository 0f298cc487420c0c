import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { Registry } from 'prom-client';
import { tempDir } from '../../test/support/temp.ts';
import { type FileEventLog, openEventLog } from './file-log.ts';
import type { LogRecord } from './types.ts';

/** A frame whose bytes encode its seq, so reads can be checked against seqs. */
function frameFor(seq: number, size = 40): Uint8Array {
  const b = Buffer.alloc(size, seq % 251);
  b.writeUInt32LE(seq, 0);
  return b;
}

function seqOf(rec: LogRecord): number {
  return Buffer.from(rec.frame.buffer, rec.frame.byteOffset, rec.frame.byteLength).readUInt32LE(0);
}

async function appendN(log: FileEventLog, n: number, uid = 1, size = 40): Promise<number[]> {
  const events = Array.from({ length: n }, () => ({
    kind: 1,
    uid,
    frame: (seq: number) => frameFor(seq, size),
  }));
  return log.append(events);
}

async function readAll(log: FileEventLog, after = 0, maxBytes = 4096): Promise<LogRecord[]> {
  const out: LogRecord[] = [];
  let cursor = after;
  for (;;) {
    const recs = await log.readFrom(cursor, { maxBytes });
    if (recs.length === 0) return out;
    out.push(...recs);
    cursor = recs[recs.length - 1].seq;
  }
}

describe('FileEventLog', () => {
  it('assigns increasing seqs, resolves when durable and notifies in order', async () => {
    const log = await openEventLog({ dir: tempDir(), fsync: false, gcIntervalMs: 0 });
    const seen: number[] = [];
    log.onDurable((recs) => {
      for (const r of recs) {
        assert.ok(r.seq <= log.head(), 'head advances before listeners run');
        seen.push(r.seq);
      }
    });
    const [a, b] = await Promise.all([appendN(log, 3), appendN(log, 2)]);
    assert.deepEqual(a, [1, 2, 3]);
    assert.deepEqual(b, [4, 5]);
    assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    assert.equal(log.head(), 5);
    assert.equal(log.oldest(), 1);
    await log.close();
    await assert.rejects(appendN(log, 1), /closed/);
  });

  it('reads from any cursor across segments, with small and large budgets', async () => {
    const dir = tempDir();
    const log = await openEventLog({ dir, fsync: false, segmentEvents: 100, gcIntervalMs: 0 });
    for (let i = 0; i < 10; i++) await appendN(log, 57, 1, 30 + i * 7);
    assert.equal(log.head(), 570);
    assert.equal(readdirSync(dir).filter((f) => f.endsWith('.seg2')).length, 6);
    for (const cursor of [0, 1, 63, 64, 65, 99, 100, 101, 255, 569]) {
      const recs = await readAll(log, cursor, cursor % 2 ? 300 : 1 << 20);
      assert.deepEqual(
        recs.map((r) => r.seq),
        Array.from({ length: 570 - cursor }, (_, i) => cursor + i + 1),
      );
      for (const r of recs) assert.equal(seqOf(r), r.seq);
    }
    assert.deepEqual(await log.readFrom(570), []);
    assert.deepEqual(
      (await log.readFrom(10, { untilSeq: 12 })).map((r) => r.seq),
      [11, 12],
    );
    await log.close();

    // Reopened: older segments are indexed lazily, reads give the same result.
    const again = await openEventLog({ dir, fsync: false, segmentEvents: 100, gcIntervalMs: 0 });
    assert.equal(again.head(), 570);
    const recs = await readAll(again, 150, 999);
    assert.equal(recs.length, 420);
    assert.deepEqual(await appendN(again, 1), [571]);
    await again.close();
  });

  it('groups concurrent appends into few flushes', async () => {
    const registry = new Registry();
    const log = await openEventLog({ dir: tempDir(), flushIntervalMs: 5, registry, gcIntervalMs: 0 });
    await Promise.all(Array.from({ length: 200 }, () => appendN(log, 1)));
    const text = await registry.metrics();
    const flushes = Number(/relay_eventlog_flush_seconds_count (\d+)/.exec(text)?.[1]);
    assert.ok(flushes !== undefined && flushes <= 3, `expected few flushes, got ${flushes}`);
    assert.match(text, /relay_eventlog_head_seq 200/);
    await log.close();
  });

  it('truncates a torn or corrupt tail on open and continues with the next seq', async () => {
    const dir = tempDir();
    const log = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    await appendN(log, 20);
    await log.close();
    const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg2'))!);
    const good = statSync(seg).size;

    // A record cut in the middle of its payload.
    truncateSync(seg, good - 5);
    let reopened = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    assert.equal(reopened.head(), 19);
    assert.deepEqual(await appendN(reopened, 1), [20]);
    await reopened.close();

    // Garbage (zero fill, then a header with a bad CRC) after the last record.
    appendFileSync(seg, Buffer.alloc(100));
    reopened = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    assert.equal(reopened.head(), 20);
    assert.equal(statSync(seg).size, good);
    const recs = await readAll(reopened);
    assert.deepEqual(
      recs.map((r) => r.seq),
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    await reopened.close();

    const corrupt = Buffer.from(await import('node:fs').then((fs) => fs.readFileSync(seg)));
    corrupt[corrupt.length - 1] ^= 0xff; // flip a payload byte of seq 20
    await import('node:fs').then((fs) => fs.writeFileSync(seg, corrupt));
    reopened = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    assert.equal(reopened.head(), 19);
    await reopened.close();
  });

  it('removes whole old segments by age and by size, never the active one', async () => {
    const dir = tempDir();
    let now = 1_000_000;
    const log = await openEventLog({
      dir,
      fsync: false,
      segmentEvents: 10,
      retentionMs: 1000,
      retentionBytes: 10_000,
      gcIntervalMs: 0,
      now: () => now,
    });
    await appendN(log, 30, 1, 52); // segments 1-10, 11-20, 21-30 (each 10 × 100 bytes: 48-byte header + 52)
    now += 500;
    await appendN(log, 10, 1, 52); // 31-40
    assert.equal(await log.gc(), 0);
    now += 600; // the first three segments are now older than 1 s
    assert.equal(await log.gc(), 3);
    assert.equal(log.oldest(), 31);
    assert.deepEqual(
      (await log.readFrom(0, { untilSeq: 32 })).map((r) => r.seq),
      [31, 32],
    );
    await appendN(log, 150, 1, 52); // 15 more segments: 16,000 bytes > 10,000
    await log.gc();
    assert.ok(log.sizeBytes() <= 10_000, `size ${log.sizeBytes()}`);
    assert.equal(log.oldest(), log.head() - Math.floor(log.sizeBytes() / 100) + 1);
    await log.close();
  });

  it('hides events of taken-down accounts from reads, persistently, but not later ones', async () => {
    const dir = tempDir();
    const log = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    await appendN(log, 2, 7); // 1, 2 by uid 7
    await appendN(log, 1, 8); // 3 by uid 8
    await log.setTakedown(7, true);
    await appendN(log, 1, 7); // 4: e.g. the #account takendown event
    assert.deepEqual(
      (await readAll(log)).map((r) => r.seq),
      [3, 4],
    );
    await log.close();
    const again = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    assert.deepEqual(
      (await readAll(again)).map((r) => r.seq),
      [3, 4],
    );
    await again.setTakedown(7, false);
    assert.deepEqual(
      (await readAll(again)).map((r) => r.seq),
      [1, 2, 3, 4],
    );
    await again.close();
  });

  it("stores each event's upstream origin and gives it back on reads, listeners and after reopening", async () => {
    const dir = tempDir();
    const log = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    const heard: LogRecord[] = [];
    log.onDurable((recs) => heard.push(...recs));
    await log.append([
      { kind: 1, uid: 7, frame: (seq) => frameFor(seq), origin: { hostId: 3, seq: 2 ** 40 + 5 } },
      { kind: 2, uid: 7, frame: (seq) => frameFor(seq) },
    ]);
    assert.deepEqual(heard[0].origin, { hostId: 3, seq: 2 ** 40 + 5 });
    assert.equal(heard[1].origin, undefined);
    await log.close();
    const again = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    const recs = await readAll(again);
    assert.deepEqual(recs[0].origin, { hostId: 3, seq: 2 ** 40 + 5 });
    assert.equal(recs[1].origin, undefined);
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.seg2')).length, 1);
    await again.close();
  });

  it('reads segments of the earlier record format and appends after them in the current one', async () => {
    const dir = tempDir();
    // Two format-1 records (36-byte headers), as the previous version wrote them.
    const v1 = (seq: number, frame: Uint8Array): Buffer => {
      const h = Buffer.alloc(36);
      h.writeUInt16LE(0, 4);
      h.writeUInt16LE(1, 6);
      h.writeUInt32LE(frame.byteLength, 8);
      h.writeUInt32LE(9, 12); // uid
      h.writeUInt32LE(seq, 20);
      h.writeUInt32LE(1_000, 28); // time
      h.writeUInt32LE(crc32(frame, crc32(h.subarray(8, 36))), 0);
      return Buffer.concat([h, frame]);
    };
    const name = join(dir, `${'1'.padStart(16, '0')}.seg`);
    appendFileSync(name, Buffer.concat([v1(1, frameFor(1)), v1(2, frameFor(2))]));
    const log = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    assert.equal(log.head(), 2);
    await appendN(log, 2);
    const recs = await readAll(log);
    assert.deepEqual(recs.map(seqOf), [1, 2, 3, 4]);
    assert.deepEqual(
      recs.map((r) => r.uid),
      [9, 9, 1, 1],
    );
    await log.close();
    const again = await openEventLog({ dir, fsync: false, gcIntervalMs: 0 });
    assert.deepEqual((await readAll(again)).map(seqOf), [1, 2, 3, 4]);
    assert.deepEqual(
      readdirSync(dir)
        .filter((n) => n.endsWith('.seg') || n.endsWith('.seg2'))
        .sort(),
      [`${'1'.padStart(16, '0')}.seg`, `${'3'.padStart(16, '0')}.seg2`],
    );
    await again.close();
  });
});
