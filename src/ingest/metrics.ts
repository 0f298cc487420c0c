// Prometheus metrics of the ingest stage. They register on the relay's
// Registry when one is given, otherwise on a private one (so the code path is
// the same in tests). The per-frame counts (frames and bytes by host, frames
// by type) are plain numbers the subscriber adds to, moved into the
// prom-client counters when the registry is read (their collect hooks): a
// prom-client increment costs ~0.2 µs, three per frame on the main thread.
import { Counter, Gauge, Registry } from 'prom-client';

/** A host's frame and byte counts since the process started (HostSubscriber adds to them). */
export interface HostTally {
  frames: number;
  bytes: number;
}

export type DropReason =
  | 'not-binary'
  | 'too-large'
  | 'malformed'
  | 'bad-header'
  | 'too-deep'
  | 'too-many-items'
  | 'key-too-long'
  | 'bad-did'
  | 'no-seq'
  | 'seq-not-increasing'
  | 'deprecated-type'
  | 'unknown-type'
  | 'repeated-info'
  | 'error-frame';

/** Why ingest closed a host's connection itself (relay_ingest_disconnects_total{reason}). */
export type DisconnectReason =
  /** The host used up its bad-frame allowance (RELAY_HOST_BAD_FRAMES_PER_MINUTE). */
  | 'bad-frames'
  /** The host sent an error frame (other than FutureCursor). */
  | 'error-frame'
  | 'future-cursor'
  /** A message over 5 MB (closed by `ws`, code 1009). */
  | 'too-large'
  /** More frames parsed from one socket read than the queue holds. */
  | 'queue-full'
  /** No frame and no pong for the liveness limit. */
  | 'liveness'
  /** The frame sink refused a frame (shutting down or broken). */
  | 'sink-refused';

export class IngestMetrics {
  readonly registry: Registry;
  readonly framesByHost: Counter<'host'>;
  readonly framesByType: Counter<'type'>;
  readonly bytesByHost: Counter<'host'>;
  readonly dropped: Counter<'reason'>;
  /** Frames by type label, and what of them the counter has already been given. */
  private readonly byType = new Map<string, { n: number; flushed: number }>();
  private readonly byHost = new Map<string, HostTally & { flushedFrames: number; flushedBytes: number }>();

  /** Counts a frame of a type label (a label is one of the few frame types, so the map stays small). */
  frameOfType(label: string): void {
    const t = this.byType.get(label);
    if (t === undefined) this.byType.set(label, { n: 1, flushed: 0 });
    else t.n++;
  }

  /** The tally a host's subscriber counts its frames and bytes in (one per host until forgetHost). */
  hostTally(hostname: string): HostTally {
    let t = this.byHost.get(hostname);
    if (t === undefined) {
      t = { frames: 0, bytes: 0, flushedFrames: 0, flushedBytes: 0 };
      this.byHost.set(hostname, t);
    }
    return t;
  }

  /** Adds what was counted since the last read to the Prometheus counters. */
  private flushTallies(): void {
    for (const [type, t] of this.byType) {
      if (t.n > t.flushed) this.framesByType.inc({ type }, t.n - t.flushed);
      t.flushed = t.n;
    }
    for (const [host, t] of this.byHost) {
      if (t.frames > t.flushedFrames) this.framesByHost.inc({ host }, t.frames - t.flushedFrames);
      if (t.bytes > t.flushedBytes) this.bytesByHost.inc({ host }, t.bytes - t.flushedBytes);
      t.flushedFrames = t.frames;
      t.flushedBytes = t.bytes;
    }
  }

  /** Upstream events received again (after a crash or reconnect) that the log shows already relayed. */
  readonly alreadyRelayed: Counter;
  readonly disconnects: Counter<'reason'>;
  readonly frameBytesInFlight: Gauge;
  readonly frameBudgetFills: Counter;
  readonly reconnects: Counter;
  /** Throttled accounts released for a resync after a limit raise or trust (throttle-recovery.ts). */
  readonly throttleReleased: Counter;
  /** Host status changes made by ingest (offline, idle, active again), by new status. */
  readonly statusChanges: Counter<'status'>;
  readonly throttled: Counter;
  readonly connected: Gauge;
  readonly hosts: Gauge<'status'>;

