/**
 * Mode quality (ARCHITECTURE.md §9, `recyclegpt eval --mode-quality`): how much the lossy recycle mode (and the
 * lossless verified mode) change what the model writes, measured as the perplexity under the base model of the
 * continuations each mode generates from the same held-out prompts with the same seeds and sampler.
 *
 * Prompts (`heldoutPrompts`): the held-out token stream (documents tokenized in order, EOS after each) is cut into
 * N evenly spaced windows of P + K tokens (P prompt tokens, K new tokens): window i starts at
 * floor(i · (L − (P + K)) / max(1, N − 1)), i = 0..N−1, so the first window starts at token 0 and the last one ends at
 * the stream's end. The prompt is the window's first P tokens; the remaining K are the held-out reference text.
 * Windows may cross document boundaries (then the prompt holds an EOS).
 *
 * Generation: prompt i is decoded by every mode with seed `seed + i` and the same sampler settings (temperature
 * 0 = greedy; top-k and top-p only when given), at most K new tokens, stopping at EOS. Scoring: the base model's
 * next-token log-probabilities of the continuation tokens given prompt + preceding continuation, at temperature 1
 * and without sampler transforms (one batched full forward per continuation); a generated EOS is scored like any
 * token. ppl = exp(−Σ log p / Σ tokens) over all continuation tokens of all prompts of a mode.
 *
 * Uncertainty: each mode's text is one sample, so a ratio moves with the prompts drawn (with 100 prompts, verified —
 * standard's distribution exactly — reads 0.97–1.12 against standard). The result carries 95% intervals by the
 * paired bootstrap over prompts (prompts resampled with replacement, the same resample for every mode, 2000 times,
 * a fixed seed: reproducible), and recycle against the pooled lossless text (standard's and verified's continuations
 * together: two samples of standard decoding's distribution, so half the reference's own noise).
 */
import { createCaches, decode, eosIds } from '../generate/decode.js';
import { resolveOptions, type GenerationOptions } from '../generate/options.js';
import type { SessionCaches } from '../generate/session.js';
import { DECODE_MODES, type DecodeMode } from '../generate/types.js';
import type { InferenceModel } from '../model/infer.js';
import type { KVCache } from '../model/kv-cache.js';
import { Rng } from '../data/rng.js';
import { percentile } from './stats.js';

/** Bootstrap resamples of the ratio intervals and their seed. */
const BOOTSTRAP_RESAMPLES = 2000;
const BOOTSTRAP_SEED = 20230807;

/** Per prompt, a mode's summed NLL and token count (the bootstrap's unit). */
interface PromptScores {
  nll: number[];
  tokens: number[];
}

/**
 * 95% interval of ppl(a)/ppl(b) where each side pools the given modes' prompts, by the paired bootstrap over prompts:
 * the same resampled prompt indices for every mode.
 */
export function bootstrapRatio(
  a: readonly PromptScores[],
  b: readonly PromptScores[],
  resamples = BOOTSTRAP_RESAMPLES,
  seed = BOOTSTRAP_SEED,
): [number, number] {
  const n = a[0]!.nll.length;
  const rng = new Rng(seed),
    idx = new Int32Array(n),
    ratios: number[] = [];
  const logPpl = (side: readonly PromptScores[]): number => {
    let nll = 0,
      tokens = 0;
    for (const s of side)
      for (let k = 0; k < n; k++) {
        nll += s.nll[idx[k]!]!;
        tokens += s.tokens[idx[k]!]!;
      }
    return nll / tokens;
  };
  for (let r = 0; r < resamples; r++) {
    for (let k = 0; k < n; k++) idx[k] = rng.int(n);
    ratios.push(Math.exp(logPpl(a) - logPpl(b)));
  }
  return [percentile(ratios, 2.5), percentile(ratios, 97.5)];
}

export interface ModeQualityOptions {
  /** Number of held-out prompts N (default 50). */
  prompts?: number;
  /** Tokens per prompt P (default 32). */
  promptTokens?: number;
  /** New tokens per continuation K, at most (default 48). */
  newTokens?: number;
  /** Sampling temperature; 0 = greedy (default 0.8). */
  temperature?: number;
  /** Top-k filter when sampling (default: off). */
  topK?: number;
  /** Nucleus filter when sampling (default: off). */
  topP?: number;
  /** Prompt i is decoded with seed `seed + i` in every mode (default 0). */
  seed?: number;
  /** draft_tokens of recycle and verified: module tokens per full call (default 1, the paper's schedule). */
  draftTokens?: number;
  /** EOS used when the model config names none (e.g. the tokenizer's). */
  eosFallback?: number | null;
  /** Progress: called after each prompt. */
  onPrompt?: (done: number, total: number) => void;
}

