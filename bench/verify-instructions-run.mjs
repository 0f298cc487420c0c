// The part of bench/verify-instructions.ts that runs under callgrind: plain
// JavaScript over the compiled build, so no TypeScript loader is counted.
//   node bench/verify-instructions-run.mjs FRAMES_JSON CALLS
//   node bench/verify-instructions-run.mjs FRAMES_JSON time SECONDS  (CPU µs per call, printed)
import { readFileSync } from 'node:fs';

const [file, mode, seconds] = [process.argv[2], process.argv[3], Number(process.argv[4] ?? 4)];
const { verifyFrame } = await import(new URL('../dist/src/validate/verify-frame.js', import.meta.url).href);
const saved = JSON.parse(readFileSync(file, 'utf8'));
const key = { alg: 'k256', bytes: new Uint8Array(Buffer.from(saved.key, 'base64')) };
const frames = saved.frames.map((f) => new Uint8Array(Buffer.from(f, 'base64')));
const nowMs = Date.parse('2100-01-01');
const verify = (i) => {
  const r = verifyFrame({ type: '#commit', frame: frames[i % frames.length], key, nowMs, maxRevSkewMs: 0 });
  if (!r.ok || r.sig !== 'ok' || r.proof !== 'ok')
    throw new Error(`verifyFrame failed: ${JSON.stringify(r).slice(0, 200)}`);
};
if (mode === 'time') {
  for (let i = 0; i < 2000; i++) verify(i); // warm up the JIT
  const start = process.cpuUsage();
  let n = 0;
  while (process.cpuUsage(start).user < seconds * 1e6) for (let j = 0; j < 50; j++) verify(n++);
  const used = process.cpuUsage(start);
  console.log(((used.user + used.system) / n).toFixed(1));
} else {
  const calls = Number(mode);
  for (let i = 0; i < calls; i++) verify(i);
}
