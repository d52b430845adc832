/**
 * `recyclegpt bench (--model DIR | --preset NAME) [--modes standard,recycle,verified] [--threads N] [--backend KIND]
 * [--dtypes f32,f16,bf16,int8] [--draft-tokens 1,2,3,auto] [--vs-llama-cpp] [--json]`: decode speed of every mode and
 * weight dtype measured in one process (ARCHITECTURE.md §9, §6). Verified runs once per --draft-tokens value (default
 * 1,2,3,auto: chained drafts); recycle at k = 1, or at each integer of --draft-tokens when it is given. A preset runs
 * random weights with a random module (speed only); a trained model also gives a meaningful acceptance, on English
 * openings (bench/prompts.ts; all 4 by default, 64 new tokens each, 5 repeats: on a noisy 2-vCPU machine one repeat's
 * ratio moves by ±15%, the median of 5 much less). --dtypes defaults to the model's own dtype (what generate runs; a
 * preset: f32). Each dtype's model holds its product weights as stored in that dtype (int8 = q8_0); a dtype the backend
 * does not read is skipped and said so, never measured converted back to f32. --vs-llama-cpp exports each dtype's
 * weights as GGUF (F32 / F16 / Q8_0) and runs llama.cpp's standard greedy decode on the same prompts, threads and token
 * counts (bench/llama-cpp.ts; `npm run peers:install`), and the prefill of one --prefill-token prompt (512) for both.
 * --json prints {model, threads, backend, bandwidth_gbs, bandwidth_samples_gbs, roofline_tokens_per_s, call_timings,
 * runs: [{dtype, mode, draft_tokens, tokens_per_s, speedup_vs_standard, speedup_range ([min, max] of the per-repeat
 * ratios), full_calls_per_token, acceptance, acceptance_by_depth, tokens_per_full_call, rounds_by_draft_tokens,
 * bytes_per_token, roofline_tokens_per_s, roofline_fraction, samples, vs_llama_cpp?}], prefill: [{dtype, tokens,
 * tokens_per_s, vs_llama_cpp?}], llama_cpp?: [{dtype, ggml_type, tokens_per_s, prefill_tokens_per_s, …}], skipped?, …}
 * on the last line of stdout: one entry in runs per dtype × mode × draft_tokens; speedup_vs_standard is against our
 * standard at the same dtype; roofline_tokens_per_s and the byte counts at the top are the first dtype's.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { Backend } from '../kernels/backend.js';
import { createBackend, type BackendKind } from '../kernels/index.js';
import { InferenceModel } from '../model/infer.js';
import type { ModelConfig } from '../model/config.js';
import { convertWeights, storageDtype, USER_DTYPES, type UserDtype } from '../model/convert.js';
import { isProductWeight, allParamSpecs } from '../model/names.js';
import type { Weights } from '../model/weights.js';
import { loadCliModel } from './load-model.js';
import { draftVocabOf } from '../io/draft-vocab-file.js';
import type { DraftHeadDtype } from '../model/draft-head.js';
import { readJsonFile } from '../io/files.js';
import { exportGguf, placeholderTokenizerJson, type GgufExportDtype } from '../io/gguf.js';
import { presetConfig, presetNames } from '../model/presets.js';
import { DECODE_MODES, type DecodeMode, type DraftTokens } from '../generate/types.js';
import type { ModuleDtype } from '../model/module-dtype.js';
import { draftHeadDtypeOption, draftTokensFlag, moduleDtypeOption } from './generation-flags.js';
import {
  benchVariants,
  formatDecodeBench,
  measurePrefill,
  randomPrompts,
  runDecodeBench,
  selfGeneratedRanking,
  speedupFields,
  type DecodeBenchResult,
  type DecodeBenchRun,
  type LlamaCppRun,
  type PrefillRun,
} from '../bench/decode.js';
import { median } from '../bench/bandwidth.js';
import { LlamaCppRunner, llamaCppInstalled, PEER_MISSING_MESSAGE } from '../bench/llama-cpp.js';
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

function parseDtypes(v: string): UserDtype[] {
  const list = [
    ...new Set(
      v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
  for (const d of list)
    if (!(USER_DTYPES as readonly string[]).includes(d))
      throw new Error(`--dtypes: unknown dtype "${d}" (known: ${USER_DTYPES.join(', ')})`);
  if (list.length === 0) throw new Error('--dtypes: give at least one dtype');
  return list as UserDtype[];
}

/** The GGUF type llama.cpp runs for one of our dtypes, or null where it is not compared. */
const GGUF_OF: Record<UserDtype, GgufExportDtype | null> = { f32: 'f32', f16: 'f16', bf16: null, int8: 'q8_0' };
const GGML_NAME: Record<GgufExportDtype, string> = { f32: 'F32', f16: 'F16', q8_0: 'Q8_0' };

