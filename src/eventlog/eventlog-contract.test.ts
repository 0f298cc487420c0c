// The shared EventLog contract (test/support/eventlog-contract.ts) run against the file log;
// nats-log.test.ts runs the same suite against JetStream.
import { runEventLogContract } from '../../test/support/eventlog-contract.ts';
import { openTempEventLog, tempDir } from '../../test/support/temp.ts';

runEventLogContract({
  name: 'file',
  async open() {
    const opts = { dir: tempDir('eventlog-contract-'), segmentEvents: 50 };
    return { log: await openTempEventLog(opts), reopen: () => openTempEventLog(opts) };
  },
  // tempDir's directories go when the process exits.
  async cleanup() {},
});
