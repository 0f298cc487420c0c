// The daily new-host quota of requestCrawl: at most RELAY_NEW_HOSTS_PER_DAY
// hosts (or the store setting newHostsPerDay, which overrides it) may be
// added by public requestCrawl calls in any 24 h; admin additions and the
// bootstrap from the seed relay do not use it. The times of recent additions
// are kept in the store (relay setting ingestNewHostTimes), so the quota
// survives restarts. Takes are serialised (one lock for every hostname) so
// two concurrent requestCrawls of different hosts cannot both take the last
// slot. Used by crawl admission (crawl-admission.ts).
import type { MetadataStore } from '../store/metadata-store.ts';
import { CrawlRefusedError } from './host-policy.ts';
import type { IngestConfig } from './ingest-config.ts';

declare module '../store/metadata-store.ts' {
  interface RelaySettings {
    /** Epoch ms of hosts added by requestCrawl in the last 24 h (the new-hosts-per-day limit). */
    ingestNewHostTimes: number[];
  }
}

const DAY_MS = 24 * 3600 * 1000;

export interface NewHostQuotaOptions {
  store: MetadataStore;
  /** newHostsPerDay (RELAY_NEW_HOSTS_PER_DAY): the limit unless the store setting newHostsPerDay is set. */
  config: Pick<IngestConfig, 'newHostsPerDay'>;
  now: () => number;
}

export class NewHostQuota {
  private newHostLock: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: NewHostQuotaOptions) {}

  /**
   * Takes a slot of the daily quota, then runs `add`, one call at a time.
   * Throws CrawlRefusedError 429 when the quota is used up (`add` does not run).
   */
  withSlot<T>(add: () => Promise<T>): Promise<T> {
    return this.withNewHostLock(async () => {
      await this.takeNewHostSlot();
      return add();
    });
  }

  private withNewHostLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.newHostLock.then(fn, fn);
    this.newHostLock = run.catch(() => {});
    return run;
  }

  /** Applies the new-hosts-per-day limit (store setting newHostsPerDay overrides the config). */
  private async takeNewHostSlot(): Promise<void> {
    const limit = (await this.o.store.getSetting('newHostsPerDay')) ?? this.o.config.newHostsPerDay;
    const now = this.o.now();
    const times = ((await this.o.store.getSetting('ingestNewHostTimes')) ?? []).filter(
      (t) => t > now - DAY_MS,
    );
    if (times.length >= limit) {
      throw new CrawlRefusedError(429, 'RateLimitExceeded', `new host limit reached (${limit} per day)`);
    }
    times.push(now);
    await this.o.store.setSetting('ingestNewHostTimes', times);
  }
}
