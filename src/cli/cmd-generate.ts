/**
 * `recyclegpt generate [--model DIR] --prompt TEXT [--mode standard|recycle|verified] [--max-new-tokens N]
 *  [--temperature T --top-k K --top-p P --min-p P --repetition-penalty R --seed S] [--stop STR]… [--dtype D] [--json]`
 * --dtype f32|f16|bf16|int8 converts the weight matrices at load (int8: q8_0); default: as the directory stores them.
 * Streams the text to stdout as it is made (with --json, stdout holds only the final JSON line:
 * {text, tokens, tokens_per_s, full_calls, module_calls, accepted, rejected, mode, …}); a one-line summary goes to
 * stderr. Greedy unless --do-sample, a --temperature above 0, or --top-k/--top-p/--min-p is given. Ctrl-C aborts.
 */
import type { Command } from 'commander';
import { RecycleGPT } from '../generate/recyclegpt.js';
import type { GenerationOptions } from '../generate/options.js';
import { DECODE_MODES, type DecodeMode, type GenerationStats } from '../generate/types.js';
import { USER_DTYPES, type UserDtype } from '../model/convert.js';
import { allParamSpecs, isProductWeight } from '../model/names.js';
import { resolveModelDir } from './default-model.js';
import { floatOption, intOption, printJson, cliBackend } from './options.js';

interface GenerateCliOptions {
  model?: string;
  prompt?: string;
  promptIds?: string;
  mode: string;
  maxNewTokens: number;
  doSample?: boolean;
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repetitionPenalty?: number;
  seed?: number;
  stop: string[];
  threads?: number;
  dtype?: string;
  json?: boolean;
}

/** The --dtype value, checked (undefined: as stored). */
export function dtypeFlag(v: string | undefined): UserDtype | undefined {
  if (v === undefined) return undefined;
  if (!(USER_DTYPES as readonly string[]).includes(v))
    throw new Error(`--dtype must be one of ${USER_DTYPES.join(', ')}, got "${v}"`);
  return v as UserDtype;
}

function parseIdList(text: string): number[] {
  return text.split(',').map((p, i) => {
    const n = Number(p.trim());
    if (p.trim() === '' || !Number.isInteger(n) || n < 0)
      throw new Error(`--prompt-ids: item ${i} ("${p}") is not a non-negative integer`);
    return n;
  });
}

/** The generation options the flags describe. */
export function optionsFromFlags(o: GenerateCliOptions): GenerationOptions {
  if (!(DECODE_MODES as readonly string[]).includes(o.mode))
    throw new Error(`--mode must be one of ${DECODE_MODES.join(', ')}, got "${o.mode}"`);
  const sample =
    o.doSample === true ||
    (o.temperature !== undefined && o.temperature > 0) ||
    o.topK !== undefined ||
    o.topP !== undefined ||
    o.minP !== undefined;
  if (o.doSample && o.temperature === 0)
    throw new Error('--do-sample with --temperature 0: temperature 0 means greedy; give a temperature above 0');
  const g: GenerationOptions = { mode: o.mode as DecodeMode, max_new_tokens: o.maxNewTokens, do_sample: sample };
  if (sample && o.temperature !== undefined) g.temperature = o.temperature;
  if (o.topK !== undefined) g.top_k = o.topK;
  if (o.topP !== undefined) g.top_p = o.topP;
  if (o.minP !== undefined) g.min_p = o.minP;
  if (o.repetitionPenalty !== undefined) g.repetition_penalty = o.repetitionPenalty;
  if (o.seed !== undefined) g.seed = o.seed;
  if (o.stop.length > 0) g.stop_strings = o.stop;
  return g;
}

/** "verified: 64 tokens in 1.20 s, 53.3 tokens/s, 0.62 full calls/token, acceptance 61% (24/39)". */
export function summaryLine(s: GenerationStats): string {
  const parts = [
    `${s.mode}: ${s.tokens} tokens in ${s.seconds.toFixed(2)} s`,
    `${s.tokens_per_s.toFixed(1)} tokens/s`,
    `${s.tokens > 0 ? (s.full_calls / s.tokens).toFixed(2) : '-'} full calls/token`,
  ];
  if (s.mode === 'verified') {
    const n = s.accepted + s.rejected;
    parts.push(`acceptance ${n > 0 ? ((100 * s.accepted) / n).toFixed(0) : '-'}% (${s.accepted}/${n})`);
  }
  if (s.mode === 'recycle') parts.push(`${s.recycled} recycled`);
  parts.push(`finish: ${s.finish_reason ?? 'stopped'}`, `seed ${s.seed}`);
  return parts.join(', ');
}

