// The ingest stage's public surface: HostManager (subscriptions, host
// additions, admin actions), the requestCrawl HTTP handler, and the
// FrameSink boundary with validation.
export { type BootstrapStats, bootstrapFromUpstream } from './bootstrap.ts';
export type { FrameSink, InboundFrame } from './frame-sink.ts';
export { checkDescribeServer, guardedLookup } from './host-checks.ts';
export {
  type CrawlOptions,
  type CrawlResult,
  HostManager,
  type HostManagerOptions,
  type HostSnapshot,
  type IngestConfig,
  type IngestTuning,
} from './host-manager.ts';
export {
  CrawlRefusedError,
  type CrawlTarget,
  hostAccountLimit,
  isTrustedHostname,
  parseTrustedDomains,
  validateCrawlHostname,
} from './host-policy.ts';
export { MAX_FRAME_BYTES } from './host-subscriber.ts';
export { IngestMetrics } from './metrics.ts';
export { computeHostLimits, HostRateLimiter } from './rate-limiter.ts';
export { handleRequestCrawl, REQUEST_CRAWL_PATH, requestCrawlResponse } from './request-crawl.ts';
