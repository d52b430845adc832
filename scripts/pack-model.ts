/**
 * Packs a trained checkpoint into a shippable model directory: config.json, tokenizer.json and model.safetensors
 * with float16 storage (the loader upcasts to float32), without train_state/. The training log and loss plot are
 * copied when present so the model card can point at them.
 * Usage: node --import tsx scripts/pack-model.ts CHECKPOINT_DIR OUT_DIR
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadModelDir, saveWeights } from '../src/io/model-dir.js';

const [src, dst] = process.argv.slice(2);
if (!src || !dst) {
  process.stderr.write('usage: pack-model.ts CHECKPOINT_DIR OUT_DIR\n');
  process.exit(2);
}
const { config, weights } = loadModelDir(src);
mkdirSync(dst, { recursive: true });
for (const f of ['config.json', 'tokenizer.json', 'train_log.jsonl']) {
  if (existsSync(join(src, f))) copyFileSync(join(src, f), join(dst, f));
}
saveWeights(join(dst, 'model.safetensors'), config, (name) => weights.get(name), 'F16');
process.stdout.write(`packed ${src} -> ${dst} (float16)\n`);
