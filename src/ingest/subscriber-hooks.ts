// What host subscribers write to the metadata store (their SubscriberHooks,
// host-subscriber.ts): cursor advances (through the store's coalescer, so
// they are batched), the first cursor of a host read live (written at once),
// the consecutive-failure count, and the status changes a subscriber causes:
// offline after RELAY_HOST_MAX_FAILURES failures in a row, idle on
// FutureCursor (each counted in relay_host_status_changes_total).
//
// The failure and status writes of each host are tracked until they settle,
// so an operator cursor reset (host-manager.ts) can wait for them before it
// sets the host's status: a late "offline" must not land after the reset
// made the host active. `hookWrites` holds at most one entry per host.
import type { Logger } from '../log.ts';
import type { HostStatus, MetadataStore } from '../store/metadata-store.ts';
import type { HostSubscriber, SubscriberHooks } from './host-subscriber.ts';
import type { IngestConfig } from './ingest-config.ts';
import type { IngestMetrics } from './metrics.ts';

export interface SubscriberStoreHooksOptions {
  store: MetadataStore;
  metrics: IngestMetrics;
  log: Logger;
  /** hostMaxFailures (RELAY_HOST_MAX_FAILURES): consecutive failures before a host is marked offline. */
  config: Pick<IngestConfig, 'hostMaxFailures'>;
}

function noop(): void {}

export class SubscriberStoreHooks implements SubscriberHooks {
  /** Status writes started by subscriber hooks (failure count, offline, idle), by host id. */
  private readonly hookWrites = new Map<number, Promise<unknown>>();

  constructor(private readonly o: SubscriberStoreHooksOptions) {}

  saveCursor(hostId: number, seq: number): void {
    this.o.store.updateHostCursor(hostId, seq);
  }

  succeeded(sub: HostSubscriber): void {
    this.o.store.resetHostFailures(sub.hostId).catch((err: unknown) => {
      this.o.log.warn({ err, host: sub.hostname }, 'could not reset host failures');
    });
  }

  failed(sub: HostSubscriber, reason: string): Promise<boolean> {
    return this.trackHookWrite(sub.hostId, this.onFailure(sub, reason));
  }

  futureCursor(sub: HostSubscriber): void {
    void this.trackHookWrite(sub.hostId, this.setStatus(sub.hostId, 'idle'));
  }

  async persistCursor(hostId: number, seq: number): Promise<void> {
    this.o.store.updateHostCursor(hostId, seq);
    await this.o.store.flushCursors();
  }

  /** The host's hook writes in progress (settles, never rejects); undefined when none. */
  writesOf(hostId: number): Promise<unknown> | undefined {
    return this.hookWrites.get(hostId);
  }

  private async onFailure(sub: HostSubscriber, reason: string): Promise<boolean> {
    let failures: number;
    try {
      failures = await this.o.store.recordHostFailure(sub.hostId);
    } catch (err) {
      this.o.log.warn({ err, host: sub.hostname }, 'could not record host failure');
      failures = sub.failures;
    }
    sub.failures = failures;
    if (failures >= this.o.config.hostMaxFailures) {
      this.o.log.warn({ host: sub.hostname, failures, reason }, 'host offline after consecutive failures');
      await this.setStatus(sub.hostId, 'offline');
      return false;
    }
    this.o.log.debug({ host: sub.hostname, failures, reason }, 'host connection failed');
    return true;
  }

  /** Remembers a hook's store write so a cursor reset can wait for it before setting the status. */
  private trackHookWrite<T>(hostId: number, write: Promise<T>): Promise<T> {
    const tail = Promise.all([this.hookWrites.get(hostId), write]).then(noop, noop);
    this.hookWrites.set(hostId, tail);
    tail.then(() => {
      if (this.hookWrites.get(hostId) === tail) this.hookWrites.delete(hostId);
    });
    return write;
  }

  private async setStatus(hostId: number, status: HostStatus): Promise<void> {
    try {
      await this.o.store.setHostStatus(hostId, status);
      this.o.metrics.statusChanges.labels(status).inc();
    } catch (err) {
      this.o.log.warn({ err, hostId, status }, 'could not set host status');
    }
  }
}
