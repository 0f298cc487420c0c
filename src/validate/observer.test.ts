// notifyObserver: notes reach the right callback in order, a commit note is
// handed over parsed, and an observer that throws, rejects or gets an
// unreadable frame is logged without the error escaping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../log.ts';
import { cidForCbor } from '../protocol/cid.ts';
import type { CommitEvent } from '../protocol/events.ts';
import { encodeFrame } from '../protocol/frames.ts';
import { effectiveStatus, notifyObserver, type ObserverNote } from './observer.ts';

const DID = 'did:plc:abcdefghijklmnopqrstuvwx';

function commitFrame(): Uint8Array {
  return encodeFrame('#commit', {
    seq: 5,
    rebase: false,
    tooBig: false,
    repo: DID,
    commit: cidForCbor(new Uint8Array([0xa0])),
    rev: '3aaaaaaaaaa22',
    since: null,
    blocks: new Uint8Array([1, 2, 3]),
    ops: [
      { action: 'create', path: 'app.bsky.feed.post/3aaaaaaaaaa22', cid: cidForCbor(new Uint8Array([0xa1])) },
    ],
    blobs: [],
    time: '2026-11-22T00:00:00.000Z',
  });
}

function recordingLogger(): { logger: Logger; errors: unknown[] } {
  const errors: unknown[] = [];
  const logger = { error: (obj: unknown) => errors.push(obj) } as unknown as Logger;
  return { logger, errors };
}

describe('notifyObserver', () => {
  it('delivers notes in order, commits parsed', () => {
    const seen: string[] = [];
    let commit: CommitEvent | undefined;
    const notes: ObserverNote[] = [
      { kind: 'status', did: DID, status: 'takendown' },
      { kind: 'commit', did: DID, frame: commitFrame() },
      { kind: 'resynced', did: DID, car: { rev: '3aaaaaaaaaa22', collections: ['a.b.c'] } },
    ];
    const { logger, errors } = recordingLogger();
    notifyObserver(
      {
        accountStatus: (did, status) => void seen.push(`status ${did} ${status}`),
        commitAccepted: (did, c) => {
          seen.push(`commit ${did}`);
          commit = c;
        },
        repoResynced: (did, repo) => void seen.push(`resynced ${did} ${repo.collections.length}`),
      },
      notes,
      logger,
    );
    assert.deepEqual(seen, [`status ${DID} takendown`, `commit ${DID}`, `resynced ${DID} 1`]);
    assert.equal(commit?.ops[0].path, 'app.bsky.feed.post/3aaaaaaaaaa22');
    assert.equal(commit?.repo, DID);
    assert.deepEqual(errors, []);
  });

  it('catches and logs observer errors, sync and async, and unreadable frames', async () => {
    const { logger, errors } = recordingLogger();
    const after: string[] = [];
    notifyObserver(
      {
        accountStatus: () => {
          throw new Error('sync failure');
        },
        commitAccepted: () => void after.push('commit'),
        repoResynced: () => Promise.reject(new Error('async failure')),
      },
      [
        { kind: 'status', did: DID, status: 'active' },
        { kind: 'commit', did: DID, frame: new Uint8Array([0xff]) },
        { kind: 'resynced', did: DID, car: { rev: '3aaaaaaaaaa22', collections: [] } },
        { kind: 'commit', did: DID, frame: commitFrame() },
      ],
      logger,
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(after, ['commit'], 'later notes still delivered');
    assert.equal(errors.length, 3);
  });

  it('a missing callback is skipped', () => {
    notifyObserver(
      {},
      [{ kind: 'commit', did: DID, frame: new Uint8Array([0xff]) }],
      recordingLogger().logger,
    );
  });

  it('effectiveStatus reads a published status', () => {
    assert.equal(effectiveStatus({ active: true }), 'active');
    assert.equal(effectiveStatus({ active: false, status: 'takendown' }), 'takendown');
    assert.equal(effectiveStatus({ active: false }), 'deactivated');
  });
});
