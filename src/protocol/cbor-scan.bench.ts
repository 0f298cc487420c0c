// Benchmark of the bounded CBOR scanner and the ingest frame check built on
// it, against the hostile inputs of issue 12 and against the old code paths
// (a recursive decode of the header, a full decode of the body). Reports CPU
// time per operation (bench/harness.ts) and, for the hostile cases, the heap
// growth of one call. Not a test: run it by hand.
//
//   node --import tsx src/protocol/cbor-scan.bench.ts [--seconds 1]
import { decodeFirst as atcuteDecodeFirst } from '@atcute/cbor';
import { bench, printTable } from '../../bench/harness.ts';
import { SimNetwork } from '../../sim/network.ts';
import { checkFrame } from '../ingest/frame-check.ts';
import { peekEventDid } from '../validate/frame-peek.ts';
import { concatBytes } from './bytes.ts';
import { decodeCborFirst, encodeCbor } from './cbor.ts';
import { CborScanner } from './cbor-scan.ts';

const secondsArg = process.argv.indexOf('--seconds');
const seconds = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

const OPEN = { maxDepth: 64, maxItems: 1e9, maxStringBytes: 1e9 };

/** `n` nested one-item arrays around a 0. */
function nested(n: number): Uint8Array {
  const b = new Uint8Array(n + 1);
  b.fill(0x81, 0, n);
  return b;
}

/** The frame check as it was before the scanner (commit c069453): recursive header decode, hand-written skip. */
function oldCheckFrame(frame: Uint8Array): boolean {
  const head = (pos: number): [number, number, number] => {
    const initial = frame[pos++];
    const info = initial & 0x1f;
    if (info < 24) return [initial >> 5, info, pos];
    const n = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : info === 27 ? 8 : 0;
    if (n === 0 || pos + n > frame.length) throw new Error('truncated');
    let arg = 0;
    for (let i = 0; i < n; i++) arg = arg * 256 + frame[pos + i];
    return [initial >> 5, arg, pos + n];
  };
  try {
    const [, rest] = decodeCborFirst(frame);
    let pos = frame.length - rest.length;
    let remaining = 1;
    while (remaining > 0) {
      remaining--;
      const [major, arg, next] = head(pos);
      pos = next;
      if (major === 2 || major === 3) pos += arg;
      else if (major === 4) remaining += arg;
      else if (major === 5) remaining += arg * 2;
      else if (major === 6) remaining += 1;
    }
    return pos === frame.length;
  } catch {
    return false;
  }
}

async function realCommitFrame(): Promise<Uint8Array> {
  const net = await SimNetwork.start({ hosts: 1, accountsPerHost: 1, seed: 1 });
  try {
    const host = net.hosts[0];
    host.writeRecord(net.accounts[0].did);
    return host.firehose.frameAt(host.seq)!;
  } finally {
    await net.stop();
  }
}

/** CPU ms and heap growth (MB) of one call, after a GC when exposed. */
function once(fn: () => unknown): { ms: number; heapMb: number } {
  (globalThis as { gc?: () => void }).gc?.();
  const heap = process.memoryUsage().heapUsed;
  const u = process.cpuUsage();
  try {
    fn();
  } catch {
    // refused: that is the point
  }
  const d = process.cpuUsage(u);
  return { ms: (d.user + d.system) / 1000, heapMb: (process.memoryUsage().heapUsed - heap) / 1e6 };
}

const commit = await realCommitFrame();
const checked = checkFrame(commit);
if (!checked.ok) throw new Error('the sample frame does not pass');
const bodyStart = checked.bodyStart;
const header = encodeCbor({ op: 1, t: '#commit' });
const deepHeader5MB = concatBytes([
  Uint8Array.of(0xa2, 0x61, 0x74),
  nested(5_000_000),
  encodeCbor({ seq: 1 }),
]);
const deepBody1MB = concatBytes([header, Uint8Array.of(0xa1, 0x61, 0x78), nested(1_000_000)]);
const wideBody4MB = concatBytes([
  header,
  Uint8Array.of(0xa1, 0x61, 0x78, 0x9a, 0x00, 0x3d, 0x09, 0x00),
  new Uint8Array(4_000_000),
]);

console.log(`real #commit frame from the simulated network: ${commit.length} bytes\n`);
printTable([
  bench(`checkFrame, real #commit (${commit.length} B)`, () => checkFrame(commit), { seconds }),
  bench('old checkFrame (recursive header decode + skip), same frame', () => oldCheckFrame(commit), {
    seconds,
  }),
  bench('checkFrame, 5 MB nested header (refused)', () => checkFrame(deepHeader5MB), { seconds }),
  bench('checkFrame, 1 MB nested body (refused)', () => checkFrame(deepBody1MB), { seconds }),
  bench('checkFrame, 4 MB body of one-byte items (refused)', () => checkFrame(wideBody4MB), { seconds }),
  bench('peekEventDid, real #commit', () => peekEventDid(commit, '#commit'), { seconds }),
  bench('CborScanner.skip of the body, real #commit', () => new CborScanner(commit, OPEN, bodyStart).skip(), {
    seconds,
  }),
  bench(
    'full decode (@atcute decodeFirst) header + body, real #commit',
    () => {
      const [, rest] = atcuteDecodeFirst(commit);
      return atcuteDecodeFirst(rest);
    },
    { seconds },
  ),
]);

console.log('\nhostile frames, one call each (CPU ms, heap growth MB):');
const rows: [string, () => unknown][] = [
  ['checkFrame: 5 MB nested header', () => checkFrame(deepHeader5MB)],
  ['old checkFrame: same frame (recursive header decode)', () => oldCheckFrame(deepHeader5MB)],
  ['checkFrame: 1 MB nested body', () => checkFrame(deepBody1MB)],
  [
    'old: full decode of that body (what the worker did)',
    () => atcuteDecodeFirst(deepBody1MB.subarray(header.length)),
  ],
  ['checkFrame: 4 MB body of 4M one-byte items', () => checkFrame(wideBody4MB)],
  ['old: full decode of that body', () => atcuteDecodeFirst(wideBody4MB.subarray(header.length))],
];
for (const [name, fn] of rows) {
  const r = once(fn);
  console.log(`  ${name.padEnd(56)} ${r.ms.toFixed(1).padStart(8)} ms ${r.heapMb.toFixed(1).padStart(8)} MB`);
}
