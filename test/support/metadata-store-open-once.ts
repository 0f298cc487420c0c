// Child process for the concurrent-migration test: opens the store given as a
// JSON argument (which runs the migrations), writes one setting, closes, and
// prints "ok". Two of these start at once against a new database.
import { type OpenMetadataStoreOptions, openMetadataStore } from '../../src/store/open-store.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as OpenMetadataStoreOptions;
const store = await openMetadataStore({ ...opts, cursorFlushMs: 0 });
await store.setSetting('requestCrawlEnabled', true);
await store.close();
process.stdout.write('ok\n');
