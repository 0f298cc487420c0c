// Keeps the test-support rule true (docs/testing.md): test helpers live in
// test/support/, and the code that is built into dist/ (src/, sim/, bin/,
// less their tests and benchmarks) never reaches into test code. It reads the
// import specifiers of every module (static and dynamic imports, re-exports,
// and `new URL('…', import.meta.url)` references to worker or child-process
// entries) and fails on:
// - a module under src/ (not a test or a benchmark) that references anything
//   outside src/: the relay itself must not depend on sim/, test/ or bench/;
// - a module under sim/ or bin/ (not a test or a benchmark) that references
//   test/ or bench/: dist/ holds neither;
// - a module under src/ that is imported, but only by tests, benchmarks and
//   test support: a test-only module, which belongs in test/support/.
// Benchmarks beside the code (src/**/*.bench.ts) may import sim/ and bench/.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Repository-relative paths (with '/') of the TypeScript modules under `top`. */
function modulesUnder(top: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(repoRoot, dir), { withFileTypes: true })) {
      if (entry.name === 'node_modules') continue;
      const path = posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(ts|mjs)$/.test(entry.name)) out.push(path);
    }
  };
  walk(top);
  return out;
}

const SPECIFIER_PATTERNS = [
  /\bfrom\s*'(\.{1,2}\/[^']+)'/g,
  /\bimport\s*\(\s*'(\.{1,2}\/[^']+)'/g,
  /\bimport\s+'(\.{1,2}\/[^']+)'/g,
  /\bnew URL\(\s*'(\.{1,2}\/[^']+)',\s*import\.meta\.url/g,
];

/** The repository-relative paths a module references through relative specifiers. */
function referencedPaths(module: string): string[] {
  const text = readFileSync(join(repoRoot, module), 'utf8');
  const out = new Set<string>();
  for (const pattern of SPECIFIER_PATTERNS) {
    for (const m of text.matchAll(pattern)) out.add(posix.normalize(posix.join(posix.dirname(module), m[1])));
  }
  return [...out];
}

const isTestOrBench = (path: string): boolean => /\.(test|bench)\.ts$/.test(path);
/** Code compiled into dist/ (tsconfig.build.json): src/, sim/ and bin/ without tests and benchmarks. */
const isBuilt = (path: string): boolean =>
  /^(src|sim|bin)\//.test(path) && !isTestOrBench(path) && path !== 'sim/bench.ts';

const allModules = ['src', 'sim', 'bin', 'bench', 'scripts', 'test', 'interop'].flatMap((top) =>
  modulesUnder(top).filter((m) => !m.startsWith('interop/node_modules')),
);
const references = new Map(allModules.map((m) => [m, referencedPaths(m)] as const));

describe('test support layout', () => {
  it('finds the modules and their references (the check itself works)', () => {
    assert.ok(references.get('src/relay.ts')?.includes('src/validate/index.ts'));
    assert.ok(references.get('src/validate/resync.test.ts')?.some((p) => p.startsWith('test/support/')));
  });

  it('the relay under src/ references nothing outside src/ (no sim/, test/ or bench/)', () => {
    const offending = [...references]
      .filter(([m]) => m.startsWith('src/') && isBuilt(m))
      .flatMap(([m, refs]) => refs.filter((r) => !r.startsWith('src/')).map((r) => `${m} -> ${r}`));
    assert.deepEqual(offending, [], 'move test helpers to test/support/ and import them from tests only');
  });

  it('sim/ and bin/ (built into dist/) reference no test/ or bench/ code', () => {
    const offending = [...references]
      .filter(([m]) => isBuilt(m) && !m.startsWith('src/'))
      .flatMap(([m, refs]) => refs.filter((r) => /^(test|bench)\//.test(r)).map((r) => `${m} -> ${r}`));
    assert.deepEqual(offending, []);
  });

  it('no module under src/ is used only by tests (test-only modules live in test/support/)', () => {
    const importers = new Map<string, string[]>();
    for (const [m, refs] of references) {
      for (const r of refs) importers.set(r, [...(importers.get(r) ?? []), m]);
    }
    const testOnly = [...importers]
      .filter(([target, by]) => target.startsWith('src/') && isBuilt(target) && !by.some(isBuilt))
      .map(([target, by]) => `${target} (imported by ${by.join(', ')})`);
    assert.deepEqual(testOnly, []);
  });
});
