// The committed-event stream: the one fan-out point after the durable
// append (issue 14). Everything that follows what the relay published —
// the firehose, the collection index, metrics, account hooks — subscribes
// here, and nothing else listens to the log. Each batch arrives in relay-seq
// order, in the same synchronous step that advanced the log's durable head
// (types.ts), which is what the firehose's gapless cutover relies on; the
// records of this process's own appends carry what validation learned about
// them (EventMeta: DID, rev, the commit's effect on collections, an
// account's status), so no subscriber decodes a frame again.
//
// A subscriber that throws is logged and counted and the others still run:
// derived state must never hold up the stream. Subscribers are called in the
// order they subscribed; the relay subscribes the firehose first.
import { Counter, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../log.ts';
import type { EventLog, LogRecord } from './types.ts';

export type CommittedEvent = LogRecord;
export type CommittedListener = (events: readonly CommittedEvent[]) => void;

interface Subscriber {
  name: string;
  listener: CommittedListener;
}

const TYPE_OF_KIND: Record<number, string> = { 1: '#commit', 2: '#sync', 3: '#identity', 4: '#account' };

export class CommittedStream {
  private readonly subscribers: Subscriber[] = [];
  private readonly log: Logger;
  private readonly events?: Counter<'type'>;
  private readonly failures?: Counter<'subscriber'>;
  private readonly unsubscribe: () => void;

  constructor(source: Pick<EventLog, 'onDurable'>, opts: { logger?: Logger; registry?: Registry } = {}) {
    this.log = (opts.logger ?? silentLogger).child({ module: 'committed' });
    if (opts.registry) {
      const tallies = this.tallies;
      const added = new Float64Array(tallies.length);
      this.events = new Counter({
        name: 'relay_committed_events_total',
        help: 'Events made durable in the event log and handed to the committed-event stream, by type',
        labelNames: ['type'],
        registers: [opts.registry],
        // per-event counts are tallied in dispatch and added here when the registry is read
        collect(this: Counter<'type'>) {
          for (let kind = 0; kind < tallies.length; kind++) {
            const d = tallies[kind] - added[kind];
            if (d > 0) this.inc({ type: TYPE_OF_KIND[kind] ?? 'other' }, d);
            added[kind] = tallies[kind];
          }
        },
      });
      this.failures = new Counter({
        name: 'relay_committed_subscriber_errors_total',
        help: 'Errors thrown by a committed-event stream subscriber (the others still ran)',
        labelNames: ['subscriber'],
        registers: [opts.registry],
      });
    }
    this.unsubscribe = source.onDurable((records) => this.dispatch(records));
  }

  /** Adds a subscriber (called for every durable batch from now on); returns an unsubscribe function. */
  subscribe(name: string, listener: CommittedListener): () => void {
    const s: Subscriber = { name, listener };
    this.subscribers.push(s);
    return () => {
      const i = this.subscribers.indexOf(s);
      if (i >= 0) this.subscribers.splice(i, 1);
    };
  }

  /** Stops listening to the log. */
  close(): void {
    this.unsubscribe();
    this.subscribers.length = 0;
  }

  /**
   * Events dispatched per record kind (index 0: a kind with no type name),
   * added to relay_committed_events_total when the registry is read: a
   * prom-client increment per event showed in the main thread's profile.
   */
  private readonly tallies = new Float64Array(8);

  private dispatch(records: readonly CommittedEvent[]): void {
    if (this.events) {
      const tallies = this.tallies;
      for (const r of records) tallies[r.kind > 0 && r.kind < tallies.length ? r.kind : 0]++;
    }
    for (const s of this.subscribers) {
      try {
        s.listener(records);
      } catch (err) {
        this.failures?.inc({ subscriber: s.name });
        this.log.error({ err, subscriber: s.name }, 'committed-event subscriber failed');
      }
    }
  }
}
