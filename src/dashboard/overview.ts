// The Overview page's numbers: rates and quantiles computed on the server
// from the relay's prom-client registry, so the browser never parses the
// /metrics text. Each sample reads only the metrics the page shows (via
// getSingleMetric, not the whole registry) and turns the counters' change
// since the previous sample into per-second rates and the latency
// histogram's change into p50/p99. Samples are taken on demand (when the page
// polls), at most one per `minIntervalMs` whoever asks, and the last
// `maxPoints` computed points are kept in a ring, so memory is fixed and an
// idle relay pays nothing.
import type { Registry } from 'prom-client';

export interface OverviewPoint {
  /** Unix time in milliseconds. */
  t: number;
  /** Upstream frames received per second, by type (#commit, #identity, …). */
  eventsIn: Record<string, number>;
  /** Events published by the relay per second, by type. */
  eventsOut: Record<string, number>;
  /** Event messages written to consumer sockets per second (all consumers). */
  eventsSent: number;
  /** Drops per second, by stage and reason (`ingest:rate-limit`, `validation:bad-signature`, …). */
  drops: Record<string, number>;
  /** Ingest-to-durable latency of the events in this interval, milliseconds (null: none passed). */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  consumers: number;
  eventLogBytes: number;
  eventLogOldestSeq: number;
  eventLogHeadSeq: number;
  /** Identity cache hits (fresh, stale, negative) over lookups in this interval (null: no lookups). */
  identityHitRate: number | null;
  resyncQueue: number;
}

/** The raw numbers of one sample: counter totals and gauge values. */
interface Sample {
  t: number;
  eventsIn: Map<string, number>;
  eventsOut: Map<string, number>;
  eventsSent: number;
  drops: Map<string, number>;
  /** Cumulative latency bucket counts by upper bound, summed over types, sorted by bound. */
  latencyBuckets: [number, number][];
  consumers: number;
  eventLogBytes: number;
  eventLogOldestSeq: number;
  eventLogHeadSeq: number;
  identityHits: number;
  identityLookups: number;
  resyncQueue: number;
  /** Frames received per upstream hostname (for the Hosts table's current rate). */
  framesByHost: Map<string, number>;
}

interface MetricValue {
  value: number;
  labels: Record<string, string | number | undefined>;
  metricName?: string;
}

export interface OverviewSamplerOptions {
  registry: Registry;
  /** Fewest milliseconds between two samples (default 1000). */
  minIntervalMs?: number;
  /** Points kept (default 300: ten minutes at one poll every two seconds). */
  maxPoints?: number;
  now?: () => number;
}

export class OverviewSampler {
  private readonly registry: Registry;
  private readonly minIntervalMs: number;
  private readonly maxPoints: number;
  private readonly now: () => number;
  private readonly points: OverviewPoint[] = [];
  private last?: Sample;
  private previous?: Sample;
  private inFlight?: Promise<void>;

  constructor(opts: OverviewSamplerOptions) {
    this.registry = opts.registry;
    this.minIntervalMs = opts.minIntervalMs ?? 1000;
    this.maxPoints = Math.max(2, opts.maxPoints ?? 300);
    this.now = opts.now ?? Date.now;
  }

  /** Takes a sample unless one is recent; concurrent callers share one. */
  async refresh(): Promise<void> {
    if (this.last && this.now() - this.last.t < this.minIntervalMs) return;
    this.inFlight ??= this.sample().finally(() => {
      this.inFlight = undefined;
    });
    await this.inFlight;
  }

  /** Computed points newer than `sinceMs` (all kept ones by default), oldest first. */
  pointsSince(sinceMs = 0): OverviewPoint[] {
    return this.points.filter((p) => p.t > sinceMs);
  }

  /** Frames per second from each upstream host over the last interval (empty before two samples). */
  hostRates(): Map<string, number> {
    const out = new Map<string, number>();
    const a = this.previous;
    const b = this.last;
    if (!a || !b || b.t <= a.t) return out;
    const dt = (b.t - a.t) / 1000;
    for (const [host, total] of b.framesByHost) {
      out.set(host, Math.max(0, total - (a.framesByHost.get(host) ?? 0)) / dt);
    }
    return out;
  }

  private async sample(): Promise<void> {
    const s = await this.read();
    if (this.last && s.t > this.last.t) {
      this.points.push(computePoint(this.last, s));
      if (this.points.length > this.maxPoints) this.points.splice(0, this.points.length - this.maxPoints);
    }
    this.previous = this.last;
    this.last = s;
  }

  private async values(name: string): Promise<MetricValue[]> {
    const metric = this.registry.getSingleMetric(name);
    if (!metric) return [];
    return (await metric.get()).values as MetricValue[];
  }

