// Child process for the crash-recovery test: opens the log in argv[2] and
// appends as fast as it can (several batches in flight, random sizes),
// printing "ack <last seq>" for each batch once append() resolved, i.e. once
// the batch is durable. The parent SIGKILLs it at a random moment.
import { openEventLog } from '../../src/eventlog/file-log.ts';

const dir = process.argv[2];
const log = await openEventLog({ dir, segmentEvents: 300, flushIntervalMs: 1, gcIntervalMs: 0 });
process.stdout.write(`open ${log.head()}\n`);

function frameFor(seq: number): Uint8Array {
  const b = Buffer.alloc(24 + (seq % 200), seq % 251);
  b.writeUInt32LE(seq, 0);
  return b;
}

async function writer(): Promise<never> {
  for (;;) {
    const n = 1 + Math.floor(Math.random() * 40);
    const seqs = await log.append(Array.from({ length: n }, () => ({ kind: 1, uid: 1, frame: frameFor })));
    process.stdout.write(`ack ${seqs[seqs.length - 1]}\n`);
  }
}
await Promise.all([writer(), writer(), writer()]);
