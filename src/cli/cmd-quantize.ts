/**
 * `recyclegpt quantize [--model DIR] --dtype int8|f16|bf16 --out DIR [--force] [--json]`: writes a model directory
 * whose product weights (block matrices, embedding, head, the module's W_in) are stored as the dtype, with the same
 * tensor names (ARCHITECTURE.md §5): f16 / bf16 as F16 / BF16 tensors; int8 as ggml's q8_0, the I8 quants `X`
 * [out, in] and the F16 scales `X.q8_0_scales` [out, in/32] (a matrix whose rows are not a multiple of 32 stays f16);
 * norms, biases and GPT-2's position table F32. config.json gets a `"quantization"` section; the tokenizer files are
 * copied. The output loads with RecycleGPT.load (and every command's --model) as stored. The whole directory is
 * written atomically (staged next to it, then renamed in).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { replaceDirAtomic } from '../io/atomic.js';
import { loadModelDir, quantizationSection, readModelConfig, saveStoredWeights } from '../io/model-dir.js';
import { toHfConfig } from '../model/config.js';
import { convertWeights, USER_DTYPES, type UserDtype } from '../model/convert.js';
import { allParamSpecs, isProductWeight } from '../model/names.js';
import type { Weights } from '../model/weights.js';
import { resolveModelDir } from './default-model.js';
import { printJson } from './options.js';
import { progressBar, QUIET_FLAG } from './progress.js';

/** Files of a model directory that travel with it unchanged. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
];

export interface QuantizeResult {
  model: string;
  out: string;
  dtype: UserDtype;
  /** Bytes of the source's weight files and of the written model.safetensors. */
  bytes_in: number;
  bytes_out: number;
  /** Tensors by storage dtype (q8_0 counts a weight once, its scales with it). */
  tensors: Record<string, number>;
  copied: string[];
}

function weightFilesBytes(dir: string): number {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
}

/** `--out` of a command that writes a new model directory from the one in `dir`: not `dir`, empty unless `force`. */
export function checkOutDir(dir: string, out: string, force: boolean): void {
  if (path.resolve(out) === path.resolve(dir)) throw new Error(`--out ${out} is the model directory itself`);
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new Error(`--out ${out} exists and is not a directory`);
    if (fs.readdirSync(out).length > 0 && !force) {
      throw new Error(`--out ${out} exists and is not empty (give --force to replace it)`);
    }
  }
}

/**
 * Quantizes the model in `dir` to `dtype` and writes it to `out` (replacing it when `force`). `onStage` hears of
 * each of its three stages (read, convert, write) as it starts.
 */
export function quantizeModelDir(
  dir: string,
  dtype: UserDtype,
  out: string,
  force = false,
  onStage: (done: number, total: number, stage: string) => void = () => {},
): QuantizeResult {
  if (!USER_DTYPES.includes(dtype)) throw new Error(`--dtype must be one of ${USER_DTYPES.join(', ')}, got "${dtype}"`);
  checkOutDir(dir, out, force);
  onStage(0, 3, 'reading');
  const { config, quantization } = readModelConfig(dir);
  // every stored dtype kept as it is, so converting an f16 model to f16 (or int8 to int8) is exact
  const src = loadModelDir(dir, { config, quantization, dtypes: ['f16', 'bf16', 'q8_0'] }).weights;
  onStage(1, 3, `converting to ${dtype}`);
  const weights: Weights = convertWeights(src, config, dtype);
  const tensors: Record<string, number> = {};
  for (const s of allParamSpecs(config)) {
    const d = weights.weight(s.name).dtype;
    tensors[d] = (tensors[d] ?? 0) + 1;
    if (!isProductWeight(s, config) && d !== 'f32') throw new Error(`quantize: "${s.name}" would be ${d}`);
  }
  const copied = TOKENIZER_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
  const section = quantizationSection(dtype);
  const cfg = { ...toHfConfig(config), ...(section ? { quantization: section } : {}) };
  onStage(2, 3, 'writing');
  replaceDirAtomic(out, (tmp) => {
    fs.writeFileSync(path.join(tmp, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
    for (const f of copied) fs.copyFileSync(path.join(dir, f), path.join(tmp, f));
    saveStoredWeights(path.join(tmp, 'model.safetensors'), config, weights);
  });
  return {
    model: dir,
    out,
    dtype,
    bytes_in: weightFilesBytes(dir),
    bytes_out: fs.statSync(path.join(out, 'model.safetensors')).size,
    tensors,
    copied,
  };
}

const mb = (b: number): string => `${(b / 1e6).toFixed(1)} MB`;

export function register(program: Command): void {
  program
    .command('quantize')
    .description('write a copy of a model with its weight matrices stored as int8 (q8_0), f16 or bf16')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .requiredOption('--dtype <dtype>', `weight dtype: ${USER_DTYPES.filter((d) => d !== 'f32').join(' | ')} (or f32)`)
    .requiredOption('--out <dir>', 'output model directory')
    .option('--force', 'replace --out when it exists and is not empty')
    .option('--json', 'print one JSON object {out, dtype, bytes_in, bytes_out, tensors, …}')
    .option(...QUIET_FLAG)
    .action((o: { model?: string; dtype: string; out: string; force?: boolean; json?: boolean; quiet?: boolean }) => {
      if (!(USER_DTYPES as readonly string[]).includes(o.dtype)) {
        throw new Error(`--dtype must be one of ${USER_DTYPES.join(', ')}, got "${o.dtype}"`);
      }
      const bar = progressBar('quantize', 'stages', o.quiet);
      let r: QuantizeResult;
      try {
        r = quantizeModelDir(resolveModelDir(o.model), o.dtype as UserDtype, o.out, o.force === true, (i, n, what) =>
          bar.update(i, n, what),
        );
      } finally {
        bar.stop();
      }
      if (o.json) printJson(r);
      else {
        const kinds = Object.entries(r.tensors)
          .map(([d, n]) => `${n} ${d}`)
          .join(', ');
        process.stdout.write(
          `wrote ${r.out}: ${r.dtype}, model.safetensors ${mb(r.bytes_in)} -> ${mb(r.bytes_out)} ` +
            `(${(r.bytes_in / r.bytes_out).toFixed(2)}x smaller; tensors: ${kinds})\n`,
        );
      }
    });
}
