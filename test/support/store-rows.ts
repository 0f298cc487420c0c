// Store rows for tests that fake the metadata store: a Host and an Account
// with the defaults a fresh row has (times at the epoch), and whatever the
// test sets. One place, so a new column means one edit, not one per test.
import type { Account, Host } from '../../src/store/metadata-store.ts';

/** A host row `pds<id>.test`: active, TLS, no cursor, limit 100, untrusted; `fields` override. */
export function hostRow(id: number, fields: Partial<Host> = {}): Host {
  const t = new Date(0);
  return {
    id,
    hostname: `pds${id}.test`,
    tls: true,
    status: 'active',
    cursor: 0,
    failures: 0,
    accountLimit: 100,
    accountCount: 0,
    trusted: false,
    createdAt: t,
    updatedAt: t,
    ...fields,
  };
}

/** An active account row on host 1 with a head at `rev`; `fields` override. */
export function accountRow(did: string, rev: string, fields: Partial<Account> = {}): Account {
  return {
    uid: 1,
    did,
    hostId: 1,
    status: 'active',
    upstreamStatus: 'active',
    head: { rev, commitCid: 'c', dataCid: 'd' },
    createdAt: new Date(0),
    ...fields,
  };
}
