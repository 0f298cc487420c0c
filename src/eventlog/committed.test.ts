import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { openTempEventLog } from '../../test/support/temp.ts';
import { CommittedStream } from './committed.ts';
import { EventKind, type LogRecord } from './types.ts';

describe('CommittedStream', () => {
  it('hands every durable batch to each subscriber in order, with its meta, in the step the head moved', async () => {
    const log = await openTempEventLog();
    const registry = new Registry();
    const stream = new CommittedStream(log, { registry });
    const calls: string[] = [];
    const seen: LogRecord[] = [];
    stream.subscribe('first', (recs) => {
      calls.push('first');
      for (const r of recs) assert.ok(r.seq <= log.head(), 'head moved first');
      seen.push(...recs);
    });
    stream.subscribe('broken', () => {
      calls.push('broken');
      throw new Error('subscriber bug');
    });
    const off = stream.subscribe('third', () => calls.push('third'));
    await log.append([
      {
        kind: EventKind.account,
        uid: 1,
        frame: new Uint8Array([1]),
        meta: { type: '#account', did: 'did:plc:a', status: 'takendown' },
      },
      { kind: EventKind.identity, uid: 1, frame: new Uint8Array([2]) },
    ]);
    assert.deepEqual(calls, ['first', 'broken', 'third'], 'a failing subscriber does not stop the others');
    assert.deepEqual(seen[0].meta, { type: '#account', did: 'did:plc:a', status: 'takendown' });
    assert.equal(seen[1].meta, undefined);
    off();
    await log.append([{ kind: EventKind.commit, uid: 1, frame: new Uint8Array([3]) }]);
    assert.deepEqual(calls.slice(3), ['first', 'broken']);
    const text = await registry.metrics();
    assert.match(text, /relay_committed_events_total\{type="#account"\} 1/);
    assert.match(text, /relay_committed_events_total\{type="#commit"\} 1/);
    assert.match(text, /relay_committed_subscriber_errors_total\{subscriber="broken"\} 2/);
    // counted once each, however often the registry is read (tallies are added as deltas)
    await log.append([{ kind: EventKind.commit, uid: 1, frame: new Uint8Array([4]) }]);
    await registry.metrics();
    const again = await registry.metrics();
    assert.match(again, /relay_committed_events_total\{type="#commit"\} 2/);
    assert.match(again, /relay_committed_events_total\{type="#identity"\} 1/);
    // read back from the log: no meta (it is never stored)
    assert.equal((await log.readFrom(0))[0].meta, undefined);
    stream.close();
    await log.close();
  });
});
