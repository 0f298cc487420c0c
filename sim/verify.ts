// Checks a simulator #commit/#sync body the way a relay would (commit block
// decoding, signature against the DID document's key, sync 1.1 inversion
// proof against prevData), using the project's own protocol modules. Tests
// use it to show that fault-free output is valid and faulty output is not.
import { readCar } from '../src/protocol/car.ts';
import { type Cid, cidEquals } from '../src/protocol/cid.ts';
import { decodeCommit, verifyCommitSignature } from '../src/protocol/commit.ts';
import { isHighS, parseMultikey } from '../src/protocol/keys.ts';
import { type ProofOp, verifyCommitProof } from '../src/protocol/mst-proof.ts';
import type { SimPlc } from './plc.ts';

export interface CommitCheck {
  ok: boolean;
  problems: string[];
  rev: string;
  data: Cid;
}

/** Verifies a #commit body: returns what failed (signature, high-S, proof, root, commit/rev mismatch). */
export function checkCommitBody(body: Record<string, unknown>, plc: SimPlc): CommitCheck {
  const problems: string[] = [];
  const did = body.repo as string;
  const car = readCar(body.blocks as Uint8Array);
  const commitCid = body.commit as Cid;
  if (!cidEquals(car.roots[0], commitCid)) problems.push('car-root');
  const commit = decodeCommit(car.blocks.get(commitCid)!);
  if (commit.did !== did) problems.push('did');
  if (commit.rev !== body.rev) problems.push('rev-mismatch');
  const entry = plc.get(did);
  const key = parseMultikey(entry!.signingKey);
  if (isHighS(key.alg, commit.sig)) problems.push('high-s');
  else if (!verifyCommitSignature(commit, key)) problems.push('signature');
  const proof = verifyCommitProof({
    blocks: car.blocks,
    dataRoot: commit.data,
    prevData: (body.prevData as Cid | undefined) ?? null,
    ops: body.ops as ProofOp[],
  });
  if (!proof.ok) problems.push(`proof:${proof.reason}`);
  return { ok: problems.length === 0, problems, rev: commit.rev, data: commit.data };
}

/** Verifies a #sync body's commit signature; returns the commit. */
export function checkSyncBody(body: Record<string, unknown>, plc: SimPlc): CommitCheck {
  const problems: string[] = [];
  const did = body.did as string;
  const car = readCar(body.blocks as Uint8Array);
  const commit = decodeCommit(car.blocks.get(car.roots[0])!);
  if (commit.did !== did) problems.push('did');
  if (commit.rev !== body.rev) problems.push('rev-mismatch');
  const key = parseMultikey(plc.get(did)!.signingKey);
  if (!verifyCommitSignature(commit, key)) problems.push('signature');
  return { ok: problems.length === 0, problems, rev: commit.rev, data: commit.data };
}
