// The account status a relay publishes is its own, not the host's: an account
// has a local status (relay decisions: takendown, throttled, desynchronized)
// and an upstream status (the host's last #account event), and it is active
// only when both are. These helpers map between the #account event
// vocabulary and the store's, and compute what the relay re-emits.
import type { PublishedStatus } from '../protocol/relay-frames.ts';
import { ACCOUNT_STATUSES, type Account, type AccountStatus } from '../store/metadata-store.ts';

export type { PublishedStatus };

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

/** What the relay says about the account: the local status wins, then the upstream one. */
export function publishedStatus(account: Pick<Account, 'status' | 'upstreamStatus'>): PublishedStatus {
  if (account.status !== 'active') return { active: false, status: account.status };
  if (account.upstreamStatus !== 'active') return { active: false, status: account.upstreamStatus };
  return { active: true };
}

export function isActive(account: Pick<Account, 'status' | 'upstreamStatus'>): boolean {
  return account.status === 'active' && account.upstreamStatus === 'active';
}