export function register(program: Command): void {
  program
    .command('generate')
    .description('generate text from a prompt in standard, recycle or verified mode')
    .option('--model <dir>', 'model directory (default: the shipped model)')
    .option('--prompt <text>', 'prompt text')
    .option('--prompt-ids <list>', 'prompt as comma-separated token ids (models without a tokenizer)')
    .option('--mode <mode>', `decoding mode: ${DECODE_MODES.join(' | ')}`, 'standard')
    .option('--max-new-tokens <n>', 'tokens to generate at most', intOption('--max-new-tokens', 1, 1_000_000), 128)
    .option('--do-sample', 'sample (default: greedy unless a sampling flag is given)')
    .option('--temperature <t>', 'softmax temperature; 0 = greedy, above 0 samples', floatOption('--temperature', 0))
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off; default 50 when sampling)', intOption('--top-k', 0))
    .option('--top-p <p>', 'nucleus sampling mass in (0, 1]', floatOption('--top-p', 0, 1))
    .option('--min-p <p>', 'keep tokens with probability ≥ p · the top one', floatOption('--min-p', 0, 1))
    .option('--repetition-penalty <r>', 'CTRL repetition penalty (1 = off)', floatOption('--repetition-penalty', 0))
    .option('--seed <s>', 'sampling seed', intOption('--seed', 0, 2 ** 32 - 1))
    .option('--stop <text>', 'stop string (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--threads <n>', 'kernel threads', intOption('--threads', 1, 256))
    .option('--dtype <dtype>', `weight dtype at load: ${USER_DTYPES.join(' | ')} (default: as stored)`)
    .option(
      '--json',
      'print one JSON object {text, tokens, tokens_per_s, full_calls, module_calls, accepted, rejected, mode, …}',
    )
    .action(async (o: GenerateCliOptions) => {
      if ((o.prompt === undefined) === (o.promptIds === undefined))
        throw new Error('give exactly one of --prompt TEXT and --prompt-ids LIST');
      const opts = optionsFromFlags(o);
      const dtype = dtypeFlag(o.dtype);
      const backend = cliBackend();
      if (o.threads !== undefined) backend.setThreads(o.threads);
      const m = await RecycleGPT.load(resolveModelDir(o.model), {
        backend,
        dtype,
        onWarning: (w) => process.stderr.write(`recyclegpt: ${w}\n`),
      });
      const c = m.config;
      const storage = [
        ...new Set(
          allParamSpecs(c)
            .filter((sp) => isProductWeight(sp, c))
            .map((sp) => m.model.weights.weight(sp.name).dtype),
        ),
      ];
      const ac = new AbortController();
      const onInt = (): void => ac.abort(new Error('interrupted'));
      process.once('SIGINT', onInt);
      try {
        const stream = m.stream(o.prompt ?? parseIdList(o.promptIds!), { ...opts, signal: ac.signal });
        for await (const tok of stream) {
          if (!o.json && tok.text) process.stdout.write(tok.text);
        }
        if (!o.json) process.stdout.write(m.tokenizer ? '\n' : `${stream.ids.join(',')}\n`);
        const s = stream.stats;
        process.stderr.write(`${summaryLine(s)}\n`);
        if (o.json) {
          printJson({
            text: stream.text,
            tokens: s.tokens,
            tokens_per_s: s.tokens_per_s,
            full_calls: s.full_calls,
            module_calls: s.module_calls,
            accepted: s.accepted,
            rejected: s.rejected,
            mode: s.mode,
            ids: stream.ids,
            prompt_tokens: s.prompt_tokens,
            recycled: s.recycled,
            seconds: s.seconds,
            finish_reason: s.finish_reason,
            seed: s.seed,
            backend: backend.name,
            threads: backend.threads(),
            dtype: dtype ?? 'as stored',
            weight_storage: storage,
          });
        }
      } finally {
        process.off('SIGINT', onInt);
      }
    });
}
