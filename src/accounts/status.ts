// The one home of the account-status rules (issue 14). An account has two
// statuses: the relay's own (local: takendown, throttled, desynchronized —
// relay decisions) and the upstream one (the host's last #account event:
// deactivated, suspended, deleted, …). It is active only when both are. What
// the relay publishes (#account, getRepoStatus) is the local status when it
// is not active, else the upstream one. The collection index sees a
// different cut: an account keeps its records through desynchronization and
// throttling, so only a takedown or an inactive upstream hides it.
import type { PublishedStatus } from '../protocol/relay-frames.ts';
import { ACCOUNT_STATUSES, type Account, type AccountStatus } from '../store/metadata-store.ts';

export type { PublishedStatus };

type Statuses = Pick<Account, 'status' | 'upstreamStatus'>;

/** The upstream status an #account event reports, in the store's vocabulary. */
export function upstreamStatusOf(active: boolean, status: string | undefined): AccountStatus {
  if (active) return 'active';
  if (
    status !== undefined &&
    (ACCOUNT_STATUSES as readonly string[]).includes(status) &&
    status !== 'active'
  ) {
    return status as AccountStatus;
  }
  // inactive with no (or an unknown) status: the most conservative known reading
  return 'deactivated';
}

export function isActive(a: Statuses): boolean {
  return a.status === 'active' && a.upstreamStatus === 'active';
}

/** The one status the relay reports for an account: the local one wins, then the upstream one. */
export function effectiveStatus(a: Statuses): AccountStatus {
  return a.status !== 'active' ? a.status : a.upstreamStatus;
}

/** What the relay's #account event says about the account. */
export function publishedStatus(a: Statuses): PublishedStatus {
  const s = effectiveStatus(a);
  return s === 'active' ? { active: true } : { active: false, status: s };
}

/** The status string a published `{active, status}` stands for. */
export function statusOfPublished(published: PublishedStatus): string {
  return published.active ? 'active' : (published.status ?? 'deactivated');
}

/**
 * The collection index's view: `takendown`, the upstream status when that is
 * not active, otherwise `active` (desynchronized and throttled accounts still
 * have their records).
 */
export function indexStatusOf(a: Statuses): string {
  if (a.status === 'takendown') return 'takendown';
  if (a.upstreamStatus !== 'active') return a.upstreamStatus;
  return 'active';
}
