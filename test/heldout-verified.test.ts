/**
 * Verified greedy decoding is lossless on real text: on 60 held-out Brown prompts it emits exactly the tokens of
 * standard greedy decoding, and both of its paths (draft accepted, draft rejected and replaced) run. The model is
 * the shipped default (models/recycle-large) when it is installed, else a tiny model trained here on Brown's
 * training split, so the test always decodes with a trained model; it prints which one it used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { heldoutPrompts } from '../src/bench/mode-quality.js';
import { resolveModelDir } from '../src/cli/default-model.js';
import { loadCorpus } from '../src/data/corpus.js';
import { tokenizeDocuments } from '../src/data/dataset.js';
import { getBackend } from '../src/kernels/index.js';
import { InferenceModel } from '../src/model/infer.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { readConfig } from '../src/io/model-dir.js';
import { loadTokenizer } from '../src/tokenizer/index.js';
import { checkVerifiedGreedy } from './helpers/decoding.js';
import { trainingSkipReason, trainTinyOnBrown } from './helpers/trained.js';

const PROMPTS = 60;

/** The shipped default model's directory, or null when it is not installed. */
function shippedModel(): string | null {
  try {
    return resolveModelDir(undefined);
  } catch {
    return null;
  }
}

/**
 * Verified greedy vs standard greedy (checkVerifiedGreedy asserts equality) on `count` held-out Brown prompts of
 * P tokens with K new tokens each, for the model in `dir`; the draft counts and the decoding time.
 */
function verifiedOnHeldout(
  dir: string,
  count: number,
  P: number,
  K: number,
): { accepted: number; rejected: number; seconds: number } {
  const { config, weights } = loadModelDir(dir);
  assert.ok(config.recycle, `${dir} has no recyclable module`);
  const model = new InferenceModel(config, weights, getBackend());
  const tokens = tokenizeDocuments(loadCorpus('brown').val, loadTokenizer(dir));
  const prompts = heldoutPrompts(tokens, count, P, K).map((p) => p.prompt);
  const t0 = performance.now();
  const drafts = checkVerifiedGreedy(model, prompts, { max_new_tokens: K });
  return { ...drafts, seconds: (performance.now() - t0) / 1000 };
}

const shipped = shippedModel();
const skip =
  getBackend().name === 'ref'
    ? shipped
      ? 'the native addon is not built; the ref backend is too slow for 60 generations with the shipped model'
      : trainingSkipReason()
    : false;

test(
  `verified greedy == standard greedy on ${PROMPTS} held-out Brown prompts ` +
    `(${shipped ? 'shipped model' : 'tiny model trained here'})`,
  { skip },
  (t) => {
    const t0 = performance.now();
    let dir = shipped,
      which = `the shipped default model at ${shipped}`;
    let tmp: string | null = null;
    if (!dir) {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'heldout-verified-'));
      dir = trainTinyOnBrown(path.join(tmp, 'tiny'));
      which =
        `a tiny model trained here on Brown's training split (the default model is not installed), ` +
        `${((performance.now() - t0) / 1000).toFixed(1)} s of training`;
    }
    try {
      const maxPositions = readConfig(path.join(dir, 'config.json')).maxPositions;
      // 32 + 48 tokens where the context allows (the shipped model), else 16 + 40 (the tiny model's 64).
      const [P, K] = maxPositions >= 80 ? [32, 48] : [16, 40];
      const { accepted, rejected, seconds } = verifiedOnHeldout(dir, PROMPTS, P, K);
      const msg =
        `model: ${which}; ${PROMPTS} prompts of ${P} tokens, ${K} new tokens each; ` +
        `drafts accepted ${accepted}, rejected ${rejected} ` +
        `(acceptance ${((100 * accepted) / (accepted + rejected)).toFixed(1)}%); decoding ${seconds.toFixed(1)} s`;
      t.diagnostic(msg);
      assert.ok(accepted > 0, 'no draft was accepted: the accept path did not run');
      assert.ok(rejected > 0, 'no draft was rejected: the reject / rollback path did not run');
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  },
);

const deep = shipped ? path.join(path.dirname(shipped), 'recycle-deep') : null;
const deepSkip =
  getBackend().name === 'ref'
    ? 'the native addon is not built'
    : deep && fs.existsSync(path.join(deep, 'config.json'))
      ? false
      : 'models/recycle-deep is not installed';

test(
  'verified greedy == standard greedy on 30 held-out Brown prompts of models/recycle-deep (1-block module)',
  { skip: deepSkip },
  (t) => {
    const { accepted, rejected } = verifiedOnHeldout(deep!, 30, 32, 48);
    t.diagnostic(`recycle-deep: drafts accepted ${accepted}, rejected ${rejected}`);
    assert.ok(accepted > 0 && rejected > 0, `both paths must run (accepted ${accepted}, rejected ${rejected})`);
  },
);
