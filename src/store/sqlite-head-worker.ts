// Worker-thread entry of the SQLite head writer (sqlite-head-writer.ts): its
// own connection to the relay's database file, used for one statement only,
// the rev-gated repo head update. Each request is one transaction (as the
// inline path was), answered with which rows it changed, so the caller sees
// exactly what a call on the main connection would have returned.
//
// Why a thread: every relayed commit moves its repo's head, and the write
// costs ~4 µs per row at 2,000 accounts and ~25 µs at 1,000,000 (a random
// table page is dirtied, written to the WAL and checkpointed back), all of it
// synchronous in better-sqlite3. On the main thread that was the largest
// single item after the log write. Here it runs beside the event loop; the
// main connection's own writes wait on this one's lock (busy_timeout) for at
// most one transaction, where before the main thread ran every one of them
// itself.

import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import {
  type HeadWorkerData,
  type HeadWorkerReply,
  type HeadWorkerRequest,
  headRowsWriter,
} from './sqlite-head-writer.ts';

const port = parentPort;
if (!port) throw new Error('sqlite-head-worker.ts must run in a worker thread');
const opts = workerData as HeadWorkerData;
// The main connection created the file, switched it to WAL and migrated it.
const db = new Database(opts.path, { fileMustExist: true });
db.pragma(`busy_timeout = ${opts.busyTimeoutMs}`);
db.pragma(`synchronous = ${opts.synchronous}`);
const writeAll = headRowsWriter(db);

port.on('message', (req: HeadWorkerRequest | 'close') => {
  if (req === 'close') {
    db.close();
    port.close();
    return;
  }
  let reply: HeadWorkerReply;
  try {
    reply = { id: req.id, written: writeAll(req.rows) };
  } catch (err) {
    reply = { id: req.id, error: err instanceof Error ? err.message : String(err) };
  }
  port.postMessage(reply);
});