export interface HeldoutPrompt {
  /** Offset of the window in the held-out stream. */
  start: number;
  prompt: number[];
  /** The K held-out tokens that follow the prompt. */
  reference: number[];
}

export interface ModeStats {
  /** Continuation tokens scored (EOS included when generated). */
  tokens: number;
  /** Σ −log p under the base, nats. */
  nll: number;
  ppl: number;
  full_calls: number;
  module_calls: number;
  accepted: number;
  rejected: number;
  recycled: number;
  /** Continuations that ended with EOS. */
  eos: number;
  /** Decoding time summed over prompts (scoring excluded), seconds. */
  seconds: number;
}

export interface ModeQualityResult {
  prompts: number;
  prompt_tokens: number;
  new_tokens: number;
  temperature: number;
  top_k: number | null;
  top_p: number | null;
  seed: number;
  /** Module tokens per full call in recycle and verified (draft_tokens). */
  draft_tokens: number;
  ppl_under_base: Record<DecodeMode, number>;
  ratio_recycle_vs_standard: number;
  ratio_verified_vs_standard: number;
  /** 95% paired-bootstrap intervals of the two ratios above (see the file comment). */
  ratio_recycle_vs_standard_ci95: [number, number];
  ratio_verified_vs_standard_ci95: [number, number];
  /** Recycle's ppl ÷ the ppl of standard's and verified's continuations pooled, and its 95% interval. */
  ratio_recycle_vs_lossless: number;
  ratio_recycle_vs_lossless_ci95: [number, number];
  /** Verified mode: accepted ÷ (accepted + rejected) drafts. */
  acceptance: number | null;
  /** The held-out reference continuations scored the same way (real text, for scale). */
  ppl_reference: number;
  tokens: Record<DecodeMode, number>;
  modes: Record<DecodeMode, ModeStats>;
  /** Prompt i's continuation ids per mode (for checks and inspection). */
  continuations: Record<DecodeMode, number[][]>;
  seconds: number;
}

/** The held-out prompts described at the top of this file. */
export function heldoutPrompts(
  tokens: ArrayLike<number>,
  count: number,
  promptTokens: number,
  newTokens: number,
): HeldoutPrompt[] {
  for (const [name, v, min] of [
    ['prompts', count, 1],
    ['prompt tokens', promptTokens, 1],
    ['new tokens', newTokens, 1],
  ] as const) {
    if (!Number.isInteger(v) || v < min)
      throw new RangeError(`mode quality: ${name} must be an integer >= ${min}, got ${v}`);
  }
  const W = promptTokens + newTokens,
    L = tokens.length;
  if (L - W + 1 < count) {
    throw new Error(
      `mode quality: the held-out split has ${L} tokens, ` +
        `too few for ${count} distinct windows of ${promptTokens} prompt + ${newTokens} new tokens; ` +
        'use fewer prompts, shorter prompts or more data',
    );
  }
  const out: HeldoutPrompt[] = [];
  for (let i = 0; i < count; i++) {
    const start = count === 1 ? 0 : Math.floor((i * (L - W)) / (count - 1));
    const slice = Array.from({ length: W }, (_, j) => tokens[start + j]!);
    out.push({ start, prompt: slice.slice(0, promptTokens), reference: slice.slice(promptTokens) });
  }
  return out;
}

/**
 * Log-probabilities under the base model (temperature 1, no transforms) of `continuation` given `prompt`:
 * one full forward over prompt + continuation[0..n−2], rows P−1..P+n−2. Returns one value per token.
 */
export function scoreContinuation(
  model: InferenceModel,
  prompt: readonly number[],
  continuation: readonly number[],
  cache?: KVCache,
): Float64Array {
  const n = continuation.length,
    P = prompt.length,
    V = model.config.vocabSize;
  const out = new Float64Array(n);
  if (n === 0) return out;
  if (P === 0) throw new RangeError('scoreContinuation: the prompt is empty');
  const seq = [...prompt, ...continuation.slice(0, n - 1)];
  if (seq.length > model.config.maxPositions) {
    throw new RangeError(
      `scoreContinuation: prompt (${P}) + continuation (${n}) − 1 tokens ` +
        `exceed the context length ${model.config.maxPositions}`,
    );
  }
  const c = cache ?? model.newBaseCache(seq.length);
  c.reset();
  const logits = model.forwardBase(seq, c, 'all').logits;
  for (let j = 0; j < n; j++) out[j] = logSoftmaxAt(logits, (P - 1 + j) * V, V, continuation[j]!);
  c.reset();
  return out;
}

/** log softmax(row)[id] in float64, for the row at `off` of length V. */
export function logSoftmaxAt(logits: Float32Array, off: number, V: number, id: number): number {
  if (!Number.isInteger(id) || id < 0 || id >= V)
    throw new RangeError(`token id ${id} is outside the vocabulary (${V})`);
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i]! > max) max = logits[off + i]!;
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[off + i]! - max);
  return logits[off + id]! - max - Math.log(sum);
}

