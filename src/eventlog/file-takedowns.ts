// Takedowns of the embedded event log (file-log.ts): a uid → seq map, events
// of that uid up to that seq are skipped by reads, events appended after the
// takedown (e.g. the #account event) are not. Persisted beside the segments
// in `takedowns.json`, rewritten whole on each change (write a temporary
// file, fsync it, rename it over the old one, fsync the directory), one
// write at a time in call order, so a crash leaves the old map or the new
// one. The shared JetStream log keeps its takedowns in a KV bucket instead
// (nats-takedowns.ts).
import { open, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from './file-io.ts';

const TAKEDOWNS_FILE = 'takedowns.json';

export class FileTakedowns {
  private takedowns = new Map<number, number>();
  private takedownWrite: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    /** fsync the directory after each rename (off only for tests and benchmarks). */
    private readonly fsync: boolean,
  ) {}

  isTakenDown(uid: number, seq: number): boolean {
    const upTo = this.takedowns.get(uid);
    return upTo !== undefined && seq <= upTo;
  }

  /** Hides the uid's events up to `upToSeq` (on) or shows them again (off); resolves once stored. */
  async set(uid: number, on: boolean, upToSeq: number): Promise<void> {
    if (on) this.takedowns.set(uid, upToSeq);
    else if (!this.takedowns.delete(uid)) return;
    const snapshot = JSON.stringify(Object.fromEntries(this.takedowns));
    this.takedownWrite = this.takedownWrite.then(async () => {
      const tmp = join(this.dir, `${TAKEDOWNS_FILE}.tmp`);
      await writeFile(tmp, snapshot);
      const fh = await open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await rename(tmp, join(this.dir, TAKEDOWNS_FILE));
      if (this.fsync) await syncDir(this.dir);
    });
    await this.takedownWrite;
  }

  /** Reads the persisted map (none yet: empty). */
  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(join(this.dir, TAKEDOWNS_FILE), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const obj = JSON.parse(text) as Record<string, number>;
    for (const [uid, seq] of Object.entries(obj)) this.takedowns.set(Number(uid), seq);
  }

  /** Resolves when the last write started has finished (failed or not). */
  async settled(): Promise<void> {
    await this.takedownWrite.catch(() => {});
  }
}
