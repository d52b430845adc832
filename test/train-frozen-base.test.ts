/**
 * The frozen base of module training (train/module-graph.ts FrozenBase) runs a batch's sequences several at a time as
 * one forward (each on its own KV cache), with half / q8_0 product weights widened to float32 per product: its h rows
 * must be those of separate forwardBase calls — bit for bit when a sequence has more than 24 rows (every product is
 * then the GEMM, whose sums depend neither on the row count nor on where W was widened), to float32 rounding below that
 * (a lone sequence's products may then take the small-M decode kernel, up to 24 rows; for q8_0 that one quantizes x:
 * not compared), and to float32 rounding for f16 / bf16 on the native backend, whose forwardBase reads them as panels
 * (kernels/panels.ts: an outer product up to 1024 rows, its sums in another order than the GEMM's). Both fixtures
 * (GPT-2: fused qkv and position embeddings; Llama: RoPE at each row's own position), every weight dtype, the native
 * and the ref backend, 1 and 2 threads; a batch of more rows than one forward takes (FrozenBase.MAX_ROWS) runs in
 * groups.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { createBackend } from '../src/kernels/index.js';
import type { Backend } from '../src/kernels/backend.js';
import { loadModelDir, readConfig } from '../src/io/model-dir.js';
import { convertWeights, USER_DTYPES } from '../src/model/convert.js';
import { InferenceModel } from '../src/model/infer.js';
import type { GraphBatch } from '../src/model/graph.js';
import { FrozenBase } from '../src/train/module-graph.js';
import { fixturesDir } from './helpers/fixtures.js';

const backends: { name: string; be: Backend }[] = [{ name: 'ref', be: createBackend({ kind: 'ref' }) }];
try {
  backends.push({ name: 'native', be: createBackend({ kind: 'native' }) });
} catch {
  // no addon built: ref only
}

function batchOf(B: number, T: number, V: number, seed: number): GraphBatch {
  let s = seed >>> 0;
  const id = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % V;
  const inputs = Int32Array.from({ length: B * T }, id);
  return { B, T, inputs, targets: new Int32Array(B * T), targets2: new Int32Array(B * T) };
}

for (const fixture of ['tiny-gpt2', 'tiny-llama']) {
  for (const { name, be } of backends) {
    test(`${fixture}, ${name}: FrozenBase.hidden (sequences in one forward) = forwardBase per sequence`, () => {
      const base = path.join(fixturesDir, fixture);
      const config = readConfig(path.join(base, 'config.json'));
      const { weights: f32 } = loadModelDir(base, { config, allowMissingModule: true });
      for (const dtype of USER_DTYPES) {
        const weights = dtype === 'f32' ? f32 : convertWeights(f32, config, dtype);
        for (const threads of [1, 2]) {
          be.setThreads(threads);
          const fb = new FrozenBase(config, weights, be);
          const solo = new InferenceModel(config, weights, be);
          for (const [B, T, exact] of [
            [3, 26, true],
            [2, 5, false],
            [1, 9, false],
            [1, 25, true],
            // more rows than FrozenBase.MAX_ROWS: groups of 16 sequences and 1
            [Math.floor(FrozenBase.MAX_ROWS / 64) + 1, 64, true],
          ] as const) {
            // q8_0 at ≤ 24 rows read row by row (a backend without q8_0 panels) may take the int8 dot, which
            // quantizes x (by design, not comparable); ref reads exactly, native reads q8_0 as panels (x in float32)
            if (dtype === 'int8' && !exact && be.name !== 'ref' && !be.weightDtypes.includes('q8_0_panels')) continue;
            const batch = batchOf(B, T, config.vocabSize, 7 * B + T);
            const C = config.hidden,
              Tm = T - 1;
            const h = new Float32Array(B * Tm * C).fill(Number.NaN);
            fb.hidden(batch, h);
            const what = `${dtype}, threads ${threads}, B ${B}, T ${T}`,
              bitwise = exact && solo.products.size === 0; // no panels: the GEMM on both sides
            let worst = 0;
            for (let b = 0; b < B; b++) {
              const cache = solo.newBaseCache(T);
              const r = solo.forwardBase(batch.inputs.subarray(b * T, (b + 1) * T), cache, 'none');
              for (let i = 0; i < Tm * C; i++) {
                const want = r.hidden[i]!,
                  got = h[b * Tm * C + i]!;
                if (bitwise && got !== want) assert.fail(`${what}: sequence ${b}, value ${i}: ${got} vs ${want}`);
                worst = Math.max(worst, Math.abs(got - want) / (1 + Math.abs(want)));
              }
            }
            assert.ok(worst < 1e-5, `${what}: h differs by ${worst}`);
          }
        }
      }
    });
  }
}
