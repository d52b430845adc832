/**
 * The flags `generate` and `chat` share: decoding mode, length, sampling, seed, stop strings, threads, dtype; and
 * the prompt (`--prompt TEXT`, `--prompt-file FILE` or `-` for stdin, `--prompt-ids LIST`). Sampling follows the
 * API's rule (generate/options.ts ineffectiveSamplingWarning): greedy unless --do-sample; a sampling flag without it
 * changes nothing and gets a warning.
 */
import { draftVocabOf } from '../io/draft-vocab-file.js';
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ineffectiveSamplingWarning, type GenerationOptions } from '../generate/options.js';
import {
  DECODE_MODES,
  MAX_DRAFT_TOKENS,
  type DecodeMode,
  type DraftTokens,
  type GenerationStats,
} from '../generate/types.js';
import { USER_DTYPES, type UserDtype } from '../model/convert.js';
import { resolveModelDir } from './default-model.js';
import { RecycleGPT } from '../generate/recyclegpt.js';
import { choiceOption, cliBackend, floatOption, intOption, warnOnStderr } from './options.js';
import { DRAFT_HEAD_DTYPES, type DraftHeadDtype } from '../model/draft-head.js';
import { MODULE_DTYPES, type ModuleDtype } from '../model/module-dtype.js';

export interface GenerationFlags {
  model?: string;
  mode: string;
  maxNewTokens?: number;
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
  draftTokens?: string;
  draftVocab?: number;
  draftHeadDtype?: DraftHeadDtype;
  moduleDtype?: ModuleDtype;
}

export interface PromptFlags {
  prompt?: string;
  promptFile?: string;
  promptIds?: string;
}

/** The --dtype value, checked (undefined: as stored). */
export function dtypeFlag(v: string | undefined): UserDtype | undefined {
  if (v === undefined) return undefined;
  if (!(USER_DTYPES as readonly string[]).includes(v))
    throw new Error(`--dtype must be one of ${USER_DTYPES.join(', ')}, got "${v}"`);
  return v as UserDtype;
}

/** Adds the shared generation flags to `cmd`. */
export function addGenerationFlags(cmd: Command): Command {
  return cmd
    .option('--model <dir|name>', 'model directory or shipped model name (default: the shipped model)')
    .option('--mode <mode>', `decoding mode: ${DECODE_MODES.join(' | ')}`, 'standard')
    .option(
      '--max-new-tokens <n>',
      "tokens to generate at most (default: the model's generation_config.json, else 128)",
      intOption('--max-new-tokens', 1, 1_000_000),
    )
    .option('--do-sample', 'sample (default: greedy; the sampling flags below apply only with it)')
    .option(
      '--temperature <t>',
      'softmax temperature > 0 (with --do-sample; default 1)',
      floatOption('--temperature', 0),
    )
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off; default 50 when sampling)', intOption('--top-k', 0))
    .option('--top-p <p>', 'nucleus sampling mass in (0, 1]', floatOption('--top-p', 0, 1))
    .option('--min-p <p>', 'keep tokens with probability ≥ p · the top one', floatOption('--min-p', 0, 1))
    .option('--repetition-penalty <r>', 'CTRL repetition penalty (1 = off)', floatOption('--repetition-penalty', 0))
    .option('--seed <s>', 'sampling seed', intOption('--seed', 0, 2 ** 32 - 1))
    .option('--stop <text>', 'stop string (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--threads <n>', 'kernel threads', intOption('--threads', 1, 256))
    .option('--dtype <dtype>', `weight dtype at load: ${USER_DTYPES.join(' | ')} (default: as stored)`)
    .option(
      '--draft-tokens <k>',
      `recycle / verified: module drafts per full call, 1..${MAX_DRAFT_TOKENS} (default 1), or auto (verified)`,
    )
    .option(
      '--draft-vocab <n>',
      "recycle / verified: the module's head over the model's n most frequent ids (draft_vocab.json; default: all)",
      intOption('--draft-vocab', 1, 1 << 24),
    )
    .option(...draftHeadDtypeOption())
    .option(...moduleDtypeOption());
}

/** --draft-head-dtype, shared by generate, chat, serve, bench and eval (model/draft-head.ts). */
export function draftHeadDtypeOption(): [string, string, (v: string) => DraftHeadDtype] {
  return [
    '--draft-head-dtype <dtype>',
    `recycle / verified: the dtype module calls read the LM head in: ${DRAFT_HEAD_DTYPES.join(' | ')} ` +
      '(default auto: a cheaper copy, q8_0 for f32 / f16 / bf16 heads; model: the head as stored)',
    choiceOption('--draft-head-dtype', DRAFT_HEAD_DTYPES),
  ];
}

/** --module-dtype, shared by generate, chat, serve, bench and eval (model/module-dtype.ts). */
export function moduleDtypeOption(): [string, string, (v: string) => ModuleDtype] {
  return [
    '--module-dtype <dtype>',
    `recycle / verified: the dtype module calls read the module's matrices in: ${MODULE_DTYPES.join(' | ')} ` +
      '(default auto: a q8_0 copy where the native backend reads it as panels; model: as stored)',
    choiceOption('--module-dtype', MODULE_DTYPES),
  ];
}

/** A --draft-tokens value: an integer in [1, 7] or "auto". */
export function draftTokensFlag(v: string, flag = '--draft-tokens'): DraftTokens {
  const t = v.trim();
  if (t === 'auto') return 'auto';
  const n = Number(t);
  if (t === '' || !Number.isInteger(n) || n < 1 || n > MAX_DRAFT_TOKENS)
    throw new Error(`${flag} must be an integer in [1, ${MAX_DRAFT_TOKENS}] or "auto", got "${v}"`);
  return n;
}

