/**
 * Verified greedy with k = 1..4 chained drafts emits exactly standard greedy's tokens on held-out Brown prompts with
 * the shipped models (models/recycle-small, recycle-deep, recycle-medium and recycle-large, native backend), and at
 * k = 4 drafts are accepted and rejected at every depth, with partly accepted rounds (a rejection after accepted
 * drafts). The per-depth acceptance is printed as a diagnostic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { heldoutPrompts } from '../src/bench/mode-quality.js';
import { packageRoot } from '../src/cli/default-model.js';
import { loadCorpus } from '../src/data/corpus.js';
import { tokenizeDocuments } from '../src/data/dataset.js';
import { decodeAll } from '../src/generate/decode.js';
import { getBackend } from '../src/kernels/index.js';
import { InferenceModel } from '../src/model/infer.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { loadTokenizer } from '../src/tokenizer/index.js';

const PROMPTS = 10,
  P = 24,
  K = 32;

for (const name of ['recycle-small', 'recycle-deep', 'recycle-medium', 'recycle-large']) {
  const dir = path.join(packageRoot(), 'models', name);
  const skip =
    getBackend().name === 'ref'
      ? 'the native addon is not built; the ref backend is too slow for the shipped models'
      : fs.existsSync(path.join(dir, 'config.json'))
        ? false
        : `models/${name} is not installed`;
  test(`verified greedy with k = 1..4 == standard greedy on ${PROMPTS} held-out prompts (${name})`, { skip }, (t) => {
    const { config, weights } = loadModelDir(dir);
    const model = new InferenceModel(config, weights, getBackend());
    const tokens = tokenizeDocuments(loadCorpus('brown').val, loadTokenizer(dir));
    const prompts = heldoutPrompts(tokens, PROMPTS, P, K).map((p) => p.prompt);
    const std = prompts.map((p) => decodeAll(model, p, { max_new_tokens: K }).ids);
    for (let k = 1; k <= 4; k++) {
      const checked: number[] = [],
        accepted: number[] = [];
      let partial = 0;
      prompts.forEach((p, i) => {
        const run = decodeAll(model, p, { mode: 'verified', draft_tokens: k, max_new_tokens: K });
        assert.deepEqual(run.ids, std[i], `k = ${k}: verified differs from standard on held-out prompt ${i}`);
        run.stats.checked_by_depth.forEach((v, j) => (checked[j] = (checked[j] ?? 0) + v));
        run.stats.accepted_by_depth.forEach((v, j) => (accepted[j] = (accepted[j] ?? 0) + v));
        partial += run.events.filter((e) => e.source === 'replaced' && e.depth! >= 2).length;
      });
      t.diagnostic(
        `${name} k = ${k}: accepted / checked by depth ${accepted.map((a, j) => `${a}/${checked[j]}`).join(', ')}; ` +
          `${partial} partly accepted rounds`,
      );
      if (k === 4) {
        for (let j = 0; j < k; j++) {
          assert.ok(accepted[j]! > 0, `depth ${j + 1}: no draft accepted`);
          assert.ok(checked[j]! > accepted[j]!, `depth ${j + 1}: no draft rejected`);
        }
        assert.ok(partial > 0, 'no partly accepted round');
      }
    }
  });
}