/** Why `backend` cannot run `config` stored as `dtype` (a storage it does not read), or null. */
function unreadable(config: ModelConfig, dtype: UserDtype, backend: Backend): string | null {
  const need = new Set(
    allParamSpecs(config)
      .filter((s) => isProductWeight(s, config))
      .map((s) => storageDtype(dtype, s)),
  );
  const missing = [...need].filter((d) => !backend.weightDtypes.includes(d));
  return missing.length > 0
    ? `the ${backend.name} backend reads ${backend.weightDtypes.join(', ')} weights, not ${missing.join(', ')}`
    : null;
}

/** One dtype's model and what each repeat measured. */
interface DtypeState {
  dtype: UserDtype;
  model: InferenceModel;
  results: DecodeBenchResult[];
  prefill: number[];
  runner: LlamaCppRunner | null;
  ggml?: string;
  llama: number[];
  llamaPrefill: number[];
}

/** --draft-tokens: a comma-separated list of 1..7 and auto. */
function parseDraftTokens(v: string): DraftTokens[] {
  const list = [...new Set(v.split(',').map((s) => draftTokensFlag(s)))];
  if (list.length === 0) throw new Error('--draft-tokens: give at least one value');
  return list;
}

/** The report: per dtype × mode × draft_tokens, medians over repeats of the rates and of the paired ratios. */
function aggregate(
  states: DtypeState[],
  variants: ReturnType<typeof benchVariants>,
  repeats: number,
  threads: number,
  vs: boolean,
  skipped: { dtype: string; reason: string }[],
  prefillTokens: number,
): DecodeBenchResult {
  const runs: DecodeBenchRun[] = [];
  const prefill: PrefillRun[] = [];
  const llama: LlamaCppRun[] = [];
  for (const st of states) {
    const bw = st.results.flatMap((r) => r.bandwidth_samples_gbs);
    const gbs = bw.length > 0 ? median(bw) : null;
    const std = st.results.map((r) => r.runs.find((x) => x.mode === 'standard'));
    for (const { mode, draftTokens } of variants) {
      const per = st.results.map((r) => r.runs.find((x) => x.mode === mode && x.draft_tokens === draftTokens)!);
      const rates = per.map((x) => x.tokens_per_s);
      const fractions = per.map((x) => x.roofline_fraction);
      runs.push({
        ...per[0]!,
        tokens_per_s: median(rates),
        ...speedupFields(
          rates,
          std.map((x) => x?.tokens_per_s),
        ),
        roofline_tokens_per_s: gbs !== null ? (gbs * 1e9) / per[0]!.bytes_per_token : null,
        roofline_fraction: fractions.every((x) => x !== null) ? median(fractions as number[]) : null,
        samples: rates,
        ...(vs ? { vs_llama_cpp: st.runner ? median(rates.map((x, i) => x / st.llama[i]!)) : null } : {}),
      });
    }
    prefill.push({
      dtype: st.dtype,
      tokens: prefillTokens,
      tokens_per_s: median(st.prefill),
      samples: st.prefill,
      ...(vs ? { vs_llama_cpp: st.runner ? median(st.prefill.map((x, i) => x / st.llamaPrefill[i]!)) : null } : {}),
    });
    if (st.runner)
      llama.push({
        dtype: st.dtype,
        ggml_type: st.ggml!,
        tokens_per_s: median(st.llama),
        samples: st.llama,
        prefill_tokens: prefillTokens,
        prefill_tokens_per_s: median(st.llamaPrefill),
        prefill_samples: st.llamaPrefill,
      });
  }
  const first = states[0]!.results[0]!;
  const bw = states.flatMap((st) => st.results.flatMap((r) => r.bandwidth_samples_gbs));
  const gbs = bw.length > 0 ? median(bw) : null;
  return {
    ...first,
    threads,
    repeats,
    bandwidth_gbs: gbs,
    bandwidth_samples_gbs: bw,
    roofline_tokens_per_s: gbs !== null ? (gbs * 1e9) / first.full_call_bytes : null,
    runs,
    dtypes: states.map((st) => st.dtype),
    call_timings_by_dtype: states.flatMap((st) => {
      const t = st.results[0]!.call_timings;
      return t ? [{ dtype: st.dtype, ...t }] : [];
    }),
    prefill,
    ...(vs ? { llama_cpp: llama } : {}),
    ...(skipped.length > 0 ? { skipped } : {}),
    peak_rss_mb: process.resourceUsage().maxRSS / 1024,
  };
}

