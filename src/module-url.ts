// Finds a sibling module (a worker thread's entry) for the way the code runs:
// under tsx (development, tests) the sources are .ts files, and in the
// compiled build (dist/, what `npm start` runs) they are .js files beside the
// caller. `new URL('./worker.ts', import.meta.url)` is a plain string to tsc,
// which rewrites import specifiers but not URLs, so callers go through here.

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
