import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { tempDir } from '../../test/support/temp.ts';
import { openEventLog } from './file-log.ts';

const dir = tempDir('eventlog-crash-');
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
});

/** Runs the appending child until it acknowledged at least `minAcks` seqs past its start, plus a random delay, then SIGKILLs it. */
function runAndKill(minAcks: number): Promise<{ opened: number; maxAcked: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, '..', '..', 'test', 'support', 'eventlog-crash-writer.ts'),
        dir,
      ],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    children.add(child);
    let opened = -1;
    let maxAcked = -1;
    let buffered = '';
    let killTimer: NodeJS.Timeout | undefined;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const [word, n] = line.split(' ');
        if (word === 'open') opened = Number(n);
        if (word === 'ack') maxAcked = Math.max(maxAcked, Number(n));
      }
      if (!killTimer && opened >= 0 && maxAcked >= opened + minAcks) {
        killTimer = setTimeout(() => child.kill('SIGKILL'), Math.floor(Math.random() * 60));
      }
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      children.delete(child);
      if (signal !== 'SIGKILL') reject(new Error(`child exited without being killed (${signal})`));
      else resolve({ opened, maxAcked });
    });
  });
}

/** Same frame layout as test/support/eventlog-crash-writer.ts. */
function frameFor(seq: number): Uint8Array {
  const b = Buffer.alloc(24 + (seq % 200), seq % 251);
  b.writeUInt32LE(seq, 0);
  return b;
}

describe('event log crash recovery (kill -9 of the writing process)', () => {
  it('keeps every acknowledged event, truncates the torn tail and continues', async () => {
    let lastHead = 0;
    for (let round = 0; round < 3; round++) {
      const { opened, maxAcked } = await runAndKill(200 + round * 150);
      assert.equal(opened, lastHead, 'the child resumed after the previous head');
      if (round === 1) {
        // Simulate a write cut short mid-record on top of whatever the kill left.
        const segs = readdirSync(dir)
          .filter((f) => f.endsWith('.seg2'))
          .sort();
        appendFileSync(join(dir, segs[segs.length - 1]), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]));
      }
      const log = await openEventLog({ dir, segmentEvents: 300, gcIntervalMs: 0 });
      const head = log.head();
      assert.ok(head >= maxAcked, `head ${head} lost acknowledged seq ${maxAcked}`);
      let expected = 1;
      let cursor = 0;
      for (;;) {
        const recs = await log.readFrom(cursor, { maxBytes: 256 * 1024 });
        if (recs.length === 0) break;
        for (const r of recs) {
          assert.equal(r.seq, expected, 'seqs are gapless and strictly increasing');
          assert.equal(Buffer.from(r.frame).readUInt32LE(0), r.seq, 'frame intact');
          assert.equal(r.frame.byteLength, 24 + (r.seq % 200));
          expected++;
        }
        cursor = recs[recs.length - 1].seq;
      }
      assert.equal(expected - 1, head);
      assert.deepEqual(await log.append([{ kind: 1, uid: 1, frame: frameFor }]), [head + 1]);
      await log.close();
      lastHead = head + 1;
    }
  });
});
