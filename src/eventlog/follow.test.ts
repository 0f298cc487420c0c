// followLog on its own, against a real file log with appends running all the
// time: a follower whose "window" is the log's durable listener gets every
// seq after its cursor exactly once and in order, whichever way round the
// options are (read ahead or not, cutover at once or only at the head), and
// a follower that is gone stops reading. The endpoints' own tests cover the
// same over sockets (src/firehose/server.test.ts, src/jetstream/).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../../test/support/wait.ts';
import { type FileEventLog, openEventLog } from './file-log.ts';
import { followLog, type LogFollower } from './follow.ts';
import type { LogRecord } from './types.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function openLog(): Promise<FileEventLog> {
  const dir = mkdtempSync(join(tmpdir(), 'follow-test-'));
  dirs.push(dir);
  return openEventLog({ dir, fsync: false, gcIntervalMs: 0, segmentEvents: 200 });
}

function append(log: FileEventLog, n: number): Promise<number[]> {
  return log.append(
    Array.from({ length: n }, () => ({ kind: 1, uid: 1, frame: new Uint8Array(40 + (n % 7) * 10) })),
  );
}

/** Records what it is handed; its live window is every durable batch since it was made. */
class RecordingFollower implements LogFollower {
  lastSeq = -1;
  readonly received: number[] = [];
  readonly phases: string[] = [];
  stopped = false;
  private readonly window: LogRecord[] = [];
  private pos = 0;
  private live = false;
  readonly unsubscribe: () => void;

  constructor(log: FileEventLog) {
    this.unsubscribe = log.onDurable((records) => {
      for (const r of records) this.window.push(r);
      if (this.live) this.flush();
    });
  }

  gone(): boolean {
    return this.stopped;
  }

  /** Another turn of the event loop, so appends land between batches. */
  async drained(): Promise<void> {
    await nextTurn();
  }

  deliver(records: readonly LogRecord[]): void {
    for (const r of records) {
      if (r.seq <= this.lastSeq) continue;
      this.received.push(r.seq);
      this.lastSeq = r.seq;
    }
  }

  startCutover(): void {
    this.pos = this.window.length;
    this.phases.push('cutover');
  }

  goLive(): void {
    this.phases.push('live');
    this.live = true;
    this.flush();
  }

  private flush(): void {
    for (; this.pos < this.window.length; this.pos++) {
      const r = this.window[this.pos];
      if (r.seq <= this.lastSeq) continue;
      this.received.push(r.seq);
      this.lastSeq = r.seq;
    }
  }
}

function assertConsecutive(seqs: readonly number[], first: number, last: number, label: string): void {
  assert.equal(seqs[0], first, `${label}: first seq`);
  for (let i = 1; i < seqs.length; i++) {
    if (seqs[i] !== seqs[i - 1] + 1) assert.fail(`${label}: seq ${seqs[i]} after ${seqs[i - 1]}`);
  }
  assert.equal(seqs[seqs.length - 1], last, `${label}: last seq`);
}

describe('followLog', () => {
  for (const readAhead of [true, false]) {
    for (const cutoverLag of [0, 1e9]) {
      it(`hands on every seq after the cursor once, in order, while appends run (readAhead ${readAhead}, cutover lag ${cutoverLag})`, async () => {
        const log = await openLog();
        try {
          await append(log, 1000);
          let appending = true;
          const appender = (async () => {
            while (appending) await append(log, 1 + Math.floor(Math.random() * 20));
          })();
          const followers: { f: RecordingFollower; cursor: number | undefined; run: Promise<void> }[] = [];
          for (const cursor of [0, 500, undefined, 999]) {
            const f = new RecordingFollower(log);
            const run = followLog(log, f, cursor, {
              replayBatchBytes: 2048,
              cutoverLag,
              readAhead,
              includeTakenDown: false,
            });
            followers.push({ f, cursor, run });
            await sleep(5);
          }
          await sleep(100);
          appending = false;
          await appender;
          await Promise.all(followers.map(({ run }) => run));
          const head = log.head();
          await waitFor(() => followers.every(({ f }) => f.lastSeq === head), 'every follower at the head');
          for (const { f, cursor } of followers) {
            const label = `cursor ${cursor}`;
            assert.deepEqual(f.phases, ['cutover', 'live'], label);
            if (cursor === undefined) assert.ok(f.received.length > 0, `${label}: live events`);
            assertConsecutive(f.received, cursor === undefined ? f.received[0] : cursor + 1, head, label);
            f.unsubscribe();
          }
        } finally {
          await log.close();
        }
      });
    }
  }

  it('stops reading once the follower is gone, and never cuts over', async () => {
    const log = await openLog();
    try {
      await append(log, 500);
      const f = new RecordingFollower(log);
      const drained = f.drained.bind(f);
      f.drained = async () => {
        await drained();
        f.stopped = true;
      };
      await followLog(log, f, 0, {
        replayBatchBytes: 1024,
        cutoverLag: 0,
        readAhead: true,
        includeTakenDown: false,
      });
      assert.deepEqual(f.phases, []);
      assert.ok(f.received.length > 0 && f.received.length < 500, `one batch, got ${f.received.length}`);
      f.unsubscribe();
    } finally {
      await log.close();
    }
  });
});
