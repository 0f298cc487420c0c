import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { padRepoCar } from '../../sim/hostile-repo.ts';
import { SimPds } from '../../sim/pds.ts';
import { SimPlc } from '../../sim/plc.ts';
import { createSafeFetcher, type SafeFetcher } from '../protocol/identity/safe-fetch.ts';
import { Keypair, type PublicKey } from '../protocol/keys.ts';
import { repoCollectionsFetcher, repoStateFetcher } from './relay-upkeep.ts';

const POST = 'app.bsky.feed.post';
const LIKE = 'app.bsky.feed.like';

describe("the collection index's repo fetches (cleaner, #sync recompute)", () => {
  let plc: SimPlc;
  let pds: SimPds;
  let fetcher: SafeFetcher;
  let did: string;
  let key: PublicKey;

  before(async () => {
    plc = await SimPlc.start();
    pds = await SimPds.start({ plc, name: 'pds0' });
    fetcher = createSafeFetcher({ allowPrivate: true, allowInsecure: true });
    const account = pds.createAccount();
    did = account.did;
    key = account.signer.publicKey;
    pds.writeRecords(did, [
      { action: 'create', collection: POST, rkey: '3aaaaaaaaaa21' },
      { action: 'create', collection: LIKE, rkey: '3aaaaaaaaaa22' },
    ]);
  });

  after(async () => {
    fetcher.close();
    await pds.stop();
    await plc.stop();
  });

  it('reads a repo CAR over 2 MB (up to the configured limit)', async () => {
    // 60,000 tiny extra blocks: a 2.5 MB CAR, past readCar's frame-sized default
    pds.hostileRepos.set(did, (real) => padRepoCar(real, 60_000));
    try {
      const fetchCollections = repoCollectionsFetcher({
        fetcher,
        identity: { resolve: async () => ({ pdsEndpoint: pds.url, signingKey: key }) },
        maxRepoBytes: 64 * 1024 * 1024,
      });
      assert.deepEqual(await fetchCollections(did), [LIKE, POST]);
    } finally {
      pds.hostileRepos.delete(did);
    }
  });

  it("checks the repo commit's signature against the account's key", async () => {
    const fetchRepo = repoStateFetcher({
      fetcher,
      identity: {
        resolve: async () => ({ pdsEndpoint: pds.url, signingKey: Keypair.generate('k256').publicKey }),
      },
      maxRepoBytes: 64 * 1024 * 1024,
    });
    await assert.rejects(fetchRepo(did), /signature/);
  });
});
