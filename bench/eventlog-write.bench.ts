// The file log's durable write, alone: what one group commit (one positional
// write of a batch, durable before the head moves) costs the main thread and
// the process, for the ways Node can issue it. The log uses the last one
// (src/eventlog/file-io.ts: openAppendHandle + writeAt); the others are what
// it used before and the steps in between, kept to show why.
//
//   node --import tsx bench/eventlog-write.bench.ts [--flushes 4000] [--bytes 28000] [--rounds 2]
//
// Each variant writes --flushes batches of --bytes (28 KB: ~8 events of a
// commit-sized frame, a group commit at 8,000 events/s), one after the other,
// into a fresh file in the OS temp directory, and reports per flush the main
// thread's CPU (/proc/self/task/<pid>/stat), the process's CPU (/proc/self/stat)
// and the wall time. Sequential flushes mean the main thread sleeps while the
// threadpool writes and is woken when it answers, as in the relay between
// group commits.
import { fdatasync, write as fsWrite, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openAppendHandle, writeAt } from '../src/eventlog/file-io.ts';
import { procCpuSeconds } from './harness.ts';

const { values } = parseArgs({
  options: {
    flushes: { type: 'string', default: '4000' },
    bytes: { type: 'string', default: '28000' },
    rounds: { type: 'string', default: '2' },
  },
});
const flushes = Number(values.flushes);
const batch = Buffer.alloc(Number(values.bytes), 1);

const mainCpu = (): number => procCpuSeconds(process.pid, process.pid);
const processCpu = (): number => procCpuSeconds(process.pid);

type Variant = (path: string) => Promise<void>;

const variants: Record<string, Variant> = {
  'FileHandle write + datasync': async (path) => {
    const fh = await open(path, 'w+');
    for (let i = 0, pos = 0; i < flushes; i++) {
      pos += (await fh.write(batch, 0, batch.length, pos)).bytesWritten;
      await fh.datasync();
    }
    await fh.close();
  },
  'callback write + fdatasync': async (path) => {
    const fh = await open(path, 'w+');
    const datasync = () =>
      new Promise<void>((resolve, reject) => fdatasync(fh.fd, (err) => (err ? reject(err) : resolve())));
    const write = (pos: number) =>
      new Promise<number>((resolve, reject) =>
        fsWrite(fh.fd, batch, 0, batch.length, pos, (err, n) => (err ? reject(err) : resolve(n))),
      );
    for (let i = 0, pos = 0; i < flushes; i++) {
      pos += await write(pos);
      await datasync();
    }
    await fh.close();
  },
  'FileHandle write, O_DSYNC': async (path) => {
    const { fh } = await openAppendHandle(path, 'w+', true);
    for (let i = 0, pos = 0; i < flushes; i++)
      pos += (await fh.write(batch, 0, batch.length, pos)).bytesWritten;
    await fh.close();
  },
  'callback write, O_DSYNC (the log)': async (path) => {
    const { fh, dsync } = await openAppendHandle(path, 'w+', true);
    for (let i = 0, pos = 0; i < flushes; i++) {
      pos += await writeAt(fh.fd, batch, 0, batch.length, pos);
      if (!dsync) await fh.datasync();
    }
    await fh.close();
  },
};

console.log(`${flushes} sequential durable writes of ${batch.length} bytes; per flush:`);
for (let round = 0; round < Number(values.rounds); round++) {
  for (const [name, run] of Object.entries(variants)) {
    const path = join(tmpdir(), `atrelay-eventlog-write-${process.pid}.dat`);
    const main0 = mainCpu();
    const proc0 = processCpu();
    const wall0 = performance.now();
    await run(path);
    const wall = (performance.now() - wall0) / flushes;
    const main = ((mainCpu() - main0) * 1e6) / flushes;
    const proc = ((processCpu() - proc0) * 1e6) / flushes;
    rmSync(path, { force: true });
    console.log(
      `  ${name.padEnd(36)} main thread ${main.toFixed(1).padStart(5)} µs, process ${proc.toFixed(1).padStart(6)} µs, wall ${wall.toFixed(3)} ms`,
    );
  }
}
