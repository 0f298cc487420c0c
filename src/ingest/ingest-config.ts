// The settings the ingest stage reads: the relay settings it needs
// (IngestConfig; RelayConfig satisfies it) and the tuning knobs with their
// defaults (IngestTuning: back-off, liveness, queue bounds), which tests and
// benchmarks set to make time short. resolveTuning merges the two.
import type { RelayConfig } from '../config/config.ts';

/** The relay settings ingest reads (RelayConfig satisfies it), plus tuning knobs for tests. */
export type IngestConfig = Pick<
  RelayConfig,
  | 'allowInsecureHosts'
  | 'upstream'
  | 'bootstrapHosts'
  | 'newHostsPerDay'
  | 'hostMaxFailures'
  | 'hostConnectsPerSecond'
  | 'hostMaxInFlight'
  | 'hostCursorWindow'
  | 'hostBadFramesPerMinute'
  | 'ingestFrameBudgetMb'
  | 'hostRatePerSecond'
  | 'hostRatePerHour'
  | 'hostRatePerDay'
  | 'trustedDomains'
> &
  Partial<Pick<RelayConfig, 'bootstrapIntervalMinutes' | 'bootstrapRetryMaxSeconds'>> &
  Partial<IngestTuning>;

export interface IngestTuning {
  /** First reconnect delay; doubles per consecutive failure (default 1,000 ms). */
  backoffBaseMs: number;
  /** Longest reconnect delay (default 5 min). */
  backoffMaxMs: number;
  /** A connection that stays open this long counts as a success (default 30 s). */
  successAfterMs: number;
  /** Liveness sweep period (default 15 s). */
  sweepIntervalMs: number;
  /** Ping a socket quiet for this long (default 30 s). */
  pingAfterMs: number;
  /** Drop a socket quiet (no frame, no pong) for this long (default 90 s). */
  deadAfterMs: number;
  handshakeTimeoutMs: number;
  /** How often account counts are re-read to rescale rate limits (default 5 min). */
  limitsRefreshMs: number;
  /** describeServer timeout (default 10 s). */
  describeTimeoutMs: number;
  /**
   * Frames a subscriber may have parsed but not handed on (default 1,024). Only
   * frames from one socket read can pile up (real frames: ~130 per 64 KB
   * read); at the bound the connection is closed and re-read from the cursor.
   */
  maxQueuedFrames: number;
  /** Host additions (requestCrawl, admin, bootstrap) in progress at once (default 1,000); beyond: 503. */
  maxPendingAdds: number;
  /** First retry of a failed bootstrap; doubles up to RELAY_BOOTSTRAP_RETRY_MAX_SECONDS (default 5 s). */
  bootstrapRetryBaseMs: number;
}

const DEFAULT_TUNING: IngestTuning = {
  backoffBaseMs: 1_000,
  backoffMaxMs: 5 * 60_000,
  successAfterMs: 30_000,
  sweepIntervalMs: 15_000,
  pingAfterMs: 30_000,
  deadAfterMs: 90_000,
  handshakeTimeoutMs: 10_000,
  limitsRefreshMs: 5 * 60_000,
  describeTimeoutMs: 10_000,
  maxQueuedFrames: 1024,
  maxPendingAdds: 1000,
  bootstrapRetryBaseMs: 5_000,
};

/** The tuning knobs: DEFAULT_TUNING, with each one the config sets replacing its default. */
export function resolveTuning(config: IngestConfig): IngestTuning {
  const tuning = { ...DEFAULT_TUNING };
  for (const k of Object.keys(DEFAULT_TUNING) as (keyof IngestTuning)[]) {
    const v = config[k];
    if (v !== undefined) tuning[k] = v;
  }
  return tuning;
}
