#!/usr/bin/env node
// The `atrelay` command (package.json "bin"; `npm start` runs `atrelay serve`).
// Makes sure dist/ holds a build of the current sources (scripts/build.mjs:
// a no-op when it does, a tsc run when dist/ is missing or stale), then runs
// the compiled command line, dist/bin/cli.js: production runs plain
// JavaScript, no TypeScript loader. Development and tests run bin/cli.ts
// under tsx instead (`npm run dev -- <command>`).
import { ensureBuilt } from '../scripts/build.mjs';

try {
  ensureBuilt({ quiet: process.env.ATRELAY_BUILD_QUIET === '1' });
} catch (err) {
  console.error(`atrelay: cannot build dist/: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
}
await import('../dist/bin/cli.js');
