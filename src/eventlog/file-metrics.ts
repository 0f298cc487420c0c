// Prometheus metrics of the embedded event log (file-log.ts): gauges read
// from the log when scraped (head and oldest seq, bytes and segment files on
// disk, whether writes are failing) and the counters and histogram the write
// path updates (events made durable, group commit time, write failures by
// error code).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the scrape-time gauges read from the log. */
export interface FileLogGaugeSource {
  head(): number;
  oldest(): number;
  bytes(): number;
  segments(): number;
  writeFailing(): boolean;
}

/** The metrics the write path updates. */
export interface FileLogMetrics {
  appended: Counter;
  flushSeconds: Histogram;
  writeFailures: Counter<'code'>;
}

export function registerFileLogMetrics(r: Registry, src: FileLogGaugeSource): FileLogMetrics {
  new Gauge({
    name: 'relay_eventlog_head_seq',
    help: 'Highest durable relay seq',
    registers: [r],
    collect() {
      this.set(src.head());
    },
  });
  new Gauge({
    name: 'relay_eventlog_oldest_seq',
    help: 'Lowest relay seq still kept by retention',
    registers: [r],
    collect() {
      this.set(src.oldest());
    },
  });
  new Gauge({
    name: 'relay_eventlog_bytes',
    help: 'Bytes of event log segments on disk',
    registers: [r],
    collect() {
      this.set(src.bytes());
    },
  });
  new Gauge({
    name: 'relay_eventlog_segments',
    help: 'Number of event log segment files',
    registers: [r],
    collect() {
      this.set(src.segments());
    },
  });
  const metrics: FileLogMetrics = {
    appended: new Counter({
      name: 'relay_eventlog_appended_total',
      help: 'Events made durable in the event log',
      registers: [r],
    }),
    flushSeconds: new Histogram({
      name: 'relay_eventlog_flush_seconds',
      help: 'Time to write and sync one group commit',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
      registers: [r],
    }),
    writeFailures: new Counter({
      name: 'relay_eventlog_write_failures_total',
      help: 'Failed event log writes (each is retried), by error code',
      labelNames: ['code'],
      registers: [r],
    }),
  };
  new Gauge({
    name: 'relay_eventlog_write_failing',
    help: '1 while event log writes are failing and being retried (ingest is paused), else 0',
    registers: [r],
    collect() {
      this.set(src.writeFailing() ? 1 : 0);
    },
  });
  return metrics;
}
