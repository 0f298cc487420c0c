// How the HTTP API words account and host statuses: the lexicon error each
// inactive account status maps to, and the lexicon's host status names. The
// status rules themselves live in src/accounts/status.ts.

import { ApiError } from '../http/response.ts';
import type { AccountStatus, HostStatus } from '../store/metadata-store.ts';

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