  private async read(): Promise<Sample> {
    const byLabel = async (name: string, label: string, prefix = ''): Promise<Map<string, number>> => {
      const out = new Map<string, number>();
      for (const v of await this.values(name)) {
        const key = `${prefix}${String(v.labels[label] ?? 'other')}`;
        out.set(key, (out.get(key) ?? 0) + v.value);
      }
      return out;
    };
    const total = async (name: string): Promise<number> =>
      (await this.values(name)).reduce((sum, v) => sum + v.value, 0);

    const [eventsIn, eventsOut, ingestDrops, validationDrops, framesByHost] = await Promise.all([
      byLabel('relay_ingest_frames_by_type_total', 'type'),
      byLabel('relay_committed_events_total', 'type'),
      byLabel('relay_ingest_dropped_total', 'reason', 'ingest:'),
      byLabel('relay_validation_dropped_total', 'reason', 'validation:'),
      byLabel('relay_ingest_frames_total', 'host'),
    ]);
    const drops = new Map([...ingestDrops, ...validationDrops]);
    const buckets = new Map<number, number>();
    for (const v of await this.values('relay_validation_latency_seconds')) {
      if (!v.metricName?.endsWith('_bucket')) continue;
      const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + v.value);
    }
    let identityHits = 0;
    let identityLookups = 0;
    for (const v of await this.values('relay_identity_cache_lookups_total')) {
      identityLookups += v.value;
      if (v.labels.result !== 'miss') identityHits += v.value;
    }
    return {
      t: this.now(),
      eventsIn,
      eventsOut,
      eventsSent: await total('relay_firehose_events_sent_total'),
      drops,
      latencyBuckets: [...buckets].sort((a, b) => a[0] - b[0]),
      consumers: await total('relay_firehose_consumers'),
      eventLogBytes: await total('relay_eventlog_bytes'),
      eventLogOldestSeq: await total('relay_eventlog_oldest_seq'),
      eventLogHeadSeq: await total('relay_eventlog_head_seq'),
      identityHits,
      identityLookups,
      resyncQueue: await total('relay_validation_resync_queue'),
      framesByHost,
    };
  }
}

function rates(a: Map<string, number>, b: Map<string, number>, dt: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) out[k] = round(Math.max(0, v - (a.get(k) ?? 0)) / dt);
  return out;
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

/**
 * The `q` quantile of the observations between two cumulative histograms
 * (same bounds), interpolated inside the bucket as Prometheus'
 * histogram_quantile does; null when nothing was observed.
 */
export function histogramQuantile(
  before: readonly [number, number][],
  after: readonly [number, number][],
  q: number,
): number | null {
  const prev = new Map(before);
  const deltas = after.map(([le, c]) => [le, Math.max(0, c - (prev.get(le) ?? 0))] as const);
  const count = deltas.at(-1)?.[1] ?? 0;
  if (count <= 0) return null;
  const rank = q * count;
  let lowerBound = 0;
  let lowerCount = 0;
  for (const [le, c] of deltas) {
    if (c >= rank) {
      // The open-ended bucket: answer its lower bound, as Prometheus does.
      if (!Number.isFinite(le)) return lowerBound;
      const inBucket = c - lowerCount;
      const frac = inBucket > 0 ? (rank - lowerCount) / inBucket : 1;
      return lowerBound + (le - lowerBound) * frac;
    }
    lowerBound = le;
    lowerCount = c;
  }
  return lowerBound;
}

function computePoint(a: Sample, b: Sample): OverviewPoint {
  const dt = (b.t - a.t) / 1000;
  const lookups = b.identityLookups - a.identityLookups;
  const p50 = histogramQuantile(a.latencyBuckets, b.latencyBuckets, 0.5);
  const p99 = histogramQuantile(a.latencyBuckets, b.latencyBuckets, 0.99);
  return {
    t: b.t,
    eventsIn: rates(a.eventsIn, b.eventsIn, dt),
    eventsOut: rates(a.eventsOut, b.eventsOut, dt),
    eventsSent: round(Math.max(0, b.eventsSent - a.eventsSent) / dt),
    drops: rates(a.drops, b.drops, dt),
    latencyP50Ms: p50 === null ? null : round(p50 * 1000),
    latencyP99Ms: p99 === null ? null : round(p99 * 1000),
    consumers: b.consumers,
    eventLogBytes: b.eventLogBytes,
    eventLogOldestSeq: b.eventLogOldestSeq,
    eventLogHeadSeq: b.eventLogHeadSeq,
    identityHitRate: lookups > 0 ? round((b.identityHits - a.identityHits) / lookups) : null,
    resyncQueue: b.resyncQueue,
  };
}
