// The closed set of reasons an inbound event is dropped (or, for the sync 1.1
// chain, flagged). Every rejection increments `relay_validation_dropped_total`
// with one of these as its `reason` label, so the label set stays small and
// fixed (Prometheus cardinality) and the tests can assert exact reasons.

export const DROP_REASONS = [
  'bad-frame', // not decodable, wrong header, or header type differs from the declared type
  'bad-event', // known type with a bad shape (missing/mistyped field)
  'too-large', // blocks over 2,000,000 bytes (10,000 for #sync) or more than 200 ops
  'too-big', // legacy tooBig commit: no blocks to verify
  'bad-car', // CAR does not load, or a block's hash does not match its CID
  'missing-commit', // the CAR does not hold the commit block
  'bad-commit', // commit block is not a valid v3 commit
  'commit-mismatch', // repo/rev/commit of the event differ from the signed commit
  'bad-rev', // rev is not a TID
  'future-rev', // rev more than the allowed skew (5 minutes) in the future
  'high-s-signature', // signature in its malleable high-S form
  'bad-signature', // signature does not verify, also after re-resolving the DID
  'no-signing-key', // DID document has no usable #atproto key
  'identity-unresolved', // DID could not be resolved
  'wrong-host', // the DID document names another host, also after re-resolving
  'inactive-account', // the account is not active (local or upstream status)
  'rev-not-newer', // rev ≤ the stored rev (replay or rollback)
  'chain-break', // since/prevData/inversion do not follow the stored head (strict mode; triggers a resync)
  'desynchronized', // account awaits a resync; its events are not passed until the head is rebuilt
  'unknown-type', // a message type the relay does not forward
] as const;

export type DropReason = (typeof DROP_REASONS)[number];
