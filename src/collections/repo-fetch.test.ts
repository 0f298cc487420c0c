// The collection index's repo fetches (cleaner, #sync recompute) through the
// relay's RepoFetcher, against a simulated PDS: repos over 2 MB read (the old
// frame-sized limit), the commit signature checked, over-limit repos a
// permanent counted failure, a missing repo null.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inflateRepoCar, padRepoCar } from '../../sim/hostile-repo.ts';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { createSafeFetcher, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { Keypair, type PublicKey } from '../protocol/keys.ts';
import { RepoFetchError, RepoFetcher } from '../validate/repo-fetch.ts';
import { repoCollectionsFetcher, repoStateFetcher } from './relay-upkeep.ts';

const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';

describe("the collection index's repo fetches (cleaner, #sync recompute)", () => {
  let plc: SimPlc;
  let pds: SimPds;
  let fetcher: SafeFetcher;
  let repos: RepoFetcher;
  let did: string;
  let key: PublicKey;
  const identity = () => ({ resolve: async () => ({ pdsEndpoint: pds.url, signingKey: key }) });

  before(async () => {
    plc = await SimPlc.start();
    pds = await SimPds.start({ plc, name: 'pds0' });
    fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    repos = new RepoFetcher({ fetcher, maxBytes: 8 * 1024 * 1024, maxBlocks: 100_000 });
    const account = pds.createAccount();
    did = account.did;
    key = account.signer.publicKey;
    pds.writeRecords(did, [
      { action: 'create', collection: POST, rkey: '3aaaaaaaaaa21' },
      { action: 'create', collection: LIKE, rkey: '3aaaaaaaaaa22' },
    ]);
  });

  after(async () => {
    await repos.close();
    fetcher.close();
    await pds.stop();
    await plc.stop();
  });

  it('reads a repo CAR over 2 MB (up to the configured limit)', async () => {
    // 60,000 tiny extra blocks: a 2.5 MB CAR, past readCar's frame-sized default
    pds.hostileRepos.set(did, (real) => padRepoCar(real, 60_000));
    try {
      const fetchCollections = repoCollectionsFetcher({ repos, identity: identity() });
      assert.deepEqual(await fetchCollections(did), [LIKE, POST]);
    } finally {
      pds.hostileRepos.delete(did);
    }
  });

  it("checks the repo commit's signature against the account's key", async () => {
    const fetchRepo = repoStateFetcher({
      repos,
      identity: {
        resolve: async () => ({ pdsEndpoint: pds.url, signingKey: Keypair.generate('k256').publicKey }),
      },
    });
    await assert.rejects(fetchRepo(did), (err: Error) => {
      assert.ok(err instanceof RepoFetchError);
      assert.equal(err.reason, 'bad-signature');
      assert.ok(err.permanent);
      return true;
    });
    assert.equal((await repoStateFetcher({ repos, identity: identity() })(did))?.collections.length, 2);
  });

  it('a repo over the byte or block limit is a permanent, counted failure', async () => {
    const fetchCollections = repoCollectionsFetcher({ repos, identity: identity() });
    for (const [make, reason] of [
      [(real: Uint8Array) => inflateRepoCar(real, 9 * 1024 * 1024), 'too-large'],
      [(real: Uint8Array) => padRepoCar(real, 100_001), 'too-many-blocks'],
    ] as const) {
      pds.hostileRepos.set(did, make);
      await assert.rejects(fetchCollections(did), (err: Error) => {
        assert.ok(err instanceof RepoFetchError, String(err));
        assert.equal(err.reason, reason);
        assert.ok(err.permanent, 'retrying cannot help');
        return true;
      });
    }
    pds.hostileRepos.delete(did);
  });

  it('a repo the PDS does not have is null', async () => {
    const fetchCollections = repoCollectionsFetcher({ repos, identity: identity() });
    assert.equal(await fetchCollections('did:plc:aaaaaaaaaaaaaaaaaaaaaaaa'), null);
  });
});
