import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IngestMetrics } from './metrics.ts';

const series = async (m: IngestMetrics, name: string) =>
  (await m.registry.getSingleMetric(name)!.get()).values.map((v) => [Object.values(v.labels)[0], v.value]);

describe('IngestMetrics per-frame tallies', () => {
  it('reach the counters when they are read, each count once', async () => {
    const m = new IngestMetrics();
    const a = m.hostTally('a.test');
    assert.equal(m.hostTally('a.test'), a, 'one tally per host');
    a.frames += 3;
    a.bytes += 300;
    m.hostTally('b.test').frames++;
    m.frameOfType('#commit');
    m.frameOfType('#commit');
    m.frameOfType('#identity');
    assert.deepEqual(await series(m, 'relay_ingest_frames_total'), [
      ['a.test', 3],
      ['b.test', 1],
    ]);
    assert.deepEqual(await series(m, 'relay_ingest_bytes_total'), [['a.test', 300]]);
    assert.deepEqual(await series(m, 'relay_ingest_frames_by_type_total'), [
      ['#commit', 2],
      ['#identity', 1],
    ]);
    // read again with nothing new: nothing is added twice
    assert.deepEqual(await series(m, 'relay_ingest_frames_total'), [
      ['a.test', 3],
      ['b.test', 1],
    ]);
    a.frames++;
    m.frameOfType('#commit');
    const text = await m.registry.metrics();
    assert.match(text, /relay_ingest_frames_total\{host="a.test"\} 4/);
    assert.match(text, /relay_ingest_frames_by_type_total\{type="#commit"\} 3/);
  });

  it('forgets a host: its series go, and a new tally starts from zero', async () => {
    const m = new IngestMetrics();
    m.hostTally('gone.test').frames += 5;
    await series(m, 'relay_ingest_frames_total');
    m.forgetHost('gone.test');
    assert.deepEqual(await series(m, 'relay_ingest_frames_total'), []);
    m.hostTally('gone.test').frames++;
    assert.deepEqual(await series(m, 'relay_ingest_frames_total'), [['gone.test', 1]]);
  });
});
