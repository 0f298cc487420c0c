import assert from 'node:assert/strict';
import { constants, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { tempDir } from '../../test/support/temp.ts';
import { openAppendHandle, writeAt } from './file-io.ts';
import { openEventLog } from './file-log.ts';
import { segmentFileName } from './segment.ts';

const O_DSYNC = (constants as { O_DSYNC?: number }).O_DSYNC ?? 0;
const linux = process.platform === 'linux';

/** The open flags of one of this process's descriptors (Linux: /proc/self/fdinfo, octal). */
function openFlags(fd: number): number {
  const line = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('flags:'));
  assert.ok(line, 'fdinfo has flags');
  return Number.parseInt(line.slice('flags:'.length).trim(), 8);
}

/** The descriptors this process holds on `path`. */
function fdsOn(path: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === path) out.push(Number(name));
    } catch {
      // closed while listing (the readdir's own descriptor)
    }
  }
  return out;
}

describe('file-io: the log write path', () => {
  it('opens a segment O_DSYNC when durable, plainly when not; w+ truncates, r+ keeps', {
    skip: !linux,
  }, async () => {
    const dir = tempDir('file-io');
    const path = join(dir, 'seg');
    writeFileSync(path, 'old content');
    const durable = await openAppendHandle(path, 'w+', true);
    try {
      assert.equal(durable.dsync, true);
      assert.equal(openFlags(durable.fh.fd) & O_DSYNC, O_DSYNC);
      assert.equal((await durable.fh.stat()).size, 0, 'w+ truncated the file');
      assert.equal(await writeAt(durable.fh.fd, Buffer.from('xxabcdef'), 2, 4, 3), 4);
    } finally {
      await durable.fh.close();
    }
    assert.deepEqual([...readFileSync(path)], [0, 0, 0, ...Buffer.from('abcd')]);
    const plain = await openAppendHandle(path, 'r+', false);
    try {
      assert.equal(plain.dsync, false);
      assert.equal(openFlags(plain.fh.fd) & O_DSYNC, 0);
      assert.equal((await plain.fh.stat()).size, 7, 'r+ kept the file');
    } finally {
      await plain.fh.close();
    }
  });

  it('the log appends through an O_DSYNC handle, also to a segment it recovered', {
    skip: !linux,
  }, async () => {
    const dir = tempDir('file-io-log');
    let log = await openEventLog({ dir, fsync: true });
    await log.append([{ kind: 1, uid: 1, frame: Buffer.from('first') }]);
    const [segName] = readdirSync(dir).filter((n) => n === segmentFileName(1));
    assert.ok(segName, 'a segment file');
    const segPath = join(dir, segName);
    const created = fdsOn(segPath);
    assert.equal(created.length, 1);
    assert.equal(openFlags(created[0]) & O_DSYNC, O_DSYNC, 'a created segment is O_DSYNC');
    await log.close();
    log = await openEventLog({ dir, fsync: true });
    try {
      await log.append([{ kind: 1, uid: 1, frame: Buffer.from('second') }]);
      const recovered = fdsOn(segPath);
      assert.equal(recovered.length, 1, 'one handle on the recovered tail');
      assert.equal(openFlags(recovered[0]) & O_DSYNC, O_DSYNC, 'the recovered tail is written O_DSYNC');
      assert.deepEqual(
        (await log.readFrom(0)).map((r) => Buffer.from(r.frame).toString()),
        ['first', 'second'],
      );
    } finally {
      await log.close();
    }
  });
});
