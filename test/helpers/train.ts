/**
 * What the training-graph tests share: small random models with weights scaled up from the init, deterministic
 * random batches, and the check of a parameter's gradient against central differences of the loss.
 */
import assert from 'node:assert/strict';
import type { GraphBatch } from '../../src/model/graph.js';
import { initParams } from '../../src/model/init.js';
import { presetConfig } from '../../src/model/presets.js';
import { TrainParams } from '../../src/train/params.js';
import { Weights } from '../../src/model/weights.js';

/**
 * The `tiny` or `tiny-llama` preset with a 40-token vocabulary (tied embeddings for GPT-2's), parameters initialised
 * from `seed` and then scaled by 1 + 0.5·sin(i), larger than the init so that every path carries a visible gradient.
 */
export function scaledPresetModel(
  preset: 'tiny' | 'tiny-llama',
  maxPositions: number,
  seed: number,
): { config: ReturnType<typeof presetConfig>; params: TrainParams } {
  const config = { ...presetConfig(preset, { vocabSize: 40 }), maxPositions, tieEmbeddings: preset === 'tiny' };
  const params = new TrainParams(config, false);
  initParams(params.specs, (n) => params.data(n), config, seed);
  for (let i = 0; i < params.store.data.length; i++) params.store.data[i]! *= 1 + 0.5 * Math.sin(i);
  return { config, params };
}

/** B rows of T ids from one linear-congruential stream (deterministic in `seed`), next and next-but-one targets. */
export function randomBatch(B: number, T: number, V: number, seed: number): GraphBatch {
  let s = seed;
  const next = (): number => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % V;
  const stream = Array.from({ length: B * (T + 2) }, next);
  const inputs = new Int32Array(B * T),
    targets = new Int32Array(B * T),
    targets2 = new Int32Array(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      const o = b * (T + 2) + t;
      inputs[b * T + t] = stream[o]!;
      targets[b * T + t] = stream[o + 1]!;
      targets2[b * T + t] = stream[o + 2]!;
    }
  return { B, T, inputs, targets, targets2 };
}

/**
 * The gradient the last backward left in each named parameter against central differences of `loss()` (steps of
 * 1e-2·max(1, |w|)), at the element with the largest gradient and at the indices `fixed(size)` gives; each within
 * 2e-4 + 1e-2·|numeric|. `label` starts the failure message.
 */
export function checkGradientsByDifferences(
  params: TrainParams,
  names: readonly string[],
  loss: () => number,
  fixed: (size: number) => number[],
  label = '',
  /** Step relative to max(1, |θ|): smaller where the loss curves sharply (a truncation error of O(step²)). */
  step = 1e-2,
): void {
  for (const name of names) {
    const t = params.get(name);
    let big = 0;
    for (let i = 1; i < t.size; i++) if (Math.abs(t.grad![i]!) > Math.abs(t.grad![big]!)) big = i;
    for (const i of [big, ...fixed(t.size)]) {
      const orig = t.data[i]!,
        eps = step * Math.max(1, Math.abs(orig));
      t.data[i] = orig + eps;
      const plus = loss();
      t.data[i] = orig - eps;
      const minus = loss();
      t.data[i] = orig;
      const num = (plus - minus) / (2 * eps),
        ana = t.grad![i]!;
      assert.ok(
        Math.abs(num - ana) <= 2e-4 + 1e-2 * Math.abs(num),
        `${label}${name}[${i}]: analytic ${ana}, numeric ${num}`,
      );
    }
  }
}

/** `params` as loaded Weights and as a frozen-base TrainParams (module trainable): the frozen-base graph's inputs. */
export function frozenCopies(
  config: ReturnType<typeof presetConfig>,
  params: TrainParams,
): { weights: Weights; frozen: TrainParams } {
  const weights = new Weights(params.specs);
  for (const s of params.specs) weights.get(s.name).set(params.data(s.name));
  const frozen = new TrainParams(config, true);
  frozen.copyFrom((n) => params.data(n));
  return { weights, frozen };
}
