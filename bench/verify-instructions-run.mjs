// The part of bench/verify-instructions.ts that runs under callgrind: plain
// JavaScript over the compiled build, so no TypeScript loader is counted.
//   node bench/verify-instructions-run.mjs FRAMES_JSON CALLS
import { readFileSync } from 'node:fs';

const [file, calls] = [process.argv[2], Number(process.argv[3])];
const { verifyFrame } = await import(new URL('../dist/src/validate/verify-frame.js', import.meta.url).href);
const saved = JSON.parse(readFileSync(file, 'utf8'));
const key = { alg: 'k256', bytes: new Uint8Array(Buffer.from(saved.key, 'base64')) };
const frames = saved.frames.map((f) => new Uint8Array(Buffer.from(f, 'base64')));
const nowMs = Date.parse('2100-01-01');
for (let i = 0; i < calls; i++) {
  const r = verifyFrame({ type: '#commit', frame: frames[i % frames.length], key, nowMs, maxRevSkewMs: 0 });
  if (!r.ok || r.sig !== 'ok' || r.proof !== 'ok')
    throw new Error(`verifyFrame failed: ${JSON.stringify(r).slice(0, 200)}`);
}