function allF32(w: Weights): boolean {
  return w.specs.every((s) => w.weight(s.name).dtype === 'f32');
}

interface BenchCliOptions {
  quiet?: boolean;
  model?: string;
  preset?: string;
  modes?: string;
  threads?: number;
  backend?: string;
  tokens: number;
  repeats: number;
  prompts?: number;
  bandwidth: boolean;
  dtypes?: string;
  vsLlamaCpp?: boolean;
  prefill: number;
  draftTokens?: string;
  draftVocab?: number;
  draftHeadDtype?: DraftHeadDtype;
  moduleDtype?: ModuleDtype;
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
    .option(
      '--backend <kind>',
      'kernels: native, wasm (WebAssembly; --threads > 1 starts workers), ref (default: RECYCLEGPT_BACKEND)',
    )
    .option('--tokens <n>', 'new tokens per prompt', intOption('--tokens', 2, 100_000), 64)
    .option('--repeats <n>', 'repeats per mode (median reported)', intOption('--repeats', 1, 1000), 5)
    .option(
      '--prompts <n>',
      `number of prompts (default: a model with a tokenizer, all ${BENCH_TEXT_PROMPTS.length} English openings; ` +
        'else 2 of random ids)',
      intOption('--prompts', 1, 100),
    )
    .option('--no-bandwidth', 'skip the read-bandwidth measurement')
    .option(
      '--dtypes <list>',
      `comma-separated weight dtypes, each run as stored (${USER_DTYPES.join(', ')}; default: the model's own, ` +
        'what generate runs; a preset: f32)',
    )
    .option('--vs-llama-cpp', 'also run llama.cpp on a GGUF export of the same weights (npm run peers:install)')
    .option(
      '--prefill <n>',
      'prompt length of the prefill measurement (capped at the context)',
      intOption('--prefill', 1, 1 << 20),
      512,
    )
    .option(
      '--draft-tokens <list>',
      'verified: comma-separated drafts per full call, 1..7 or auto (default 1,2,3,auto); recycle: its integers',
    )
    .option(
      '--draft-vocab <n>',
      "the module's head over the n most frequent ids (the model's draft_vocab.json; a preset: its first n ids)",
      intOption('--draft-vocab', 1, 1 << 24),
    )
    .option(...draftHeadDtypeOption())
    .option(...moduleDtypeOption())
    .option('--json', 'print one JSON object on the last line')
    .option('--quiet', 'no progress lines on stderr (one per run)')
    .action(async (o: BenchCliOptions) => {
      if (o.model && o.preset) throw new Error('give --model or --preset, not both');
      const givenDtypes = o.dtypes !== undefined ? parseDtypes(o.dtypes) : null;
      if (o.vsLlamaCpp && !llamaCppInstalled()) throw new Error(PEER_MISSING_MESSAGE);
      const backend = o.backend ? createBackend({ kind: o.backend as BackendKind }) : cliBackend();
      if (o.threads !== undefined) backend.setThreads(o.threads);
      // the per-run lines are bench's progress: --quiet drops them (the table and --json stay)
      const log = (line: string): void => void (o.quiet || process.stderr.write(`${line}\n`));
      let draftIds: Int32Array | null = null;
      let config: ModelConfig,
        name: string,
        prompts: number[][] | undefined,
        tokenizerJson: unknown = null,
        tokenizerFile = '(placeholder vocabulary)',
        source: Weights | null = null,
        storedDtype: UserDtype = 'f32';
      if (o.preset) {
        config = presetConfig(o.preset); // each dtype's model is built below, directly in its dtype
        name = `preset:${o.preset}`;
      } else {
        const dir = resolveModelDir(o.model);
        const loaded = loadCliModel(dir);
        config = loaded.config;
        source = loaded.weights;
        storedDtype = loaded.stored;
        name = dir;
        if (o.draftVocab !== undefined) draftIds = draftVocabOf(dir, o.draftVocab, config.vocabSize);
        const tokDir = loaded.tokenizerDir;
        prompts =
          textPromptsFor(tokDir, Math.min(o.prompts ?? BENCH_TEXT_PROMPTS.length, BENCH_TEXT_PROMPTS.length)) ??
          undefined;
        if (!prompts) log(`${dir}: no tokenizer; benchmarking on random token ids`);
        if (existsSync(join(tokDir, 'tokenizer.json'))) {
          tokenizerFile = join(tokDir, 'tokenizer.json');
          tokenizerJson = readJsonFile(tokenizerFile, 'tokenizer');
        }
      }
      prompts ??= randomPrompts(o.prompts ?? 2, 16, config.vocabSize);
      const prefillIds = randomPrompts(1, Math.min(o.prefill, config.maxPositions), config.vocabSize, 99)[0]!;
      const modes = o.modes ? parseModes(o.modes) : config.recycle ? [...DECODE_MODES] : (['standard'] as DecodeMode[]);
      // Verified at every --draft-tokens value; recycle (lossy) at k = 1 unless --draft-tokens names its ks.
      const draftTokens = parseDraftTokens(o.draftTokens ?? '1,2,3,auto');
      const ints = draftTokens.filter((k): k is number => k !== 'auto');
      const recycleDraftTokens = o.draftTokens && ints.length > 0 ? ints : [1];
      const variants = benchVariants(modes, draftTokens, recycleDraftTokens);
      // by default what generate runs: the stored dtype where the backend reads it, else widened to f32
      const dtypes = givenDtypes ?? [unreadable(config, storedDtype, backend) ? 'f32' : storedDtype];
      const threads = backend.threads();
      const skipped: { dtype: string; reason: string }[] = [];
      const states: DtypeState[] = [];
      const tmp = o.vsLlamaCpp ? mkdtempSync(join(tmpdir(), 'recyclegpt-bench-gguf-')) : null;
      try {
        for (const dtype of dtypes) {
          const why = unreadable(config, dtype, backend);
          if (why) {
            process.stderr.write(`${dtype}: skipped: ${why}\n`); // a warning, shown with --quiet too
            skipped.push({ dtype, reason: why });
            continue;
          }
          // Every dtype's model is the same weights, converted (f32 ones used as they are). A preset's random model is
          // built in the dtype directly (the same values, without an f32 copy held: llama-1b int8 fits its memory).
          if (!source) log(`${dtype}: initialising ${o.preset} with random weights…`);
          const weights = !source
            ? randomPresetModel(o.preset!, backend, 1, dtype).weights
            : dtype === 'f32' && allF32(source) && backend.name !== 'wasm' // wasm kernels read their own memory
              ? source
              : convertWeights(source, config, dtype, backend.alloc);
          const model = new InferenceModel(config, weights, backend);
          if (o.draftVocab !== undefined && !draftIds) {
            // a preset has no corpus: its ids ranked by the first dtype's model's own greedy text stand in
            log(`--draft-vocab ${o.draftVocab}: a preset: ids ranked by the model's own greedy continuations…`);
            draftIds = selfGeneratedRanking(model).slice(0, o.draftVocab);
          }
          if (o.draftHeadDtype !== undefined) model.setDraftHeadDtype(o.draftHeadDtype);
          if (o.moduleDtype !== undefined) model.setModuleDtype(o.moduleDtype);
          if (draftIds) model.setDraftVocab(draftIds);
          const st: DtypeState = {
            dtype,
            model,
            results: [],
            prefill: [],
            runner: null,
            llama: [],
            llamaPrefill: [],
          };
          states.push(st);
          const gg = GGUF_OF[dtype];
          if (tmp && !gg) skipped.push({ dtype, reason: 'llama.cpp is compared at f32, f16 and int8 (q8_0) only' });
          if (tmp && gg) {
            const file = join(tmp, `${dtype}.gguf`);
            log(`${dtype}: exporting GGUF ${GGML_NAME[gg]} for llama.cpp…`);
            const tok = tokenizerJson ?? placeholderTokenizerJson(config.vocabSize);
            exportGguf(config, weights, tok, tokenizerFile, file, { dtype: gg });
            const longest = Math.max(...prompts.map((p) => p.length)) + o.tokens;
            st.runner = await LlamaCppRunner.open(file, {
              threads,
              contextSize: Math.max(longest, prefillIds.length, 64),
            });
            st.ggml = GGML_NAME[gg];
            await st.runner.greedy(prompts[0]!, 8); // warm-up
          }
        }
        if (states.length === 0)
          throw new Error(`bench: no dtype could run (${skipped.map((k) => k.reason).join('; ')})`);
        // Repeats outermost: in each, every dtype runs our modes (rotated), our prefill, then llama.cpp's decode and
        // prefill, so drift on a shared machine hits them alike; ratios are paired within a repeat.
        for (let r = 0; r < o.repeats; r++) {
          for (const st of states) {
            const order = modes.map((_, i) => modes[(i + r) % modes.length]!);
            st.results.push(
              runDecodeBench(st.model, {
                name,
                modes: order,
                prompts,
                tokens: o.tokens,
                repeats: 1,
                bandwidth: o.bandwidth,
                callTimings: r === 0,
                dtype: st.dtype,
                draftTokens,
                recycleDraftTokens,
                log: (line) => log(`${st.dtype} ${line.replace('repeat 1/1', `repeat ${r + 1}/${o.repeats}`)}`),
              }),
            );
            st.prefill.push(measurePrefill(st.model, prefillIds, 1, st.dtype).tokens_per_s);
            let line = `${st.dtype} repeat ${r + 1}/${o.repeats}: prefill ${st.prefill[r]!.toFixed(1)} tokens/s`;
            if (st.runner) {
              st.llama.push(await st.runner.decodeRate(prompts, o.tokens));
              st.llamaPrefill.push(prefillIds.length / (await st.runner.prefillSeconds(prefillIds)));
              line +=
                `; llama.cpp ${st.ggml}: ${st.llama[r]!.toFixed(1)} tokens/s, ` +
                `prefill ${st.llamaPrefill[r]!.toFixed(1)} tokens/s`;
            }
            log(line);
          }
        }
      } finally {
        for (const st of states) await st.runner?.close();
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      }
      const result = aggregate(states, variants, o.repeats, threads, !!o.vsLlamaCpp, skipped, prefillIds.length);
      // With --json the table goes to stderr, so stdout holds only the JSON line.
      (o.json ? process.stderr : process.stdout).write(`${formatDecodeBench(result)}\n`);
      if (o.json) printJson(result);
    });
}
