// A node:test reporter for scripts/stress-tests.mjs: one JSON line per test
// that finished, {file, path, ok, error}, where path is the names of the
// enclosing suites and the test joined by " > ". Suites that failed only
// because a subtest failed are not reported again (the subtest is).
export default async function* failureReporter(source) {
  const stack = [];
  for await (const ev of source) {
    if (ev.type === 'test:start') {
      stack.length = ev.data.nesting;
      stack.push(ev.data.name);
      continue;
    }
    if (ev.type !== 'test:pass' && ev.type !== 'test:fail') continue;
    const { name, nesting, file, details, skip, todo } = ev.data;
    stack.length = nesting;
    const path = [...stack, name].join(' > ');
    if (ev.type === 'test:fail') {
      const err = details?.error;
      if (err?.failureType === 'subtestsFailed') continue;
      const cause = err?.cause ?? err;
      const message = String(cause?.message ?? cause ?? 'failed')
        .split('\n')
        .slice(0, 3)
        .join(' / ');
      yield `${JSON.stringify({ file, path, ok: false, error: message.slice(0, 300) })}\n`;
    } else if (details?.type !== 'suite' && !skip && !todo) {
      yield `${JSON.stringify({ file, path, ok: true })}\n`;
    }
  }
}
