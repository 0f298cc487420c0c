// Plausible Bluesky records for simulated accounts, and the choice of the
// next write for an account. The generator keeps its own index of each
// account's record paths so it can pick an update or delete target in O(1)
// without walking the repo.
import type { Prng } from './prng.ts';
import type { RepoWrite } from './repo.ts';

const WORDS = [
  'the',
  'relay',
  'firehose',
  'atproto',
  'commit',
  'sky',
  'blue',
  'hello',
  'world',
  'today',
  'coffee',
  'cat',
  'dog',
  'weather',
  'news',
  'music',
  'code',
  'typescript',
  'merkle',
  'tree',
  'signed',
  'posting',
];

// A fixed, syntactically valid CID string for like subjects (the sim never dereferences it).
const SUBJECT_CID = 'bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm';

export function postRecord(prng: Prng, createdAt: string): Record<string, unknown> {
  const n = 3 + prng.int(20);
  const words: string[] = [];
  for (let i = 0; i < n; i++) words.push(prng.pick(WORDS));
  return { $type: 'app.bsky.feed.post', text: words.join(' '), langs: ['en'], createdAt };
}

export function likeRecord(subjectDid: string, rkey: string, createdAt: string): Record<string, unknown> {
  return {
    $type: 'app.bsky.feed.like',
    subject: { uri: `at://${subjectDid}/app.bsky.feed.post/${rkey}`, cid: SUBJECT_CID },
    createdAt,
  };
}

export function followRecord(subjectDid: string, createdAt: string): Record<string, unknown> {
  return { $type: 'app.bsky.graph.follow', subject: subjectDid, createdAt };
}

export function profileRecord(prng: Prng, handle: string): Record<string, unknown> {
  return {
    $type: 'app.bsky.actor.profile',
    displayName: handle.split('.')[0],
    description: `${prng.pick(WORDS)} ${prng.pick(WORDS)} ${prng.int(1000)}`,
  };
}

/** The record paths an account currently holds (collection/rkey), with O(1) random pick and removal. */
export class RecordIndex {
  private readonly paths: string[] = [];
  private readonly pos = new Map<string, number>();

  get size(): number {
    return this.paths.length;
  }

  has(path: string): boolean {
    return this.pos.has(path);
  }

  add(path: string): void {
    if (this.pos.has(path)) return;
    this.pos.set(path, this.paths.length);
    this.paths.push(path);
  }

  remove(path: string): void {
    const i = this.pos.get(path);
    if (i === undefined) return;
    const last = this.paths.pop()!;
    this.pos.delete(path);
    if (last !== path) {
      this.paths[i] = last;
      this.pos.set(last, i);
    }
  }

  pick(prng: Prng): string | undefined {
    return this.paths.length ? this.paths[prng.int(this.paths.length)] : undefined;
  }

  /** Keeps the index in step with a write that was applied. */
  apply(w: RepoWrite): void {
    const path = `${w.collection}/${w.rkey}`;
    if (w.action === 'delete') this.remove(path);
    else this.add(path);
  }
}

export interface WriteContext {
  prng: Prng;
  handle: string;
  index: RecordIndex;
  nextRkey: () => string;
  /** another account's DID (for follows and likes) */
  otherDid: () => string;
}

/** Picks one plausible write: mostly creates, some updates (profile, posts) and deletes. */
export function randomWrite(ctx: WriteContext): RepoWrite {
  const { prng, index } = ctx;
  const createdAt = new Date().toISOString();
  const r = prng.next();
  if (r < 0.12 && index.size > 0) {
    const path = index.pick(prng)!;
    const [collection, rkey] = splitPath(path);
    return { action: 'delete', collection, rkey };
  }
  if (r < 0.2) {
    const profile = 'app.bsky.actor.profile/self';
    const action = index.has(profile) ? 'update' : 'create';
    return {
      action,
      collection: 'app.bsky.actor.profile',
      rkey: 'self',
      record: profileRecord(prng, ctx.handle),
    };
  }
  const rkey = ctx.nextRkey();
  if (r < 0.55)
    return { action: 'create', collection: 'app.bsky.feed.post', rkey, record: postRecord(prng, createdAt) };
  if (r < 0.85) {
    return {
      action: 'create',
      collection: 'app.bsky.feed.like',
      rkey,
      record: likeRecord(ctx.otherDid(), ctx.nextRkey(), createdAt),
    };
  }
  return {
    action: 'create',
    collection: 'app.bsky.graph.follow',
    rkey,
    record: followRecord(ctx.otherDid(), createdAt),
  };
}

export function splitPath(path: string): [string, string] {
  const i = path.indexOf('/');
  return [path.slice(0, i), path.slice(i + 1)];
}
