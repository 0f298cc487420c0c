// The event log on NATS JetStream (issue 17): the shared, replicated log that
// lets several relay processes (ingest and fan-out roles) serve one firehose.
// Same EventLog contract as the embedded file log (types.ts), different
// mechanism:
//
// - Sequencing. One JetStream stream holds every event; the relay seq IS the
//   stream sequence, assigned by the NATS server (one sequencer for the whole
//   cluster, no coordination of our own). A writer does not know the seq when
//   it builds a frame, so `append` calls the frame function with a
//   *provisional* seq (PROVISIONAL_BASE + a local counter) and readers rewrite
//   the frame's seq to the stream sequence (rewriteSeq) when they decode it.
//   The returned promise resolves with the real seqs.
// - Durability. A publish is durable once JetStream acks it (stored per the
//   stream's storage and replicas). Writes go out in batches, one batch in
//   flight at a time, so one process's events keep their call order in the
//   stream (each repo's events come from the one process that owns its host).
// - Exactly once. Every message carries a Nats-Msg-Id derived from the
//   upstream event (messageId below); JetStream drops a second publish of the
//   same id inside the stream's duplicate window, so a retried publish or an
//   event re-ingested after a crash or a host moving to another process is
//   stored once. Failed publishes are retried with the same ids.
// - Head and onDurable. Every process runs one ordered consumer (the tail)
//   from the stream's end at open: it advances head() and calls the durable
//   listeners in the same synchronous step, in stream order, for the events of
//   every writer. `append` resolves once the tail has passed its seqs, so
//   "after append resolves, head() >= its seqs" holds as with the file log.
//   Records of this process's own appends carry their EventMeta (matched by a
//   writer id + counter in the record prefix, not by arrival order).
// - Reads. Recent records stay in a bounded in-memory window fed by the tail
//   (live consumers and short replays never touch the server); older reads
//   fetch from the stream through a short-lived ordered consumer.
// - Retention. max_age and max_bytes on the stream; the server applies them.
// - Takedowns. A JetStream KV bucket beside the stream, watched by every
//   process (nats-takedowns.ts): a hide made anywhere applies to every
//   fan-out node's replays.
//
// Stored payload: a 36-byte prefix, then the wire frame (nats-record.ts).
import { randomInt } from 'node:crypto';
import {
  type Consumer,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import { type Logger, silentLogger } from '../log.ts';
import { decodeRecord, encodePayload, messageId, readU32 } from './nats-record.ts';
import { SharedTakedowns } from './nats-takedowns.ts';
import type {
  AppendEvent,
  DurableListener,
  EventLog,
  EventOrigin,
  LogRecord,
  ReadOptions,
  WriteState,
} from './types.ts';

/** Provisional seqs handed to frame functions are at or above this (never a real stream seq in practice). */
export { messageId } from './nats-record.ts';

export const PROVISIONAL_BASE = 2 ** 50;
const NANOS_PER_MS = 1_000_000;

export interface NatsEventLogOptions {
  /** NATS server URL(s), comma separated (nats://host:port). */
  url: string;
  /** Stream name; the subject is `<stream>.events`. Letters, digits, - and _. */
  stream: string;
  /** Drop events older than this (stream max_age); 0: no age limit. Default 72 h. */
  retentionMs?: number;
  /** Drop the oldest events above this many bytes (stream max_bytes); unset: no cap. */
  retentionBytes?: number;
  /** JetStream duplicate window: how long a message id is remembered. Default 2 min. */
  duplicateWindowMs?: number;
  /** Stream replicas (1 for a single NATS server). */
  replicas?: number;
  /** Store the stream in memory instead of files (tests). */
  memoryStorage?: boolean;
  /** Events per publish batch (one batch in flight). Default 1000. */
  batchEvents?: number;
  /** Bytes of recent records kept in memory for reads. Default 64 MiB. */
  recentBytes?: number;
  /** Give up (onFatal) after publishes keep failing this long; 0: never. Default 0. */
  maxWriteFailureMs?: number;
  /** How often stream info (oldest, size) is refreshed. Default 10 s; 0: only on gc(). */
  infoIntervalMs?: number;
  registry?: Registry;
  logger?: Logger;
}

interface Pending {
  event: AppendEvent;
  payload: Uint8Array;
  msgId: string;
  counter: number;
  provisional: number;
  seq?: number;
}

interface Batch {
  items: Pending[];
  resolve: (seqs: number[]) => void;
  reject: (err: Error) => void;
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export async function openNatsEventLog(opts: NatsEventLogOptions): Promise<NatsEventLog> {
  if (!STREAM_NAME.test(opts.stream)) throw new Error(`invalid NATS stream name "${opts.stream}"`);
  const nc = await connect({
    servers: opts.url.split(',').map((s) => s.trim()),
    name: `atrelay-${opts.stream}`,
    maxReconnectAttempts: -1,
  });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const subject = `${opts.stream}.events`;
    const config = {
      name: opts.stream,
      subjects: [subject],
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      storage: opts.memoryStorage ? StorageType.Memory : StorageType.File,
      num_replicas: opts.replicas ?? 1,
      max_age: (opts.retentionMs ?? 72 * 3600_000) * NANOS_PER_MS,
      max_bytes: opts.retentionBytes ?? -1,
      duplicate_window: (opts.duplicateWindowMs ?? 120_000) * NANOS_PER_MS,
      allow_direct: true,
    };
    try {
      await jsm.streams.info(opts.stream);
      await jsm.streams.update(opts.stream, {
        max_age: config.max_age,
        max_bytes: config.max_bytes,
        duplicate_window: config.duplicate_window,
      });
    } catch (err) {
      if (!/not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add(config);
    }
    const kv = await new Kvm(js).create(`${opts.stream}-takedowns`, {
      history: 1,
      replicas: opts.replicas ?? 1,
      storage: opts.memoryStorage ? StorageType.Memory : StorageType.File,
    });
    const log = new NatsEventLog(nc, js, jsm, new SharedTakedowns(kv, opts.logger), subject, opts);
    await log.init();
    return log;
  } catch (err) {
    await nc.close().catch(() => {});
    throw err;
  }
}

export class NatsEventLog implements EventLog {
  private readonly log: Logger;
  private readonly writerId = randomInt(1, 2 ** 31);
  private counter = 0;
  private provisionalNext = PROVISIONAL_BASE;
  /** Own records not yet seen by the tail, by writer counter (for their meta). */
  private readonly ownInFlight = new Map<number, Pending>();
  /** Provisional seq → the pending event, until its real seq is known. */
  private readonly byProvisional = new Map<number, Pending>();
  private queue: Batch[] = [];
  private writing = false;
  private closed = false;
  private headSeq = 0;
  private lastAckedSeq = 0;
  private firstSeq = 1;
  private bytes = 0;
  private tailStarted = false;
  private tailConsumer?: Consumer;
  private tailBatch: LogRecord[] = [];
  private tailFlushScheduled = false;
  private readonly headWaiters: { seq: number; resolve: () => void }[] = [];
  private readonly listeners = new Set<DurableListener>();
  private readonly recent: LogRecord[] = [];
  private recentStart = 0;
  private recentBytes = 0;
  private writeState: WriteState = { failing: false };
  private readonly writeStateListeners = new Set<(s: WriteState) => void>();
  private readonly fatalListeners = new Set<(err: Error) => void>();
  private infoTimer?: NodeJS.Timeout;
  private tailDone?: Promise<void>;
  private readonly duplicates?: Counter;
  private readonly published?: Counter;
  private readonly publishErrors?: Counter;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly takedowns: SharedTakedowns,
    private readonly subject: string,
    private readonly opts: NatsEventLogOptions,
  ) {
    this.log = (opts.logger ?? silentLogger).child({ module: 'eventlog-nats' });
    const registry = opts.registry;
    if (registry) {
      this.published = new Counter({
        name: 'relay_eventlog_nats_published_total',
        help: 'Events published to the JetStream stream and acknowledged (duplicates included)',
        registers: [registry],
      });
      this.duplicates = new Counter({
        name: 'relay_eventlog_nats_duplicates_total',
        help: 'Publishes JetStream recognised as duplicates by message id (stored once)',
        registers: [registry],
      });
      this.publishErrors = new Counter({
        name: 'relay_eventlog_nats_publish_errors_total',
        help: 'Publish batches that failed and were retried with the same message ids',
        registers: [registry],
      });
      const self = this;
      new Gauge({
        name: 'relay_eventlog_head_seq',
        help: 'Highest stream sequence this process has read from the shared log (its durable head)',
        registers: [registry],
        collect() {
          this.set(self.headSeq);
        },
      });
    }
  }

  /** Reads the stream state and takedowns, starts the tail at the stream's end. */
  async init(): Promise<void> {
    const info = await this.jsm.streams.info(this.opts.stream);
    this.headSeq = info.state.last_seq;
    this.firstSeq = info.state.messages > 0 ? info.state.first_seq : this.headSeq + 1;
    this.bytes = info.state.bytes;
    await this.takedowns.load();
    this.tailConsumer = await this.js.consumers.get(this.opts.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.headSeq + 1,
    });
    const messages = await this.tailConsumer.consume({ max_messages: 2000 });
    this.tailStarted = true;
    this.tailDone = (async () => {
      for await (const m of messages) {
        if (this.closed) break;
        this.onTailMessage(m);
      }
      if (!this.closed) throw new Error('the stream consumer ended');
    })().catch((err: Error) => {
      if (this.closed) return;
      // without the tail, head() and the listeners stop: give up (the process restarts)
      this.log.error({ err }, 'event log tail stopped');
      for (const l of this.fatalListeners) l(err);
    });
    const every = this.opts.infoIntervalMs ?? 10_000;
    if (every > 0) {
      this.infoTimer = setInterval(() => void this.refreshInfo().catch(() => {}), every);
      this.infoTimer.unref();
    }
  }

  private async refreshInfo(): Promise<void> {
    const info = await this.jsm.streams.info(this.opts.stream);
    this.bytes = info.state.bytes;
    this.firstSeq = info.state.messages > 0 ? info.state.first_seq : info.state.last_seq + 1;
  }

  // ---- writing ----

  append(events: readonly AppendEvent[]): Promise<number[]> {
    if (this.closed) return Promise.reject(new Error('event log closed'));
    if (events.length === 0) return Promise.resolve([]);
    const items: Pending[] = [];
    let lastOrigin: EventOrigin | undefined;
    let inOrigin = 0;
    for (const event of events) {
      const o = event.origin;
      if (o && lastOrigin && o.hostId === lastOrigin.hostId && o.seq === lastOrigin.seq) inOrigin++;
      else inOrigin = 0;
      lastOrigin = o;
      const counter = ++this.counter >>> 0;
      const provisional = this.provisionalNext++;
      const frame = typeof event.frame === 'function' ? event.frame(provisional) : event.frame;
      const item: Pending = {
        event,
        payload: encodePayload(event, frame, this.writerId, counter),
        msgId: messageId(event, inOrigin) ?? `w:${this.writerId}:${counter}:${provisional}`,
        counter,
        provisional,
      };
      items.push(item);
      this.byProvisional.set(provisional, item);
    }
    return new Promise<number[]>((resolve, reject) => {
      this.queue.push({ items, resolve, reject });
      if (!this.writing) void this.writeLoop();
    });
  }

  private async writeLoop(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        // one group in flight: every queued batch up to batchEvents
        const limit = this.opts.batchEvents ?? 1000;
        const group: Batch[] = [];
        let n = 0;
        while (this.queue.length > 0 && (n === 0 || n + this.queue[0].items.length <= limit)) {
          const b = this.queue.shift() as Batch;
          group.push(b);
          n += b.items.length;
        }
        if (this.closed) {
          for (const b of group) b.reject(new Error('event log closed'));
          continue;
        }
        const ok = await this.publishGroup(group.flatMap((b) => b.items));
        for (const b of group) {
          for (const it of b.items) this.byProvisional.delete(it.provisional);
          if (!ok) b.reject(new Error('event log closed before the events were stored'));
        }
        if (!ok) continue;
        const max = Math.max(...group.flatMap((b) => b.items.map((i) => i.seq as number)));
        await this.waitHead(max);
        for (const b of group) b.resolve(b.items.map((i) => i.seq as number));
      }
    } finally {
      this.writing = false;
    }
  }

  /** Publishes in order and waits for every ack; retries the unacked rest with the same ids. */
  private async publishGroup(items: Pending[]): Promise<boolean> {
    let from = 0;
    let delay = 50;
    for (;;) {
      for (const it of items.slice(from)) if (it.seq === undefined) this.ownInFlight.set(it.counter, it);
      const acks = items.slice(from).map((it) =>
        this.js.publish(this.subject, it.payload, { msgID: it.msgId, timeout: 10_000 }).then((ack) => {
          it.seq = ack.seq;
          if (ack.seq > this.lastAckedSeq) this.lastAckedSeq = ack.seq;
          this.published?.inc();
          if (ack.duplicate) {
            this.duplicates?.inc();
            this.ownInFlight.delete(it.counter);
          }
        }),
      );
      const results = await Promise.allSettled(acks);
      const failed = results.findIndex((r) => r.status === 'rejected');
      if (failed < 0) {
        if (this.writeState.failing) this.setWriteState({ failing: false });
        return true;
      }
      const err = (results[failed] as PromiseRejectedResult).reason as Error;
      this.publishErrors?.inc();
      if (this.closed) return false;
      const since = this.writeState.since ?? Date.now();
      this.setWriteState({ failing: true, error: err, since });
      this.log.warn({ err, pending: items.length - from - failed }, 'event log publish failed; retrying');
      const max = this.opts.maxWriteFailureMs ?? 0;
      if (max > 0 && Date.now() - since > max) {
        for (const l of this.fatalListeners) l(err);
        this.closed = true;
        return false;
      }
      from += failed;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 2000);
    }
  }

  private waitHead(seq: number): Promise<void> {
    if (this.headSeq >= seq || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.headWaiters.push({ seq, resolve }));
  }

  private setWriteState(s: WriteState): void {
    this.writeState = s;
    for (const l of this.writeStateListeners) l(s);
  }

  // ---- the tail ----

  private onTailMessage(m: JsMsg): void {
    const rec = decodeRecord(m.data, m.seq, Math.floor(m.info.timestampNanos / NANOS_PER_MS));
    if (!rec) {
      this.log.warn({ seq: m.seq }, 'skipping a stream message that is not an event record');
      return;
    }
    const writer = readU32(m.data, 28);
    if (writer === this.writerId) {
      const own = this.ownInFlight.get(readU32(m.data, 32));
      if (own) {
        this.ownInFlight.delete(own.counter);
        if (own.event.meta) rec.meta = own.event.meta;
      }
    }
    this.tailBatch.push(rec);
    if (!this.tailFlushScheduled) {
      this.tailFlushScheduled = true;
      setImmediate(() => this.flushTail());
    }
  }

  /** Head, the recent window and the durable listeners move together (types.ts). */
  private flushTail(): void {
    this.tailFlushScheduled = false;
    const batch = this.tailBatch;
    if (batch.length === 0) return;
    this.tailBatch = [];
    this.headSeq = batch[batch.length - 1].seq;
    if (this.firstSeq > batch[0].seq) this.firstSeq = batch[0].seq;
    this.remember(batch);
    for (const l of this.listeners) {
      try {
        l(batch);
      } catch (err) {
        this.log.error({ err }, 'durable listener failed');
      }
    }
    if (this.headWaiters.length > 0) {
      for (let i = this.headWaiters.length - 1; i >= 0; i--) {
        const w = this.headWaiters[i];
        if (w.seq <= this.headSeq) {
          this.headWaiters.splice(i, 1);
          w.resolve();
        }
      }
    }
  }

  private remember(batch: readonly LogRecord[]): void {
    const cap = this.opts.recentBytes ?? 64 * 1024 * 1024;
    for (const r of batch) {
      const { meta: _meta, ...plain } = r;
      this.recent.push(plain);
      this.recentBytes += r.frame.byteLength;
    }
    while (this.recentBytes > cap && this.recentStart < this.recent.length - 1) {
      this.recentBytes -= this.recent[this.recentStart].frame.byteLength;
      this.recentStart++;
    }
    if (this.recentStart > 4096 && this.recentStart * 2 > this.recent.length) {
      this.recent.splice(0, this.recentStart);
      this.recentStart = 0;
    }
  }

  // ---- reading ----

  async readFrom(after: number, opts: ReadOptions = {}): Promise<LogRecord[]> {
    const until = Math.min(opts.untilSeq ?? this.headSeq, this.headSeq);
    const maxBytes = opts.maxBytes ?? 1024 * 1024;
    let cursor = Math.max(after, this.firstSeq - 1);
    for (;;) {
      if (cursor >= until) return [];
      const page = await this.readPage(cursor, until, maxBytes);
      if (page.length === 0) return [];
      const visible = opts.includeTakenDown ? page : page.filter((r) => !this.isTakenDown(r.uid, r.seq));
      if (visible.length > 0) return visible;
      cursor = page[page.length - 1].seq;
    }
  }

  private async readPage(after: number, until: number, maxBytes: number): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    let bytes = 0;
    const recentFirst = this.recentStart < this.recent.length ? this.recent[this.recentStart].seq : Infinity;
    if (after + 1 >= recentFirst) {
      let i = this.recentStart + lowerBound(this.recent, this.recentStart, after + 1);
      for (; i < this.recent.length; i++) {
        const r = this.recent[i];
        if (r.seq > until || (out.length > 0 && bytes + r.frame.byteLength > maxBytes)) break;
        out.push(r);
        bytes += r.frame.byteLength;
      }
      return out;
    }
    // older than the window: a short-lived ordered consumer from after + 1
    const c = await this.js.consumers.get(this.opts.stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: after + 1,
    });
    const want = Math.min(until - after, 1000);
    const it = await c.fetch({ max_messages: want, expires: 5000 });
    for await (const m of it) {
      if (m.seq > until) break;
      const rec = decodeRecord(m.data, m.seq, Math.floor(m.info.timestampNanos / NANOS_PER_MS));
      if (rec) {
        if (out.length > 0 && bytes + rec.frame.byteLength > maxBytes) break;
        out.push(rec);
        bytes += rec.frame.byteLength;
      }
      if (m.seq >= until || out.length >= want) break;
    }
    it.stop();
    await c.delete().catch(() => {});
    if (out.length > 0 && out[0].seq > after + 1 && out[0].seq > this.firstSeq) this.firstSeq = out[0].seq;
    return out;
  }

  head(): number {
    return this.headSeq;
  }

  oldest(): number {
    return Math.min(this.firstSeq, this.headSeq + 1);
  }

  // ---- takedowns ----

  async setTakedown(uid: number, on: boolean, upToSeq?: number): Promise<void> {
    if (!on) {
      await this.takedowns.show(uid);
      return;
    }
    let upTo = upToSeq ?? Math.max(this.headSeq, this.lastAckedSeq);
    const pending = upToSeq !== undefined && upToSeq + 1 >= PROVISIONAL_BASE;
    if (pending) {
      // the hide is "up to just before this (not yet stored) event": hide what is
      // out now, then the exact bound once the stream sequence is known
      this.takedowns.hideLocally(uid, this.headSeq);
      const item = this.byProvisional.get(upToSeq + 1);
      upTo = item ? (await this.seqOf(item)) - 1 : this.headSeq;
    }
    await this.takedowns.hide(uid, upTo);
  }

  private async seqOf(item: Pending): Promise<number> {
    while (item.seq === undefined) {
      if (this.closed) throw new Error('event log closed');
      await new Promise((r) => setTimeout(r, 1));
    }
    return item.seq;
  }

  isTakenDown(uid: number, seq: number): boolean {
    return this.takedowns.hides(uid, seq);
  }

  // ---- the rest of the contract ----

  onDurable(listener: DurableListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Retention runs on the server; this refreshes what oldest() and sizeBytes() report. */
  async gc(): Promise<number> {
    if (!this.closed) await this.refreshInfo();
    return 0;
  }

  sizeBytes(): number {
    return this.bytes;
  }

  getWriteState(): WriteState {
    return this.writeState;
  }

  onWriteState(listener: (state: WriteState) => void): () => void {
    this.writeStateListeners.add(listener);
    return () => this.writeStateListeners.delete(listener);
  }

  onFatal(listener: (err: Error) => void): () => void {
    this.fatalListeners.add(listener);
    return () => this.fatalListeners.delete(listener);
  }

  /** Waits for queued publishes, then stops the tail and disconnects. */
  async close(): Promise<void> {
    if (this.closed && !this.tailStarted) return;
    while (this.writing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 2));
    this.closed = true;
    this.tailStarted = false;
    if (this.infoTimer) clearInterval(this.infoTimer);
    this.takedowns.stop();
    for (const w of this.headWaiters.splice(0)) w.resolve();
    await this.nc.drain().catch(() => this.nc.close());
    await Promise.all([this.tailDone, this.takedowns.done()]);
  }
}

function lowerBound(recs: readonly LogRecord[], start: number, seq: number): number {
  let lo = 0;
  let hi = recs.length - start;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (recs[start + mid].seq < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
