// The fuzz suite's slice of `npm test` (issue 12): every target of
// targets.ts for a few hundred mutated inputs under a fixed seed, plus the
// Validator end to end for a few hundred mutated frames, and the cases the
// suite found, pinned. The inputs are the same ones the long run
// (`npm run fuzz`) starts with, so a failure here reproduces there with the
// command it prints. Bounded: about 5 s of CPU in all on an idle 2-core
// machine; the per-input time ceiling is generous (busy CI machines).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Prng } from '../../sim/prng.ts';
import { checkFrame } from '../../src/ingest/frame-check.ts';
import { CborError, decodeCbor, encodeCbor } from '../../src/protocol/cbor.ts';
import { decodeFrame, FrameError, rewriteSeq } from '../../src/protocol/frames.ts';
import { mutate } from './mutate.ts';
import { formatFailure, runTarget } from './runner.ts';
import { buildSeedCorpus } from './seeds.ts';
import { TARGETS } from './targets.ts';
import { fuzzValidator } from './validator-fuzz.ts';

/** Fixed so `npm test` is deterministic; FUZZ_SEED overrides it for a different slice. */
const SEED = process.env.FUZZ_SEED ?? 'npm-test';
const INPUTS_PER_TARGET = Number(process.env.FUZZ_INPUTS ?? 250);

describe('fuzz: decoders and peekers on the ingest/validate path', () => {
  const corpus = buildSeedCorpus(1);

  it('builds seeds of every kind from the simulator', () => {
    assert.ok(corpus.frames.length >= 30);
    for (const t of ['#commit', '#sync', '#identity', '#account', '#info', '#error'])
      assert.ok(
        corpus.frames.some((f) => f.type === t),
        `no ${t} seed`,
      );
    assert.ok(corpus.cars.length > 0 && corpus.mstNodes.length > 0 && corpus.didDocuments.length > 0);
    for (const { frame } of corpus.frames) assert.ok(checkFrame(frame).ok);
  });

  for (const target of TARGETS) {
    it(`${target.name}: ${INPUTS_PER_TARGET} mutated inputs, no undocumented throw, none slow, heap bounded`, () => {
      const stats = runTarget(target, corpus, {
        seed: SEED,
        start: 0,
        count: INPUTS_PER_TARGET,
        ceilingMs: 5_000,
        maxHeapGrowthBytes: 32 * 1024 * 1024,
        heapCheckEvery: INPUTS_PER_TARGET,
      });
      assert.equal(stats.inputs, INPUTS_PER_TARGET);
      assert.deepEqual(stats.failures.map(formatFailure), []);
      // the mutations must reach past the first check now and then, or the target tests nothing
      if (target.expected.length > 0) assert.ok(stats.refused > 0, 'no input was refused');
    });
  }

  it('mutation is deterministic for (seed, target, index)', () => {
    const seeds = corpus.frames.map((f) => f.frame);
    const a = mutate(seeds[3], new Prng('x:frames:9'), seeds);
    const b = mutate(seeds[3], new Prng('x:frames:9'), seeds);
    assert.deepEqual(a, b);
  });
});

describe('fuzz: what the suite found, pinned', () => {
  it('a frame body nested 50,000 deep is refused with FrameError, not a stack overflow', () => {
    const depth = 50_000;
    const body = new Uint8Array(depth * 3 + 1);
    for (let i = 0; i < depth; i++) body.set([0xa1, 0x61, 0x61], i * 3);
    body[depth * 3] = 0xf6;
    const frame = Buffer.concat([encodeCbor({ op: 1, t: '#commit' }), body]);
    assert.throws(() => decodeFrame(frame), FrameError);
    assert.throws(() => decodeCbor(body), CborError);
    assert.equal(checkFrame(frame).ok, false);
  });

  it('rewriteSeq keeps a float64 body field as it was when it inserts seq', () => {
    const header = Buffer.from(encodeCbor({ op: 1, t: '#commit' }));
    const body = Buffer.from('a16161fb40bb000000000000', 'hex'); // {a: 6912.0 as float64}
    const out = rewriteSeq(Buffer.concat([header, body]), 1);
    // {a: 6912.0, seq: 1}: the float stays a float64 (a re-encode would write the integer 6912)
    assert.equal(
      Buffer.from(out).toString('hex'),
      `${header.toString('hex')}a26161fb40bb0000000000006373657101`,
    );
  });
});

describe('fuzz: the Validator end to end', () => {
  it('settles and counts every mutated frame; a good account keeps passing', async () => {
    const stats = await fuzzValidator({
      seed: SEED,
      count: Number(process.env.FUZZ_VALIDATOR_INPUTS ?? 200),
    });
    assert.deepEqual(stats.failures, []);
    assert.ok(stats.dropped > 0 && stats.passed > 0);
  });
});
