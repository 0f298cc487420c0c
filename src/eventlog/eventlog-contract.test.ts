// The shared EventLog contract (test/support/eventlog-contract.ts) run against the file log;
// nats-log.test.ts runs the same suite against JetStream.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runEventLogContract } from '../../test/support/eventlog-contract.ts';
import { openEventLog } from './file-log.ts';

const dirs: string[] = [];
runEventLogContract({
  name: 'file',
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'eventlog-contract-'));
    dirs.push(dir);
    const opts = { dir, fsync: false, gcIntervalMs: 0, segmentEvents: 50 };
    return { log: await openEventLog(opts), reopen: () => openEventLog(opts) };
  },
  async cleanup() {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  },
});
