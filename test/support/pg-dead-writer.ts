// Child process for the dead-writer test (src/store/postgres-dead-writer.test.ts):
// opens the PostgreSQL store given as a JSON argument and starts one account
// status write, which the parent has made wait on a row lock; it prints
// "sent" and then waits until the parent SIGKILLs it.
import { type OpenMetadataStoreOptions, openMetadataStore } from '../../src/store/open-store.ts';

const opts = JSON.parse(process.argv[2] ?? '{}') as OpenMetadataStoreOptions;
const uid = Number(process.argv[3]);
const store = await openMetadataStore(opts);
void store.setAccountStatus(uid, 'desynchronized');
process.stdout.write('sent\n');
setInterval(() => {}, 60_000);
