// One account has two statuses: the relay's own (takedowns, throttling) and
// the upstream one from its PDS's #account events. Public endpoints report a
// single one: the relay's decision wins, then the upstream status. These
// helpers give that view and the lexicon error each inactive status maps to.
import type { Account, AccountStatus, HostStatus } from '../store/metadata-store.ts';
import { ApiError } from './http.ts';

export function effectiveStatus(a: Pick<Account, 'status' | 'upstreamStatus'>): AccountStatus {
  return a.status !== 'active' ? a.status : a.upstreamStatus;
}

export function isActive(a: Pick<Account, 'status' | 'upstreamStatus'>): boolean {
  return a.status === 'active' && a.upstreamStatus === 'active';
}

/**
 * The error getLatestCommit / getRepo answer for an inactive account, with the
 * names from the lexicons (RepoTakendown, RepoSuspended, RepoDeactivated) and
 * indigo's for the states the lexicons do not name. Status 403 as indigo's relay
 * answers (RepoNotFound is 404); clients key on the error name.
 */
export function inactiveRepoError(status: AccountStatus): ApiError {
  switch (status) {
    case 'takendown':
      return new ApiError(403, 'RepoTakendown', 'repo has been taken down');
    case 'suspended':
      return new ApiError(403, 'RepoSuspended', 'repo is suspended');
    case 'deactivated':
      return new ApiError(403, 'RepoDeactivated', 'repo is deactivated');
    case 'deleted':
      return new ApiError(403, 'RepoDeleted', 'repo has been deleted');
    default:
      return new ApiError(403, 'RepoInactive', `repo is not active: ${status}`);
  }
}

/** Lexicon host status (active, idle, offline, throttled, banned); a local block reads as banned. */
export function lexiconHostStatus(status: HostStatus): string {
  return status === 'blocked' ? 'banned' : status;
}
