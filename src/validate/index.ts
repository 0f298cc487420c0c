// Public surface of the validation stage, and the mapping from the relay's
// configuration to its settings (kept here so relay.ts wires it in one line).
import { availableParallelism } from 'node:os';
import type { RelayConfig } from '../config/config.ts';
import type { RepoLimits } from './repo-fetch.ts';
import { DEFAULT_VALIDATION_SETTINGS, type ValidationSettings } from './validator.ts';

export { ValidationMetrics } from './metrics.ts';
export { DROP_REASONS, type DropReason } from './reasons.ts';
export {
  type FetchedRepo,
  RepoFetchError,
  RepoFetcher,
  type RepoFetchOptions,
  type RepoLimits,
} from './repo-fetch.ts';
export {
  DEFAULT_VALIDATION_SETTINGS,
  type HandleLookup,
  type IdentitySource,
  type ValidationSettings,
  Validator,
  type ValidatorOptions,
} from './validator.ts';

/** Validation settings from the relay configuration (`auto` workers = one per core). */
export function validationSettingsFromConfig(cfg: RelayConfig): ValidationSettings {
  return {
    lenientSync: cfg.lenientSync,
    workers: cfg.validationWorkers === 'auto' ? availableParallelism() : cfg.validationWorkers,
    maxRevSkewMs: 5 * 60_000,
    resyncPerSecond: cfg.resyncPerSecond,
    resyncConcurrency: cfg.resyncConcurrency,
    resyncMaxQueued: cfg.resyncMaxQueued,
    resyncHostConcurrency: cfg.resyncHostConcurrency,
    resyncHostPerSecond: cfg.resyncHostPerSecond,
    resyncHostMaxQueued: cfg.resyncHostMaxQueued,
    resyncTimeoutMs: 60_000,
    resyncRetryMs: 60_000,
    identityRetryMaxMs: cfg.identityRetryMaxSeconds * 1000,
    identityWebRetryMaxMs: cfg.identityWebRetryMaxSeconds * 1000,
    maxRepoBytes: cfg.maxRepoMb * 1024 * 1024,
    maxUnwrittenHeads: DEFAULT_VALIDATION_SETTINGS.maxUnwrittenHeads,
  };
}

/** Limits of whole-repo fetches (resync, collection index, backfill) from the relay configuration. */
export function repoLimitsFromConfig(cfg: RelayConfig): RepoLimits {
  return {
    maxBytes: cfg.maxRepoMb * 1024 * 1024,
    maxBlocks: cfg.maxRepoBlocks,
    concurrency: cfg.repoFetchConcurrency,
    workers: cfg.repoWorkers,
    workerNice: cfg.repoWorkerNice,
    workerHeapMb: cfg.repoWorkerHeapMb,
  };
}
