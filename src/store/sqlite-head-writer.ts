// The SQLite backend's repo head writes, off the main thread: a worker
// thread (sqlite-head-worker.ts, where the why is) with its own connection
// to the same database file runs each `updateAccountHeads` call as one
// transaction and answers which rows it changed. The worker starts with the
// first call; an in-memory database has no file to share, so it keeps
// writing inline (sqlite-store.ts).
//
// Order: calls are answered in the order they were made (one worker, one
// queue), and the only caller, the validator's head writer, awaits each call
// before the next and before any head reset on the main connection, so no
// write overtakes another. A failed or crashed worker fails the calls in
// flight, as a failed inline write did (the heads stay behind; the repos'
// next events break the chain and resync heals them; after a SIGKILL log
// recovery rewrites them), and the next call starts a new worker.
import { once } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { siblingModuleUrl, startWorker } from '../module-url.ts';
import type { HeadUpdate } from './metadata-store.ts';

/**
 * Head updates as they cross to the worker: the uids in a typed array, and
 * each row's rev, commit CID and data CID concatenated into one string with
 * their lengths alongside. A structured clone copies these three flat, where
 * an array of small arrays is cloned (and rebuilt on the other side) value
 * by value: in a loop of posts the main thread's cost per row went from
 * 0.33-0.47 to 0.18-0.25 µs (docs/benchmarks.md, tenth session). Lengths
 * rather than a separator, so no field's content can shift the rows.
 */
export interface HeadRows {
  uids: Float64Array;
  /** rev, commitCid, dataCid of each row, in order, as their string lengths. */
  lengths: Uint32Array;
  text: string;
}

export function headRows(updates: readonly HeadUpdate[]): HeadRows {
  const n = updates.length;
  const uids = new Float64Array(n);
  const lengths = new Uint32Array(n * 3);
  const parts = new Array<string>(n * 3);
  for (let i = 0; i < n; i++) {
    const { uid, head } = updates[i];
    uids[i] = uid;
    parts[i * 3] = head.rev;
    parts[i * 3 + 1] = head.commitCid;
    parts[i * 3 + 2] = head.dataCid;
    lengths[i * 3] = head.rev.length;
    lengths[i * 3 + 1] = head.commitCid.length;
    lengths[i * 3 + 2] = head.dataCid.length;
  }
  return { uids, lengths, text: parts.join('') };
}

/**
 * The head write itself, for the worker and the inline path alike: the
 * rev-gated UPDATE of every row in one transaction on `db`; per row, whether
 * it changed.
 */
export function headRowsWriter(db: Database.Database): (rows: HeadRows) => boolean[] {
  const update = db.prepare(`UPDATE accounts SET rev = ?, commit_cid = ?, data_cid = ?
      WHERE uid = ? AND (rev IS NULL OR rev < ?)`);
  return db.transaction(({ uids, lengths, text }: HeadRows): boolean[] => {
    const written = new Array<boolean>(uids.length);
    let at = 0;
    const next = (length: number): string => {
      const field = text.slice(at, at + length);
      at += length;
      return field;
    };
    for (let i = 0; i < uids.length; i++) {
      const rev = next(lengths[i * 3]);
      const commitCid = next(lengths[i * 3 + 1]);
      const dataCid = next(lengths[i * 3 + 2]);
      written[i] = update.run(rev, commitCid, dataCid, uids[i], rev).changes > 0;
    }
    return written;
  });
}

export interface HeadWorkerData {
  path: string;
  busyTimeoutMs: number;
  synchronous: 'NORMAL' | 'FULL';
}

export interface HeadWorkerRequest {
  id: number;
  rows: HeadRows;
}

export type HeadWorkerReply = { id: number; written: boolean[] } | { id: number; error: string };

interface Call {
  resolve: (written: boolean[]) => void;
  reject: (err: Error) => void;
}

const WORKER_URL = siblingModuleUrl('./sqlite-head-worker.ts', import.meta.url);

export class SqliteHeadWriter {
  private worker: Worker | null = null;
  private readonly calls = new Map<number, Call>();
  private nextId = 1;
  private lastAnswer: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly data: HeadWorkerData) {}

  /** Writes the heads in one transaction on the worker's connection; per update, whether the row changed. */
  write(updates: readonly HeadUpdate[]): Promise<boolean[]> {
    if (this.closed) return Promise.reject(new Error('metadata store is closed'));
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    const rows = headRows(updates);
    // held while a call is out, so the process waits for the answer
    if (this.calls.size === 0) worker.ref();
    const answer = new Promise<boolean[]>((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
    });
    // answers come in call order, so once the last call has settled every call has
    this.lastAnswer = answer.then(
      () => {},
      () => {},
    );
    worker.postMessage({ id, rows } satisfies HeadWorkerRequest);
    return answer;
  }

  /** Lets the calls already made finish, then closes the worker's connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker;
    if (!worker) return;
    await this.lastAnswer;
    if (this.worker !== worker) return; // it exited meanwhile
    worker.ref();
    const exited = once(worker, 'exit').catch(() => {}); // an 'error' still ends in an exit
    worker.postMessage('close');
    await exited;
  }

  private start(): Worker {
    const worker = startWorker(WORKER_URL, { workerData: this.data });
    worker.unref();
    this.worker = worker;
    worker.on('message', (reply: HeadWorkerReply) => {
      const call = this.calls.get(reply.id);
      if (!call) return;
      this.calls.delete(reply.id);
      if (this.calls.size === 0 && !this.closed) worker.unref();
      if ('written' in reply) call.resolve(reply.written);
      else call.reject(new Error(reply.error));
    });
    worker.on('error', (err) => this.failAll(worker, err));
    worker.on('exit', (code) => this.failAll(worker, new Error(`head writer thread exited (code ${code})`)));
    return worker;
  }

  private failAll(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = null;
    for (const call of this.calls.values()) call.reject(err);
    this.calls.clear();
  }
}
