// The lookup's logic against a stand-in resolver (no DNS query leaves the
// machine in tests): the order of addresses, one family failing, no answer.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AddressResolver, addressLookup, dnsLookup } from './dns-lookup.ts';

function fakeResolver(answers: Record<string, { a?: string[] | Error; aaaa?: string[] | Error }>) {
  const asked: string[] = [];
  const answer = (v: string[] | Error | undefined) =>
    v instanceof Error ? Promise.reject(v) : Promise.resolve(v ?? []);
  const resolver: AddressResolver = {
    resolve4: (h) => {
      asked.push(`A ${h}`);
      return answer(answers[h]?.a);
    },
    resolve6: (h) => {
      asked.push(`AAAA ${h}`);
      return answer(answers[h]?.aaaa);
    },
  };
  return { resolver, asked };
}

const notFound = (h: string) => Object.assign(new Error(`queryA ENOTFOUND ${h}`), { code: 'ENOTFOUND' });
const timedOut = (h: string) => Object.assign(new Error(`queryAaaa ETIMEOUT ${h}`), { code: 'ETIMEOUT' });

describe('addressLookup', () => {
  it('asks A and AAAA at once and lists IPv4 first', async () => {
    const { resolver, asked } = fakeResolver({
      'pds.example.com': { a: ['93.184.216.34', '93.184.216.35'], aaaa: ['2606:2800:220:1::1'] },
    });
    assert.deepEqual(await addressLookup(resolver)('PDS.Example.com.'), [
      { address: '93.184.216.34', family: 4 },
      { address: '93.184.216.35', family: 4 },
      { address: '2606:2800:220:1::1', family: 6 },
    ]);
    assert.deepEqual(asked, ['A pds.example.com', 'AAAA pds.example.com']);
  });

  it('one family failing still gives the other', async () => {
    const { resolver } = fakeResolver({
      'v6only.example': { a: notFound('v6only.example'), aaaa: ['2001:4860::8888'] },
      'v4only.example': { a: ['8.8.8.8'], aaaa: timedOut('v4only.example') },
    });
    const lookup = addressLookup(resolver);
    assert.deepEqual(await lookup('v6only.example'), [{ address: '2001:4860::8888', family: 6 }]);
    assert.deepEqual(await lookup('v4only.example'), [{ address: '8.8.8.8', family: 4 }]);
  });

  it('no address of either kind fails, with the A query error or ENOTFOUND', async () => {
    const { resolver } = fakeResolver({
      'gone.example': { a: notFound('gone.example'), aaaa: timedOut('gone.example') },
      'empty.example': { a: [], aaaa: [] },
      'slow.example': { a: [], aaaa: timedOut('slow.example') },
    });
    const lookup = addressLookup(resolver);
    await assert.rejects(lookup('gone.example'), { code: 'ENOTFOUND' });
    await assert.rejects(lookup('empty.example'), { code: 'ENOTFOUND' });
    await assert.rejects(lookup('slow.example'), { code: 'ETIMEOUT' });
  });

  it('localhost and *.localhost are loopback, without a query', async () => {
    const { resolver, asked } = fakeResolver({});
    const lookup = addressLookup(resolver);
    for (const h of ['localhost', 'LOCALHOST.', 'pds.localhost']) {
      assert.deepEqual(await lookup(h), [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ]);
    }
    assert.deepEqual(asked, []);
    assert.deepEqual(
      (await dnsLookup('localhost')).map((a) => a.address),
      ['127.0.0.1', '::1'],
    );
  });
});
