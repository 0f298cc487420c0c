// The Overview sampler: rates come from the change of counters between two
// samples, latency quantiles from the change of the histogram's buckets
// (interpolated as Prometheus does), samples are rate-limited and the ring
// of points is bounded; per-host frame rates feed the Hosts table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { histogramQuantile, OverviewSampler } from './overview.ts';

function relayLikeRegistry() {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    framesByType: new Counter({
      name: 'relay_ingest_frames_by_type_total',
      help: 'h',
      labelNames: ['type'],
      registers,
    }),
    framesByHost: new Counter({
      name: 'relay_ingest_frames_total',
      help: 'h',
      labelNames: ['host'],
      registers,
    }),
    committed: new Counter({
      name: 'relay_committed_events_total',
      help: 'h',
      labelNames: ['type'],
      registers,
    }),
    ingestDrops: new Counter({
      name: 'relay_ingest_dropped_total',
      help: 'h',
      labelNames: ['reason'],
      registers,
    }),
    validationDrops: new Counter({
      name: 'relay_validation_dropped_total',
      help: 'h',
      labelNames: ['type', 'reason'],
      registers,
    }),
    latency: new Histogram({
      name: 'relay_validation_latency_seconds',
      help: 'h',
      labelNames: ['type'],
      buckets: [0.001, 0.01, 0.1, 1],
      registers,
    }),
    consumers: new Gauge({ name: 'relay_firehose_consumers', help: 'h', registers }),
    identity: new Counter({
      name: 'relay_identity_cache_lookups_total',
      help: 'h',
      labelNames: ['result'],
      registers,
    }),
  };
}

describe('overview sampler', () => {
  it('histogramQuantile interpolates inside the bucket of the delta', () => {
    const before: [number, number][] = [
      [0.01, 100],
      [0.1, 100],
      [Number.POSITIVE_INFINITY, 100],
    ];
    // 100 new observations: 50 under 10 ms, 50 between 10 and 100 ms.
    const after: [number, number][] = [
      [0.01, 150],
      [0.1, 200],
      [Number.POSITIVE_INFINITY, 200],
    ];
    assert.equal(histogramQuantile(before, after, 0.5), 0.01);
    assert.ok(Math.abs((histogramQuantile(before, after, 0.99) ?? 0) - 0.0982) < 1e-9);
    assert.equal(histogramQuantile(after, after, 0.5), null, 'nothing observed: null');
  });

  it('computes rates, drops, quantiles and hit rate between samples', async () => {
    const m = relayLikeRegistry();
    let now = 10_000;
    const s = new OverviewSampler({ registry: m.registry, minIntervalMs: 1000, now: () => now });
    await s.refresh();
    assert.deepEqual(s.pointsSince(), [], 'one sample makes no rate yet');
    m.framesByType.inc({ type: '#commit' }, 40);
    m.framesByHost.inc({ host: 'pds.test' }, 40);
    m.committed.inc({ type: '#commit' }, 38);
    m.ingestDrops.inc({ reason: 'rate-limit' }, 2);
    m.validationDrops.inc({ type: '#commit', reason: 'bad-signature' }, 4);
    for (let i = 0; i < 10; i++) m.latency.observe({ type: '#commit' }, 0.005);
    m.consumers.set(3);
    m.identity.inc({ result: 'hit' }, 3);
    m.identity.inc({ result: 'miss' }, 1);
    now += 500;
    await s.refresh();
    assert.equal(s.pointsSince().length, 0, 'no second sample within minIntervalMs');
    now += 1500;
    await s.refresh();
    const [p] = s.pointsSince();
    assert.equal(p.t, 12_000);
    assert.deepEqual(p.eventsIn, { '#commit': 20 });
    assert.deepEqual(p.eventsOut, { '#commit': 19 });
    assert.deepEqual(p.drops, { 'ingest:rate-limit': 1, 'validation:bad-signature': 2 });
    assert.ok(p.latencyP50Ms !== null && p.latencyP50Ms > 1 && p.latencyP50Ms <= 10);
    assert.equal(p.consumers, 3);
    assert.equal(p.identityHitRate, 0.75);
    assert.deepEqual([...s.hostRates()], [['pds.test', 20]]);
    assert.deepEqual(s.pointsSince(12_000), []);
  });

  it('keeps at most maxPoints', async () => {
    const m = relayLikeRegistry();
    let now = 0;
    const s = new OverviewSampler({ registry: m.registry, minIntervalMs: 1, maxPoints: 5, now: () => now });
    for (let i = 0; i < 20; i++) {
      now += 10;
      await s.refresh();
    }
    assert.equal(s.pointsSince().length, 5);
    assert.equal(s.pointsSince().at(-1)?.t, 200);
  });
});