const cliSpelling = { option: (k: string) => `--${k.replace(/_/g, '-')}`, doSample: '--do-sample' };

/**
 * The generation options the flags describe, and the warning for sampling flags that have no effect (or null).
 * `defaults`: the model's generation_config.json defaults (its do_sample makes the sampling flags count too).
 */
export function optionsFromFlags(
  o: GenerationFlags,
  defaults: GenerationOptions = {},
): { options: GenerationOptions; warning: string | null } {
  if (!(DECODE_MODES as readonly string[]).includes(o.mode))
    throw new Error(`--mode must be one of ${DECODE_MODES.join(', ')}, got "${o.mode}"`);
  const sample = o.doSample === true || defaults.do_sample === true;
  if (sample && o.temperature === 0)
    throw new Error(
      '--do-sample with --temperature 0: the temperature must be above 0 (leave out --do-sample for greedy)',
    );
  const asGiven: GenerationOptions = {
    do_sample: sample || undefined,
    temperature: o.temperature,
    top_k: o.topK,
    top_p: o.topP,
    min_p: o.minP,
  };
  const warning = ineffectiveSamplingWarning(asGiven, cliSpelling);
  // left out unless given, so that the model's generation_config.json defaults apply (RecycleGPT.generationConfig)
  const g: GenerationOptions = { mode: o.mode as DecodeMode };
  if (o.maxNewTokens !== undefined) g.max_new_tokens = o.maxNewTokens;
  if (o.doSample === true) g.do_sample = true;
  if (sample) {
    if (o.temperature !== undefined) g.temperature = o.temperature;
    if (o.topK !== undefined) g.top_k = o.topK;
    if (o.topP !== undefined) g.top_p = o.topP;
    if (o.minP !== undefined) g.min_p = o.minP;
  }
  if (o.repetitionPenalty !== undefined) g.repetition_penalty = o.repetitionPenalty;
  if (o.seed !== undefined) g.seed = o.seed;
  if (o.stop.length > 0) g.stop_strings = o.stop;
  if (o.draftTokens !== undefined) g.draft_tokens = draftTokensFlag(o.draftTokens);
  return { options: g, warning };
}

/** Comma-separated token ids; `flag` names the option in errors. */
export function parseIdList(text: string, flag: string): number[] {
  return text.split(',').map((p, i) => {
    const n = Number(p.trim());
    if (p.trim() === '' || !Number.isInteger(n) || n < 0)
      throw new Error(`${flag}: item ${i} ("${p}") is not a non-negative integer`);
    return n;
  });
}

/**
 * The prompt the flags give: --prompt TEXT, --prompt-file FILE (`-`: standard input; one trailing newline is
 * dropped, as a shell's `echo` or an editor adds it) or --prompt-ids LIST. Exactly one is needed.
 */
export function promptFromFlags(o: PromptFlags): string | number[] {
  const given = [o.prompt, o.promptFile, o.promptIds].filter((v) => v !== undefined).length;
  if (given !== 1)
    throw new Error(
      'give exactly one of --prompt TEXT (or the prompt as an argument), --prompt-file FILE (- for stdin) and ' +
        '--prompt-ids LIST',
    );
  if (o.promptIds !== undefined) return parseIdList(o.promptIds, '--prompt-ids');
  if (o.prompt !== undefined) return o.prompt;
  const file = o.promptFile!;
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new Error(`--prompt-file ${file}: ${why}`);
  }
  text = text.replace(/\r?\n$/, '');
  if (text.length === 0) throw new Error(`--prompt-file ${file === '-' ? '- (stdin)' : file}: the prompt is empty`);
  return text;
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
    if (s.checked_by_depth.length > 1)
      parts.push(`by depth ${s.checked_by_depth.map((n, j) => `${s.accepted_by_depth[j] ?? 0}/${n}`).join(' ')}`);
  }
  if (s.mode === 'recycle') parts.push(`${s.recycled} recycled`);
  if (s.mode !== 'standard' && s.draft_tokens !== 1) parts.push(`draft tokens ${draftChoice(s)}`);
  parts.push(`finish: ${s.finish_reason ?? 'stopped'}`, `seed ${s.seed}`);
  return parts.join(', ');
}

/** "3" or "auto (last k=3; rounds k=3: 12, k=1: 4)". */
function draftChoice(s: GenerationStats): string {
  if (s.draft_tokens !== 'auto') return String(s.draft_tokens);
  const used = Object.entries(s.rounds_by_draft_tokens)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `k=${k}: ${n}`);
  return `auto (last k=${s.draft_tokens_chosen ?? '-'}; rounds ${used.join(', ') || 'none'})`;
}

/** The model the flags name, on the CLI's backend (--threads), converted to --dtype; warnings go to stderr. */
export async function loadModelFromFlags(o: GenerationFlags): Promise<RecycleGPT> {
  const backend = cliBackend();
  if (o.threads !== undefined) backend.setThreads(o.threads);
  const dir = resolveModelDir(o.model);
  const m = await RecycleGPT.load(dir, { backend, dtype: dtypeFlag(o.dtype), onWarning: warnOnStderr });
  if (o.draftHeadDtype !== undefined) m.model.setDraftHeadDtype(o.draftHeadDtype);
  if (o.moduleDtype !== undefined) m.model.setModuleDtype(o.moduleDtype);
  if (o.draftVocab !== undefined) m.model.setDraftVocab(draftVocabOf(dir, o.draftVocab, m.model.config.vocabSize));
  return m;
}