function emptyModeStats(): ModeStats {
  return {
    tokens: 0,
    nll: 0,
    ppl: Number.NaN,
    full_calls: 0,
    module_calls: 0,
    accepted: 0,
    rejected: 0,
    recycled: 0,
    eos: 0,
    seconds: 0,
  };
}

/** Generation options of prompt `i` in `mode` (shared sampler, per-prompt seed). */
export function modeQualityGenerationOptions(
  mode: DecodeMode,
  i: number,
  o: Required<Pick<ModeQualityOptions, 'newTokens' | 'temperature' | 'seed'>> &
    Pick<ModeQualityOptions, 'topK' | 'topP' | 'draftTokens'>,
): GenerationOptions {
  const sample = o.temperature > 0;
  const g: GenerationOptions = { mode, max_new_tokens: o.newTokens, do_sample: sample, seed: o.seed + i };
  if (mode !== 'standard' && o.draftTokens !== undefined) g.draft_tokens = o.draftTokens;
  if (sample) {
    g.temperature = o.temperature;
    g.top_k = o.topK ?? 0;
    if (o.topP !== undefined) g.top_p = o.topP;
  }
  return g;
}

/**
 * Generate a continuation of every held-out prompt with each mode and score them under the base model.
 * `valTokens`: the held-out token stream. Throws when the model has no recyclable module.
 */
