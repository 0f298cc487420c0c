// Independent verifier, run under Node 22 with Bluesky's own @atproto/repo.
// It reads JSON lines on stdin, one per #commit event produced by our code:
//   { did, didKey, blocks (base64 CAR), commit, rev, since, prevData, ops: [{action, path, cid, prev}] }
// and checks each with the official implementation:
//   1. verifyProofs: the commit signature against didKey and every op's
//      inclusion (create/update) or exclusion (delete) proof in `blocks`;
//   2. the CAR root is the event's `commit`, and the signed commit's rev matches;
//   3. sync 1.1 inversion with the official MST code: load the new tree from
//      the blocks, undo the ops in reverse, and compare the root to prevData.
// Lines with kind 'repo' carry a whole-repo CAR instead, checked with
// verifyRepoCar (signature, full MST walk, record set).
// It prints one JSON line per event ({ ok, error? }) and a summary line.
import { createInterface } from 'node:readline';
import { cborDecode } from '@atproto/lex-cbor';
import { parseCid } from '@atproto/lex-data';
import {
  MemoryBlockstore,
  MST,
  parseDataKey,
  readCarWithRoot,
  verifyProofs,
  verifyRepoCar,
} from '@atproto/repo';

// A whole-repo CAR (com.atproto.sync.getRepo): { kind: 'repo', did, didKey, car, records: {path: cid} }
async function verifyRepoExport(evt) {
  const repo = await verifyRepoCar(Buffer.from(evt.car, 'base64'), evt.did, evt.didKey);
  const got = {};
  for (const w of repo.creates) got[`${w.collection}/${w.rkey}`] = w.cid.toString();
  const want = evt.records;
  const keys = new Set([...Object.keys(got), ...Object.keys(want)]);
  for (const k of keys)
    if (got[k] !== want[k]) throw new Error(`record ${k}: repo has ${got[k]}, expected ${want[k]}`);
}

async function verifyOne(evt) {
  if (evt.kind === 'repo') return verifyRepoExport(evt);
  const bytes = Buffer.from(evt.blocks, 'base64');
  const { root, blocks } = await readCarWithRoot(bytes);
  if (root.toString() !== evt.commit) throw new Error(`CAR root ${root} != commit ${evt.commit}`);
  const commitBlock = blocks.get(root);
  const commit = cborDecode(commitBlock);
  if (commit.rev !== evt.rev) throw new Error(`commit rev ${commit.rev} != event rev ${evt.rev}`);
  if (commit.did !== evt.did) throw new Error(`commit did ${commit.did} != event did ${evt.did}`);
  const claims = evt.ops.map((op) => {
    const { collection, rkey } = parseDataKey(op.path);
    return { collection, rkey, cid: op.action === 'delete' ? null : parseCid(op.cid) };
  });
  const res = await verifyProofs(bytes, claims, evt.did, evt.didKey);
  if (res.unverified.length > 0)
    throw new Error(`unverified ops: ${JSON.stringify(res.unverified.map((c) => c.rkey))}`);
  let mst = MST.load(new MemoryBlockstore(blocks), commit.data);
  for (const op of [...evt.ops].reverse()) {
    if (op.action === 'create') mst = await mst.delete(op.path);
    else if (op.action === 'update') mst = await mst.update(op.path, parseCid(op.prev));
    else mst = await mst.add(op.path, parseCid(op.prev));
  }
  const before = (await mst.getPointer()).toString();
  const expected = evt.prevData ?? null;
  if (expected === null) {
    const leaves = await mst.leafCount();
    if (leaves !== 0) throw new Error(`no prevData but inverted tree has ${leaves} leaves`);
  } else if (before !== expected) {
    throw new Error(`inverted root ${before} != prevData ${expected}`);
  }
}

let ok = 0;
let failed = 0;
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  const evt = JSON.parse(line);
  try {
    await verifyOne(evt);
    ok++;
    process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
  } catch (err) {
    failed++;
    process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.message ?? err) })}\n`);
  }
}
process.stdout.write(`${JSON.stringify({ summary: true, ok, failed })}\n`);
