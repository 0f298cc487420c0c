// Small file helpers the embedded event log shares: reading a byte range of
// a segment file (readers open, read and close per chunk, so retention can
// unlink a segment under them and they see ENOENT) and fsyncing a directory
// (so a created, renamed or removed file name survives a power cut); and the
// log's own write path: how a segment is opened for appending and how one
// positional write is issued.
//
// The write path skips fs/promises. A FileHandle `write` and `datasync` each
// cost the main thread a promise-flavoured request (it allocates its own
// result arrays) and a wake-up when the threadpool answers; a group commit
// paid two of those. With fsync on, a segment is opened O_DSYNC instead, so
// the one write returns only once its data (and the file size) is durable,
// exactly what write + fdatasync gave, in one threadpool round trip; and the
// write goes through the callback API. A loop of 28 KB writes
// (bench/eventlog-write.bench.ts, numbers in docs/eventlog.md): main-thread CPU
// per flush 50-57 µs (FileHandle write + datasync) against 27-32 µs, the
// process's 162-177 against 120-130, the wall time 0.27-0.31 against 0.22-0.24 ms.
import { constants, write as fsWrite } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/** Reads up to `length` bytes at `offset`; shorter at the end of the file. */
export async function readChunk(path: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === length ? buf : buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** O_DSYNC where the platform has it (not on Windows: there the log falls back to write + datasync). */
const O_DSYNC: number | undefined = (constants as { O_DSYNC?: number }).O_DSYNC;

/** A segment opened for the log's writes: `dsync` says each write is durable on return. */
export interface AppendHandle {
  fh: FileHandle;
  dsync: boolean;
}

/**
 * Opens a segment for appending ('w+': create or truncate; 'r+': an existing
 * one), O_DSYNC when `durable` and the platform allows it.
 */
export async function openAppendHandle(
  path: string,
  mode: 'w+' | 'r+',
  durable: boolean,
): Promise<AppendHandle> {
  if (!durable || O_DSYNC === undefined) return { fh: await open(path, mode), dsync: false };
  const flags = constants.O_RDWR | O_DSYNC | (mode === 'w+' ? constants.O_CREAT | constants.O_TRUNC : 0);
  return { fh: await open(path, flags, 0o666), dsync: true };
}

/** One positional write of `length` bytes of `buf` from `offset`; resolves with the bytes written. */
export function writeAt(
  fd: number,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    fsWrite(fd, buf, offset, length, position, (err, written) => (err ? reject(err) : resolve(written)));
  });
}
