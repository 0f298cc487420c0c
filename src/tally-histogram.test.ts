// A TallyHistogram reads out exactly as prom-client's Histogram does for the
// same observations (the exposition text and the JSON the dashboard reads),
// so swapping one for the other changes nothing a scraper can see.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { TallyHistogram } from './tally-histogram.ts';

const buckets = [0.001, 0.01, 0.1, 1];
const observations: [string, number][] = [
  ['#commit', 0.0005],
  ['#commit', 0.001], // on a bound: counted in it (le)
  ['#commit', 0.05],
  ['#commit', 7], // above every bound: +Inf only
  ['#sync', 0.2],
];

describe('TallyHistogram', () => {
  it('exposes what prom-client Histogram exposes', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const opts = { name: 'x_seconds', help: 'x', labelNames: ['type'] as const, buckets };
    const tally = new TallyHistogram({ ...opts, registers: [ours] });
    const reference = new Histogram({ ...opts, labelNames: ['type'], registers: [theirs] });
    const child = tally.labels('#commit');
    for (const [type, v] of observations) {
      (type === '#commit' ? child : tally.labels(type)).observe(v);
      reference.observe({ type }, v);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.deepEqual(await ours.getMetricsAsJSON(), await theirs.getMetricsAsJSON());
    tally.reset();
    reference.reset();
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('works without a label and ignores non-finite values', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const tally = new TallyHistogram({ name: 'y', help: 'y', buckets, registers: [ours] });
    const reference = new Histogram({ name: 'y', help: 'y', buckets, registers: [theirs] });
    for (const v of [0.002, 0.3]) {
      tally.observe(v);
      reference.observe(v);
    }
    tally.observe(Number.NaN);
    assert.equal(await ours.metrics(), await theirs.metrics());
  });

  it('refuses two labels and unsorted buckets', () => {
    assert.throws(() => new TallyHistogram({ name: 'z', help: 'z', labelNames: ['a', 'b'], buckets }));
    assert.throws(() => new TallyHistogram({ name: 'z', help: 'z', buckets: [1, 0.5] }));
  });
});
