/**
 * `recyclegpt bench (--model DIR | --preset NAME) [--modes standard,recycle,verified] [--threads N] [--json]`:
 * decode speed of every mode measured in one process (ARCHITECTURE.md §9, §6). A preset runs random weights with a
 * random module (speed only); a trained model also gives a meaningful acceptance. --json prints
 * {model, threads, backend, bandwidth_gbs, bandwidth_samples_gbs, roofline_tokens_per_s, call_timings,
 * runs: [{dtype, mode, tokens_per_s, speedup_vs_standard, full_calls_per_token, acceptance, bytes_per_token,
 * roofline_tokens_per_s, roofline_fraction, samples}], …} on the last line of stdout.
 */
import type { Command } from 'commander';
import { InferenceModel } from '../model/infer.js';
import { loadModelDir } from '../io/model-dir.js';
import { presetNames } from '../model/presets.js';
import { DECODE_MODES, type DecodeMode } from '../generate/types.js';
import { formatDecodeBench, runDecodeBench } from '../bench/decode.js';
import { randomPresetModel } from '../bench/random-model.js';
import { BENCH_TEXT_PROMPTS, textPromptsFor } from '../bench/prompts.js';
import { resolveModelDir } from './default-model.js';
import { intOption, printJson, cliBackend } from './options.js';

function parseModes(v: string): DecodeMode[] {
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const m of list)
    if (!(DECODE_MODES as readonly string[]).includes(m))
      throw new Error(`--modes: unknown mode "${m}" (known: ${DECODE_MODES.join(', ')})`);
  if (list.length === 0) throw new Error('--modes: give at least one mode');
  return list as DecodeMode[];
}

interface BenchCliOptions {
  model?: string;
  preset?: string;
  modes?: string;
  threads?: number;
  tokens: number;
  repeats: number;
  prompts: number;
  bandwidth: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('bench')
    .description('decode speed of standard / recycle / verified in one run, with the bandwidth roofline')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .option('--preset <name>', `random weights of a preset shape (${presetNames().join(', ')}); speed only`)
    .option('--modes <list>', 'comma-separated modes (default: all the model supports)')
    .option('--threads <n>', 'kernel threads', intOption('--threads', 1, 256))
    .option('--tokens <n>', 'new tokens per prompt', intOption('--tokens', 2, 100_000), 64)
    .option('--repeats <n>', 'repeats per mode (median reported)', intOption('--repeats', 1, 1000), 3)
    .option(
      '--prompts <n>',
      `number of prompts (a model with a tokenizer: English openings, at most ${BENCH_TEXT_PROMPTS.length})`,
      intOption('--prompts', 1, 100),
      2,
    )
    .option('--no-bandwidth', 'skip the read-bandwidth measurement')
    .option('--json', 'print one JSON object on the last line')
    .action((o: BenchCliOptions) => {
      if (o.model && o.preset) throw new Error('give --model or --preset, not both');
      const backend = cliBackend();
      if (o.threads !== undefined) backend.setThreads(o.threads);
      const log = (line: string): void => void process.stderr.write(`${line}\n`);
      let model: InferenceModel, name: string, prompts: number[][] | undefined;
      if (o.preset) {
        log(`initialising ${o.preset} with random weights…`);
        model = randomPresetModel(o.preset, backend);
        name = `preset:${o.preset}`;
      } else {
        const dir = resolveModelDir(o.model);
        const { config, weights } = loadModelDir(dir);
        model = new InferenceModel(config, weights, backend);
        name = dir;
        prompts = textPromptsFor(dir, Math.min(o.prompts, BENCH_TEXT_PROMPTS.length)) ?? undefined;
        if (!prompts) log(`${dir}: no tokenizer; benchmarking on random token ids`);
      }
      const modes = o.modes ? parseModes(o.modes) : undefined;
      const result = runDecodeBench(model, {
        name,
        modes,
        prompts,
        promptCount: o.prompts,
        tokens: o.tokens,
        repeats: o.repeats,
        bandwidth: o.bandwidth,
        log,
      });
      // With --json the table goes to stderr, so stdout holds only the JSON line.
      (o.json ? process.stderr : process.stdout).write(`${formatDecodeBench(result)}\n`);
      if (o.json) printJson(result);
    });
}