  constructor(
    registry?: Registry,
    hostCounts?: () => Promise<Record<string, number>>,
    cursorWriteWaiting?: () => boolean,
  ) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    const metrics = this;
    this.framesByHost = new Counter({
      name: 'relay_ingest_frames_total',
      help: 'Frames received from upstream hosts, by host',
      labelNames: ['host'],
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.framesByType = new Counter({
      name: 'relay_ingest_frames_by_type_total',
      help: 'Frames received from upstream hosts, by message type',
      labelNames: ['type'],
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.bytesByHost = new Counter({
      name: 'relay_ingest_bytes_total',
      help: 'Bytes of frames received from upstream hosts, by host',
      labelNames: ['host'],
      registers,
      collect() {
        metrics.flushTallies();
      },
    });
    this.dropped = new Counter({
      name: 'relay_ingest_dropped_total',
      help: 'Upstream frames dropped by ingest, by reason',
      labelNames: ['reason'],
      registers,
    });
    this.alreadyRelayed = new Counter({
      name: 'relay_ingest_already_relayed_total',
      help: 'Upstream events received again (after a crash or a refused frame) that the event log shows already relayed; skipped',
      registers,
    });
    this.disconnects = new Counter({
      name: 'relay_ingest_disconnects_total',
      help: 'Host connections ingest closed itself, by reason (bad-frames, error-frame, too-large, queue-full, ...)',
      labelNames: ['reason'],
      registers,
    });
    this.frameBytesInFlight = new Gauge({
      name: 'relay_ingest_frame_bytes_in_flight',
      help: 'Bytes of upstream frames held by all hosts (queued or being validated), bounded by RELAY_INGEST_FRAME_BUDGET_MB',
      registers,
    });
    this.frameBudgetFills = new Counter({
      name: 'relay_ingest_frame_budget_fills_total',
      help: 'Times the frame byte budget filled up and every host socket paused',
      registers,
    });
    this.throttleReleased = new Counter({
      name: 'relay_throttle_released_accounts_total',
      help: 'Throttled accounts let back in (desynchronized, resynced on their next event) after a host limit raise or trust',
      registers,
    });
    this.statusChanges = new Counter({
      name: 'relay_host_status_changes_total',
      help: 'Host status changes made by ingest (offline after failures, idle on FutureCursor, active on revival), by new status',
      labelNames: ['status'],
      registers,
    });
    this.reconnects = new Counter({
      name: 'relay_ingest_reconnects_total',
      help: 'Host subscription (re)connection attempts after the first',
      registers,
    });
    this.throttled = new Counter({
      name: 'relay_ingest_rate_limited_total',
      help: 'Times a host hit its event rate limit and its socket was paused',
      registers,
    });
    this.connected = new Gauge({
      name: 'relay_ingest_hosts_connected',
      help: 'Host subscriptions currently open',
      registers,
    });
    new Gauge({
      name: 'relay_ingest_cursor_write_waiting_for_heads',
      help: '1 while a batch of host cursors waits for the repo heads of the frames it passes to be written (validate/head-writer.ts); stuck at 1 means head writes are stalled',
      registers,
      collect() {
        this.set(cursorWriteWaiting?.() ? 1 : 0);
      },
    });
    const counts = hostCounts;
    this.hosts = new Gauge({
      name: 'relay_ingest_hosts',
      help: 'Hosts in the metadata store, by status',
      labelNames: ['status'],
      registers,
      async collect() {
        if (!counts) return;
        try {
          const c = await counts();
          for (const [status, n] of Object.entries(c)) this.set({ status }, n);
        } catch {
          // store closed or busy: keep the last values
        }
      },
    });
  }

  /** Removes a host's label children (host removed or blocked), so its series do not linger. */
  forgetHost(hostname: string): void {
    this.byHost.delete(hostname);
    this.framesByHost.remove({ host: hostname });
    this.bytesByHost.remove({ host: hostname });
  }
}
