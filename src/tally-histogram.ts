// A Prometheus histogram for values observed on the hot path, once or more
// per event on the main thread. prom-client's Histogram checks and hashes
// the label set on every observe (its child from `labels()` too) and looks
// its bucket up by string key: ~0.7 µs an observation, ~1.5 % of the main
// thread's profile under the end-to-end benchmark with two per event. Here a
// child is a plain object with a Float64Array of bucket counts: observe is a
// short scan of the bounds and two additions. The registry reads it like any
// prom-client metric (same exposition: cumulative `_bucket{le}` lines, `_sum`,
// `_count`), so scrapes, dashboards and tests see no difference.
//
// Only what the relay uses: one label (or none), fixed buckets, observe.
import type { Registry } from 'prom-client';

/** One line of the exposition, as prom-client's metrics give them to the registry. */
export interface TallyValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
  /** Bucket lines carry `exemplar: null`, the others `undefined`, as prom-client's do. */
  exemplar: null | undefined;
}

/** What the registry reads from a metric (the shape of prom-client's own `get()`). */
export interface TallySnapshot {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: TallyValue[];
}

export interface TallyHistogramOptions<L extends string> {
  name: string;
  help: string;
  /** At most one label. */
  labelNames?: readonly L[];
  /** Upper bounds, ascending; +Inf is added. */
  buckets: readonly number[];
  registers?: readonly Registry[];
}

export interface TallyChild {
  observe(value: number): void;
}

class Tally implements TallyChild {
  /** Non-cumulative counts per bucket; the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) return; // a clock glitch is not worth a throw on the hot path
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.counts[i]++;
    this.sum += value;
    this.count++;
  }
}

export class TallyHistogram<L extends string = string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly label: L | undefined;
  private readonly bounds: readonly number[];
  private readonly children = new Map<string, Tally>();

  constructor(opts: TallyHistogramOptions<L>) {
    if ((opts.labelNames?.length ?? 0) > 1) throw new Error('TallyHistogram takes at most one label');
    for (let i = 1; i < opts.buckets.length; i++) {
      if (!(opts.buckets[i] > opts.buckets[i - 1])) throw new Error('TallyHistogram buckets must ascend');
    }
    this.name = opts.name;
    this.help = opts.help;
    this.label = opts.labelNames?.[0];
    this.bounds = [...opts.buckets];
    // the registry only calls get() (and reads name, help, type); its types list prom-client's own classes
    for (const r of opts.registers ?? [])
      r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The child for one label value (kept: look it up once and hold it). */
  labels(value = ''): TallyChild {
    let c = this.children.get(value);
    if (c === undefined) {
      c = new Tally(this.bounds);
      this.children.set(value, c);
    }
    return c;
  }

  observe(value: number): void {
    this.labels().observe(value);
  }

  reset(): void {
    this.children.clear();
  }

  /** What prom-client's registry reads (the same shape its Histogram gives). */
  get(): TallySnapshot {
    const values: TallyValue[] = [];
    for (const [labelValue, c] of this.children) {
      const labels: Record<string, string | number> =
        this.label === undefined ? {} : { [this.label]: labelValue };
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += c.counts[i];
        values.push({
          labels: { le: i < this.bounds.length ? this.bounds[i] : '+Inf', ...labels },
          value: cumulative,
          metricName: `${this.name}_bucket`,
          exemplar: null,
        });
      }
      values.push({ labels, value: c.sum, metricName: `${this.name}_sum`, exemplar: undefined });
      values.push({ labels, value: c.count, metricName: `${this.name}_count`, exemplar: undefined });
    }
    return { name: this.name, help: this.help, type: 'histogram', values, aggregator: 'sum' };
  }
}
