// Finds a sibling module (a worker thread's entry) for the way the code runs:
// under tsx (development, tests) the sources are .ts files, and in the
// compiled build (dist/, what `npm start` runs) they are .js files beside the
// caller. `new URL('./worker.ts', import.meta.url)` is a plain string to tsc,
// which rewrites import specifiers but not URLs, so callers go through here.
// `startWorker` starts a worker thread on such a module: under tsx a worker
// does not inherit the parent's `--import tsx` on Node 20, so a .ts entry is
// started from a tiny ESM bootstrap that registers tsx's loader and then
// imports it.
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * The URL of `relativeTs` (a './x.ts' path next to the caller) as it exists
 * where `callerUrl` (the caller's import.meta.url) runs: the .ts file when the
 * caller is itself a .ts module, the compiled .js file otherwise.
 */
export function siblingModuleUrl(relativeTs: string, callerUrl: string): URL {
  if (!relativeTs.endsWith('.ts')) throw new Error(`expected a .ts path, got ${relativeTs}`);
  const compiled = !new URL(callerUrl).pathname.endsWith('.ts');
  return new URL(compiled ? `${relativeTs.slice(0, -3)}.js` : relativeTs, callerUrl);
}

/**
 * Starts a worker thread on a module (a .ts module through tsx's loader, see
 * the file comment); `options` as for `new Worker` (resourceLimits, workerData).
 */
export function startWorker(
  url: URL,
  options: Pick<WorkerOptions, 'resourceLimits' | 'workerData'> = {},
): Worker {
  if (url.pathname.endsWith('.ts')) {
    // resolved here, not in the worker: an eval'd worker resolves bare names from the cwd
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const bootstrap = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
    return new Worker(bootstrap, { ...options, eval: true });
  }
  return new Worker(url, options);
}
