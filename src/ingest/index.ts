// The ingest stage's public surface: HostManager (subscriptions, host
// additions, admin actions; it is the admin API's HostControl), and the
// FrameSink boundary with validation. requestCrawl's HTTP route is the API's
// (src/api/xrpc.ts).
export { type BootstrapStats, bootstrapFromUpstream } from './bootstrap.ts';
export type { CrawlOptions, CrawlResult } from './crawl-admission.ts';
export type { FrameSink, InboundFrame } from './frame-sink.ts';
export { checkDescribeServer, guardedLookup } from './host-checks.ts';
export type {
  HostControl,
  HostControlResult,
  HostLiveState,
  HostRateLimits,
  RateLimitOverride,
} from './host-control.ts';
export { HostManager, type HostManagerOptions, type HostSnapshot } from './host-manager.ts';
export {
  CrawlRefusedError,
  type CrawlTarget,
  hostAccountLimit,
  isTrustedHostname,
  parseTrustedDomains,
  validateCrawlHostname,
} from './host-policy.ts';
export { MAX_FRAME_BYTES } from './host-subscriber.ts';
export type { IngestConfig, IngestTuning } from './ingest-config.ts';
export { IngestMetrics } from './metrics.ts';
export { computeHostLimits, HostRateLimiter } from './rate-limiter.ts';
