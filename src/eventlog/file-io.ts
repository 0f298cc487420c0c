// Small file helpers the embedded event log shares: reading a byte range of
// a segment file (readers open, read and close per chunk, so retention can
// unlink a segment under them and they see ENOENT) and fsyncing a directory
// (so a created, renamed or removed file name survives a power cut).
import { open } from 'node:fs/promises';

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
