/**
 * Decode benchmark entry for `npm run bench` (bench/all.ts calls `benchDecode`) and standalone:
 *   node --import tsx bench/decode.ts [--preset gpt2-small | --model DIR] [--threads N] [--tokens N] [--repeats N]
 *     [--json]
 * Same measurement as `recyclegpt bench` (src/bench/decode.ts).
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { getBackend } from '../src/kernels/index.js';
import { InferenceModel } from '../src/model/infer.js';
import { loadModelDir } from '../src/io/model-dir.js';
import { formatDecodeBench, runDecodeBench, type DecodeBenchResult } from '../src/bench/decode.js';
import { randomPresetModel } from '../src/bench/random-model.js';
import { textPromptsFor } from '../src/bench/prompts.js';

export interface BenchDecodeOptions {
  preset?: string;
  model?: string;
  threads?: number;
  tokens?: number;
  repeats?: number;
  log?: (line: string) => void;
}

export function benchDecode(o: BenchDecodeOptions = {}): DecodeBenchResult {
  const backend = getBackend();
  if (o.threads !== undefined) backend.setThreads(o.threads);
  let model: InferenceModel, name: string, prompts: number[][] | undefined;
  if (o.model) {
    const { config, weights } = loadModelDir(o.model);
    model = new InferenceModel(config, weights, backend);
    name = o.model;
    prompts = textPromptsFor(o.model, 3) ?? undefined;
  } else {
    const preset = o.preset ?? 'gpt2-small';
    model = randomPresetModel(preset, backend);
    name = `preset:${preset}`;
  }
  return runDecodeBench(model, { name, prompts, tokens: o.tokens, repeats: o.repeats, log: o.log });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      preset: { type: 'string' },
      model: { type: 'string' },
      threads: { type: 'string' },
      tokens: { type: 'string' },
      repeats: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
  const r = benchDecode({
    preset: values.preset,
    model: values.model,
    threads: num(values.threads),
    tokens: num(values.tokens),
    repeats: num(values.repeats),
    log: (l) => void process.stderr.write(`${l}\n`),
  });
  process.stdout.write(`${formatDecodeBench(r)}\n`);
  if (values.json) process.stdout.write(`${JSON.stringify(r)}\n`);
}
