// Test helper: deterministic SimRepos and their commits in the shape upkeep
// takes (IndexedCommit), plus random write batches over collection names
// chosen to be adversarial for prefix logic ('a.b.c' next to 'a.b.c-x',
// 'a.b.c.d', 'a.b.c2', 'a.b.cc', which sort on both sides of 'a.b.c/').

import { Prng } from '../../sim/prng.ts';
import { type CommitResult, type RepoWrite, SimRepo } from '../../sim/repo.ts';
import type { IndexedCommit } from '../../src/collections/upkeep.ts';
import { type BlockMap, readCar } from '../../src/protocol/car.ts';
import { Keypair } from '../../src/protocol/keys.ts';
import { TidClock } from '../../src/protocol/tid.ts';

export const TRICKY_COLLECTIONS = ['a.b.c', 'a.b.c-x', 'a.b.c.d', 'a.b.c2', 'a.b.cc'];

const KEY = Keypair.fromPrivateKey('k256', new Uint8Array(32).fill(7));

export function newRepo(did: string): SimRepo {
  return new SimRepo(did, KEY, new TidClock({ clockId: 3, now: () => 1_700_000_000_000 }));
}

export function indexed(res: CommitResult): IndexedCommit & { blocks: BlockMap } {
  return { did: res.did, dataRoot: res.dataCid, blocks: readCar(res.blocks).blocks, ops: res.ops };
}

const RKEY_CHARS = 'abcdefghijklmnopqrstuvwxyz234567:~-._';

function rkey(prng: Prng): string {
  const n = 1 + prng.int(12);
  let s = '';
  for (let i = 0; i < n; i++) s += RKEY_CHARS[prng.int(RKEY_CHARS.length)];
  return s === '.' || s === '..' ? `${s}x` : s;
}

/** A random batch of 1–4 creates/deletes over `collections`, valid against the repo's current records. */
export function randomBatch(
  prng: Prng,
  repo: SimRepo,
  collections: readonly string[],
  deleteShare = 0.45,
): RepoWrite[] {
  const existing = [...repo.records()].map(([p]) => p);
  const used = new Set<string>();
  const writes: RepoWrite[] = [];
  const n = 1 + prng.int(4);
  for (let i = 0; i < n; i++) {
    if (existing.length > 0 && prng.next() < deleteShare) {
      const path = existing[prng.int(existing.length)];
      if (used.has(path)) continue;
      used.add(path);
      const slash = path.indexOf('/');
      writes.push({ action: 'delete', collection: path.slice(0, slash), rkey: path.slice(slash + 1) });
    } else {
      const collection = collections[prng.int(collections.length)];
      const rk = rkey(prng);
      const path = `${collection}/${rk}`;
      if (used.has(path) || existing.includes(path)) continue;
      used.add(path);
      writes.push({ action: 'create', collection, rkey: rk });
    }
  }
  return writes;
}

export { Prng };
