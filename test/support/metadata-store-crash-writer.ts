// Child process for the crash-durability test: opens the store given as a JSON
// argument, then writes accounts, heads and cursors in a loop, printing
// "ok <i>" after each write has been reported done. The parent SIGKILLs it
// mid-loop and checks that everything reported is there on reopen.
import { type OpenMetadataStoreOptions, openMetadataStore } from '../../src/store/open-store.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as OpenMetadataStoreOptions;
const store = await openMetadataStore({ ...opts, cursorFlushMs: 0 });
const { value: host } = await store.createHost({ hostname: 'crash.example.com' });
for (let i = 1; ; i++) {
  const { value: account } = await store.createAccount({ did: `did:plc:crash${i}`, hostId: host.id });
  await store.updateAccountHead(account.uid, {
    rev: `3l${String(i).padStart(11, '0')}`,
    commitCid: `bafycommit${i}`,
    dataCid: `bafydata${i}`,
  });
  store.updateHostCursor(host.id, i);
  await store.flushCursors();
  process.stdout.write(`ok ${i}\n`);
}
