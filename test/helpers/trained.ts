/**
 * A tiny RecycleGPT trained in process on Brown, for tests that need real text behaviour (peaked next-token
 * distributions, drafts that are right sometimes and wrong sometimes) rather than random weights. With the native
 * backend it takes a few seconds; the plain-TS "ref" backend is ~50x slower, so callers skip when only it loads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadCorpus } from '../../src/data/corpus.js';
import { getBackend } from '../../src/kernels/index.js';
import { train } from '../../src/train/trainer.js';

export interface TinyTrainOptions {
  /** Training steps (default 300). */
  steps?: number;
  /** Brown training-split documents in the training text (default 150, ≈ 1.8 MB: BPE training stays short). */
  docs?: number;
  seed?: number;
}

/** Why a test that trains should be skipped (false: it can run). */
export function trainingSkipReason(): string | false {
  return getBackend().name === 'ref'
    ? 'the native addon is not built (npm run build:native); the ref backend is too slow to train here'
    : false;
}

/**
 * Train the `tiny` preset (64 wide, 2 layers, 1-block module, context 64, 512-token byte-level BPE) into `out`
 * on the first `docs` documents of Brown's training split, so Brown's held-out split stays unseen. One thread, so
 * the result does not depend on the machine's core count. Returns `out`, a model directory.
 */
export function trainTinyOnBrown(out: string, o: TinyTrainOptions = {}): string {
  const docs = loadCorpus('brown').train.slice(0, o.docs ?? 150);
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const data = `${out}-train.txt`;
  fs.writeFileSync(data, docs.join('\n\n'));
  train(
    {
      out,
      data,
      preset: 'tiny',
      vocabSize: 512,
      steps: o.steps ?? 300,
      batchSize: 8,
      seqLen: 64,
      lr: 3e-3,
      evalEvery: 0,
      evalBatches: 2,
      ckptEvery: o.steps ?? 300,
      seed: o.seed ?? 1337,
      threads: 1,
    },
    { resume: false },
    { backend: getBackend() },
  );
  return out;
}