export function modeQuality(
  model: InferenceModel,
  valTokens: ArrayLike<number>,
  opts: ModeQualityOptions = {},
): ModeQualityResult {
  const N = opts.prompts ?? 50,
    P = opts.promptTokens ?? 32,
    K = opts.newTokens ?? 48;
  const temperature = opts.temperature ?? 0.8,
    seed = opts.seed ?? 0;
  if (!model.hasModule) {
    throw new Error(
      'mode quality compares standard, recycle and verified decoding, and this model has no recyclable module ' +
        '(its config.json has no "recycle" section): evaluate it without --mode-quality',
    );
  }
  if (!Number.isFinite(temperature) || temperature < 0)
    throw new RangeError(`mode quality: temperature must be >= 0, got ${temperature}`);
  if (!Number.isInteger(seed) || seed < 0 || seed + N - 1 > 2 ** 32 - 1)
    throw new RangeError(`mode quality: seed must be an integer in [0, 2^32 − prompts], got ${seed}`);
  const ctx = model.config.maxPositions;
  if (P + K > ctx) {
    throw new RangeError(
      `mode quality: ${P} prompt tokens + ${K} new tokens = ${P + K} exceed the model's context length ${ctx}; ` +
        `lower --prompt-tokens or --new-tokens`,
    );
  }
  const prompts = heldoutPrompts(valTokens, N, P, K);
  const genOpts = { newTokens: K, temperature, seed, topK: opts.topK, topP: opts.topP, draftTokens: opts.draftTokens };
  resolveOptions(modeQualityGenerationOptions('verified', 0, genOpts)); // draft_tokens checked before any call
  // Validate the sampler settings once, before any model call.
  const eos = eosIds(
    model,
    resolveOptions(modeQualityGenerationOptions('standard', 0, genOpts)),
    opts.eosFallback ?? null,
  );
  const caches: SessionCaches = createCaches(model, P + K);
  const scoreCache = model.newBaseCache(P + K);
  const modes = { standard: emptyModeStats(), recycle: emptyModeStats(), verified: emptyModeStats() };
  const continuations: Record<DecodeMode, number[][]> = { standard: [], recycle: [], verified: [] };
  const perPrompt: Record<DecodeMode, PromptScores> = {
    standard: { nll: [], tokens: [] },
    recycle: { nll: [], tokens: [] },
    verified: { nll: [], tokens: [] },
  };
  const t0 = performance.now();
  let refNll = 0,
    refTokens = 0;
  prompts.forEach((p, i) => {
    for (const mode of DECODE_MODES) {
      const run = decode(model, p.prompt, resolveOptions(modeQualityGenerationOptions(mode, i, genOpts)), caches, eos);
      for (const _ev of run) {
        /* the run collects ids and stats */
      }
      const ids = [...run.ids],
        st = run.stats,
        m = modes[mode];
      if (st.tokens !== ids.length)
        throw new Error(`mode quality: ${mode} reported ${st.tokens} tokens but emitted ${ids.length}`);
      let nll = 0;
      for (const lp of scoreContinuation(model, p.prompt, ids, scoreCache)) nll -= lp;
      perPrompt[mode].nll.push(nll);
      perPrompt[mode].tokens.push(ids.length);
      m.nll += nll;
      m.tokens += ids.length;
      m.full_calls += st.full_calls;
      m.module_calls += st.module_calls;
      m.accepted += st.accepted;
      m.rejected += st.rejected;
      m.recycled += st.recycled;
      m.seconds += st.seconds;
      if (st.finish_reason === 'eos') m.eos++;
      continuations[mode].push(ids);
    }
    for (const lp of scoreContinuation(model, p.prompt, p.reference, scoreCache)) refNll -= lp;
    refTokens += p.reference.length;
    opts.onPrompt?.(i + 1, N);
  });
  for (const m of Object.values(modes)) m.ppl = Math.exp(m.nll / m.tokens);
  const ppl = { standard: modes.standard.ppl, recycle: modes.recycle.ppl, verified: modes.verified.ppl };
  const drafts = modes.verified.accepted + modes.verified.rejected;
  const { standard: std, recycle: rec, verified: ver } = perPrompt;
  const lossless = Math.exp(
    (modes.standard.nll + modes.verified.nll) / (modes.standard.tokens + modes.verified.tokens),
  );
  return {
    prompts: N,
    prompt_tokens: P,
    new_tokens: K,
    temperature,
    top_k: temperature > 0 && opts.topK !== undefined ? opts.topK : null,
    top_p: temperature > 0 && opts.topP !== undefined ? opts.topP : null,
    seed,
    draft_tokens: opts.draftTokens ?? 1,
    ppl_under_base: ppl,
    ratio_recycle_vs_standard: ppl.recycle / ppl.standard,
    ratio_verified_vs_standard: ppl.verified / ppl.standard,
    ratio_recycle_vs_standard_ci95: bootstrapRatio([rec], [std]),
    ratio_verified_vs_standard_ci95: bootstrapRatio([ver], [std]),
    ratio_recycle_vs_lossless: ppl.recycle / lossless,
    ratio_recycle_vs_lossless_ci95: bootstrapRatio([rec], [std, ver]),
    acceptance: drafts > 0 ? modes.verified.accepted / drafts : null,
    ppl_reference: Math.exp(refNll / refTokens),
    tokens: { standard: modes.standard.tokens, recycle: modes.recycle.tokens, verified: modes.verified.tokens },
    modes,
    continuations,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** The human-readable table of a result. */
export function formatModeQuality(r: ModeQualityResult, title: string): string {
  const sampler =
    r.temperature > 0
      ? `temperature ${r.temperature}, top-k ${r.top_k ?? 'off'}, top-p ${r.top_p ?? 'off'}`
      : 'greedy (temperature 0)';
  const lines = [
    title,
    `${r.prompts} held-out prompts of ${r.prompt_tokens} tokens, up to ${r.new_tokens} new tokens, ` +
      `${sampler}, seeds ${r.seed}..${r.seed + r.prompts - 1}` +
      (r.draft_tokens !== 1 ? `; recycle and verified with ${r.draft_tokens} module tokens per full call` : ''),
    '',
    `${'mode'.padEnd(10)}${'tokens'.padStart(8)}${'ppl (base)'.padStart(13)}${'vs standard'.padStart(13)}` +
      `${'full calls/tok'.padStart(16)}${'acceptance'.padStart(12)}${'EOS'.padStart(6)}${'decode s'.padStart(10)}`,
  ];
  for (const mode of DECODE_MODES) {
    const m = r.modes[mode];
    const acc = mode === 'verified' && r.acceptance !== null ? `${(100 * r.acceptance).toFixed(1)}%` : '-';
    lines.push(
      `${mode.padEnd(10)}${String(m.tokens).padStart(8)}${m.ppl.toFixed(3).padStart(13)}` +
        `${(m.ppl / r.ppl_under_base.standard).toFixed(4).padStart(13)}` +
        `${(m.tokens > 0 ? m.full_calls / m.tokens : 0).toFixed(3).padStart(16)}${acc.padStart(12)}` +
        `${String(m.eos).padStart(6)}${m.seconds.toFixed(2).padStart(10)}`,
    );
  }
  const ci = (v: [number, number]): string => `[${v[0].toFixed(3)}, ${v[1].toFixed(3)}]`;
  lines.push(
    '',
    `95% intervals (paired bootstrap over prompts): recycle / standard ${ci(r.ratio_recycle_vs_standard_ci95)}, ` +
      `verified / standard ${ci(r.ratio_verified_vs_standard_ci95)}`,
    `recycle / lossless (standard's and verified's text pooled): ${r.ratio_recycle_vs_lossless.toFixed(4)} ` +
      ci(r.ratio_recycle_vs_lossless_ci95),
    `held-out reference text, scored the same way: ppl ${r.ppl_reference.toFixed(3)}`,
  );
  return `${lines.join('\n')}\n`;
}
