// Worker-thread entry for TypeScript modules: Node 20 checks a worker's file
// extension before loader hooks run, so a .ts worker cannot be started
// directly even under `--import tsx`. This plain .mjs registers tsx inside
// the worker and then imports the real entry (workerData.entry).
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
