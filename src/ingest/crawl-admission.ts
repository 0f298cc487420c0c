// Crawl admission: whether a hostname may be added to the hosts the relay
// reads, for requestCrawl, admin additions and the bootstrap from a seed
// relay. In order: the hostname is validated, requestCrawl may be switched
// off (admin additions bypass that), banned domains and blocked or banned
// hosts are refused, an active host already being read is answered at once,
// describeServer is checked (SSRF-guarded; it refuses relays), an idle or
// offline host is revived, and a new host takes a slot of the daily quota
// (new-host-quota.ts; admin and bootstrap additions do not) before its row is
// created. Refusals throw CrawlRefusedError (host-policy.ts).
//
// Additions are serialised per hostname: concurrent requestCrawls of one host
// share one check and one result. At most `maxPendingAdds` additions run at
// once (issue 12); beyond that requestCrawl answers 503 at once. Subscribing
// the admitted host is the host manager's (the `revive` hook).
import type { Logger } from '../log.ts';
import type { SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import type { Host, MetadataStore } from '../store/metadata-store.ts';
import { checkDescribeServer } from './host-checks.ts';
import { CrawlRefusedError, type CrawlTarget, validateCrawlHostname } from './host-policy.ts';
import type { SubscriberState } from './host-subscriber.ts';
import type { IngestConfig } from './ingest-config.ts';
import type { NewHostQuota } from './new-host-quota.ts';

export interface CrawlOptions {
  /** Admin additions bypass the new-hosts-per-day limit and requestCrawlEnabled. */
  admin?: boolean;
  /** Bootstrap additions bypass the limit too (the seed relay already vetted them). */
  bootstrap?: boolean;
}

export interface CrawlResult {
  host: Host;
  /** true when a new host row was created. */
  created: boolean;
}

export interface CrawlAdmissionOptions {
  store: MetadataStore;
  fetcher: SafeFetcher;
  quota: NewHostQuota;
  log: Logger;
  config: Pick<IngestConfig, 'allowInsecureHosts'>;
  /** describeServer timeout. */
  describeTimeoutMs: number;
  /** Host additions in progress at once; beyond: 503. */
  maxPendingAdds: number;
  /** The state of the host's subscriber; undefined when it has none. */
  subscriberState: (hostId: number) => SubscriberState | undefined;
  /** Starts (or restarts) the subscriber of an admitted active host. */
  revive: (host: Host) => void;
  isStopping: () => boolean;
}

export class CrawlAdmission {
  private readonly pendingAdds = new Map<string, Promise<CrawlResult>>();

  constructor(private readonly o: CrawlAdmissionOptions) {}

  /**
   * requestCrawl / admin add: validates the hostname, refuses banned domains
   * and blocked hosts, checks describeServer (SSRF-guarded), applies the
   * new-hosts-per-day limit to new non-admin hosts, then subscribes. An
   * existing idle/offline host is revived. Throws CrawlRefusedError.
   */
  crawl(hostname: unknown, opts: CrawlOptions = {}): Promise<CrawlResult> {
    if (this.o.isStopping())
      return Promise.reject(new CrawlRefusedError(503, 'Unavailable', 'relay is stopping'));
    let target: CrawlTarget;
    try {
      target = validateCrawlHostname(hostname, { allowInsecure: this.o.config.allowInsecureHosts });
    } catch (err) {
      return Promise.reject(err);
    }
    const running = this.pendingAdds.get(target.hostname);
    if (running) return running;
    if (this.pendingAdds.size >= this.o.maxPendingAdds) {
      return Promise.reject(
        new CrawlRefusedError(503, 'Unavailable', 'too many host additions in progress; try again later'),
      );
    }
    const p = this.doCrawl(target, opts).finally(() => this.pendingAdds.delete(target.hostname));
    this.pendingAdds.set(target.hostname, p);
    return p;
  }

  /** Resolves when every addition in progress has finished (shutdown). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.pendingAdds.values()]);
  }

  private async doCrawl(target: CrawlTarget, opts: CrawlOptions): Promise<CrawlResult> {
    const { store } = this.o;
    const privileged = opts.admin === true || opts.bootstrap === true;
    if (!opts.admin && (await store.getSetting('requestCrawlEnabled')) === false) {
      throw new CrawlRefusedError(400, 'InvalidRequest', 'requestCrawl is disabled on this relay');
    }
    if (await store.isDomainBanned(target.hostname)) {
      throw new CrawlRefusedError(400, 'HostBanned', 'domain is banned');
    }
    const existing = await store.getHostByHostname(target.hostname);
    if (existing && (existing.status === 'blocked' || existing.status === 'banned')) {
      throw new CrawlRefusedError(400, 'HostBanned', `host is ${existing.status}`);
    }
    if (existing && existing.status === 'active' && this.o.subscriberState(existing.id) !== 'inactive') {
      if (this.o.subscriberState(existing.id) === undefined) this.o.revive(existing);
      return { host: existing, created: false };
    }
    await checkDescribeServer(this.o.fetcher, target, this.o.describeTimeoutMs);
    if (existing) {
      await store.resetHostFailures(existing.id);
      const host = (await store.setHostStatus(existing.id, 'active')) ?? existing;
      host.failures = 0;
      this.o.revive(host);
      this.o.log.info({ host: host.hostname, was: existing.status }, 'host revived');
      return { host, created: false };
    }
    const created = privileged
      ? await this.createHost(target)
      : await this.o.quota.withSlot(() => this.createHost(target));
    if (created.created || created.value.status === 'active') this.o.revive(created.value);
    this.o.log.info(
      { host: target.hostname, admin: opts.admin === true, bootstrap: opts.bootstrap === true },
      'host added',
    );
    return { host: created.value, created: created.created };
  }

  private createHost(target: CrawlTarget) {
    return this.o.store.createHost({ hostname: target.hostname, tls: target.tls, status: 'active' });
  }
}
