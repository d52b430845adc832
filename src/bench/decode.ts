/**
 * Decode benchmark (`recyclegpt bench`, `npm run bench`): every mode on the same prompts in one process, greedy,
 * EOS ignored so every run makes the same number of tokens; modes interleaved and rotated across repeats so drift
 * on a shared machine hits them alike; medians over repeats. Reports tokens/s, the speedup over standard measured
 * in this run, full calls per token, acceptance (verified), and the bandwidth roofline: measured read bandwidth ÷
 * bytes of weights streamed per token (from the call counters: full calls × base bytes + module calls × module bytes).
 * Verified (and recycle) run once per draft_tokens value asked for (chained drafts, ARCHITECTURE.md §1.3); a run
 * reports its acceptance at each draft depth and, for auto, the k it chose per round.
 *
 * The memory bandwidth this shared machine gives us switches between ~40 and ~80 GB/s from one second to the next
 * (neighbours; seen in this bench's own probes), so one probe before the runs says little about what a run saw:
 * a probe (best of 3 passes over 256 MB: the peak, as a roofline wants) runs just before every mode's run, each
 * run is compared with its own probe, and the reported bandwidth is the median of all probes. Likewise a mode's
 * speedup is the median over repeats of its rate ÷ standard's rate in the same repeat.
 */
import type { Backend } from '../kernels/backend.js';
import type { InferenceModel } from '../model/infer.js';
import { createCaches, decodeAll } from '../generate/decode.js';
import { seededUniform } from '../generate/sampler.js';
import { DECODE_MODES, type DecodeMode, type DraftTokens } from '../generate/types.js';
import { measureReadBandwidth, median, type Bandwidth } from './bandwidth.js';
import { pairedSpeedup } from './stats.js';
import { measureCallTimings, type CallTimings } from './call-timing.js';
import type { Weight } from '../kernels/backend.js';
import type { UserDtype } from '../model/convert.js';
import { baseParamSpecs, moduleParamSpecs, topNames, type ParamSpec } from '../model/names.js';
import { rankByFrequency } from '../model/draft-vocab.js';
import type { CallBytes } from './weight-bytes.js';

/** Probe size: 8x the last-level cache of common CPUs, small enough to repeat at every repeat (~10 ms a pass). */
const PROBE_BYTES = 256 * 2 ** 20;

export interface DecodeBenchOptions {
  /** Shown as `model` in the report (a directory or "preset:NAME"). */
  name: string;
  modes?: readonly DecodeMode[];
  /** Prompts as token ids (default: `promptCount` random prompts of `promptLength` ids). */
  prompts?: number[][];
  promptCount?: number;
  promptLength?: number;
  /** New tokens per prompt (default 64). */
  tokens?: number;
  /** Repeats per mode; the median is reported (default 3). */
  repeats?: number;
  /** Probe the read bandwidth before every run (default true). */
  bandwidth?: boolean;
  /** Time the single calls too (default true). */
  callTimings?: boolean;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** The dtype the model's product weights are stored in (reported; the model is built in it by the caller). */
  dtype?: UserDtype;
  /** draft_tokens values verified runs with, each a run (default [1]). */
  draftTokens?: readonly DraftTokens[];
  /** draft_tokens values recycle runs with ('auto' is verified's only; default [1]). */
  recycleDraftTokens?: readonly number[];
}

export interface DecodeBenchRun {
  dtype: UserDtype;
  mode: DecodeMode;
  /** Drafts per full call (recycle, verified; 1 for standard). */
  draft_tokens: DraftTokens;
  /** The dtype module calls read the head in (model/draft-head.ts: a cheaper copy, or the head as stored). */
  draft_head_dtype?: string | null;
  /** The dtype module calls read the module's matrices in (model/module-dtype.ts: a q8_0 copy, or as stored). */
  module_dtype?: string | null;
  tokens_per_s: number;
  /** Median over repeats of (this mode's tokens/s ÷ standard's tokens/s in the same repeat); null without standard. */
  speedup_vs_standard: number | null;
  /** The [min, max] of those per-repeat ratios (how much the machine moved them); null without standard. */
  speedup_range: [number, number] | null;
  full_calls_per_token: number;
  /** Verified: accepted ÷ (accepted + rejected) drafts; null in other modes. */
  acceptance: number | null;
  /** Verified: per depth j, accepted ÷ judged drafts at depth j (judged: every shallower draft accepted). */
  acceptance_by_depth: (number | null)[] | null;
  /** Recycle / verified: tokens emitted per full call (prefill included). */
  tokens_per_full_call: number;
  /** Full calls that carried k drafts, by k (with auto: the k it chose). */
  rounds_by_draft_tokens: Record<string, number>;
  bytes_per_token: number;
  roofline_tokens_per_s: number | null;
  /**
   * The fraction of the read bandwidth this mode's weight reads reach: median over repeats of tokens/s × bytes per
   * token ÷ the bandwidth probed just before that repeat's run.
   */
  roofline_fraction: number | null;
  /** tokens/s of each repeat. */
  samples: number[];
  /** With --vs-llama-cpp: tokens/s ÷ llama.cpp's standard decode at the same precision (int8 ↔ Q8_0). */
  vs_llama_cpp?: number | null;
}

/** Prefill speed: one full call over a long prompt (512 tokens in the CLI) from an empty cache. */
export interface PrefillRun {
  dtype: UserDtype;
  tokens: number;
  tokens_per_s: number;
  samples: number[];
  /** With --vs-llama-cpp: ÷ llama.cpp's prefill at the same precision. */
  vs_llama_cpp?: number | null;
}

/** llama.cpp's standard decode and prefill of a GGUF export of the same weights (bench --vs-llama-cpp). */
export interface LlamaCppRun {
  dtype: UserDtype;
  /** The GGUF's tensor type: F32, F16, Q8_0. */
  ggml_type: string;
  tokens_per_s: number;
  samples: number[];
  prefill_tokens: number | null;
  prefill_tokens_per_s: number | null;
  prefill_samples: number[];
}

export interface DecodeBenchResult {
  model: string;
  threads: number;
  backend: string;
  /** Median of the probes (one just before every mode's run in every repeat). */
  bandwidth_gbs: number | null;
  bandwidth_samples_gbs: number[];
  bandwidth_method: string | null;
  /** Standard decoding's roofline: bandwidth ÷ the bytes of one full call. */
  roofline_tokens_per_s: number | null;
  full_call_bytes: number;
  module_call_bytes: number;
  /** Bytes a verified module call reads (its drafts may read the module's cheaper copy: model/module-dtype.ts). */
  verified_module_call_bytes: number;
  /** The size of the module head's draft vocabulary (model/draft-vocab.ts), null for the whole head. */
  draft_vocab?: number | null;
  /** Multi-dtype runs: each dtype's call timings (measured in the first repeat). */
  call_timings_by_dtype?: ({ dtype: UserDtype } & CallTimings)[];
  prompts: number;
  prompt_tokens: number;
  new_tokens: number;
  repeats: number;
  call_timings: CallTimings | null;
  runs: DecodeBenchRun[];
  /** Multi-dtype runs (bench --dtypes): the dtypes measured, in order. */
  dtypes?: UserDtype[];
  /** Dtypes asked for and not measured, with the reason (a backend that does not read that storage). */
  skipped?: { dtype: string; reason: string }[];
  prefill?: PrefillRun[];
  llama_cpp?: LlamaCppRun[];
  /** The process's peak resident memory (MB) at the end of the run: the models of every dtype, caches, scratch. */
  peak_rss_mb?: number;
}

interface Totals {
  seconds: number[];
  rates: number[];
  bw: number[];
  tokens: number;
  full: number;
  module: number;
  accepted: number;
  rejected: number;
  checked: number[];
  acceptedByDepth: number[];
  rounds: Record<string, number>;
}

/** One measured configuration: a mode at a draft_tokens value. */
export interface BenchVariant {
  mode: DecodeMode;
  draftTokens: DraftTokens;
}

/** "verified k=2", "verified auto", "verified" (k = 1), "standard". */
export function variantLabel(v: BenchVariant): string {
  if (v.mode === 'standard') return 'standard';
  if (v.draftTokens === 'auto') return `${v.mode} auto`;
  return v.draftTokens === 1 ? v.mode : `${v.mode} k=${v.draftTokens}`;
}

/** The runs of `modes`: standard once, recycle at each of `recycleK`, verified at each of `verifiedK`. */
export function benchVariants(
  modes: readonly DecodeMode[],
  verifiedK: readonly DraftTokens[] = [1],
  recycleK: readonly number[] = [1],
): BenchVariant[] {
  return modes.flatMap((mode): BenchVariant[] =>
    mode === 'standard'
      ? [{ mode, draftTokens: 1 }]
      : (mode === 'recycle' ? recycleK : verifiedK).map((draftTokens) => ({ mode, draftTokens })),
  );
}

function add(total: number[], part: readonly number[]): void {
  part.forEach((v, i) => (total[i] = (total[i] ?? 0) + v));
}

export function randomPrompts(count: number, length: number, vocab: number, seed = 1234): number[][] {
  const u = seededUniform(seed);
  return Array.from({ length: count }, () => Array.from({ length }, () => Math.floor(u.next() * vocab)));
}

/**
 * A draft-vocabulary ranking for a model without a corpus (a preset's random weights): every id ranked by how often
 * it appears in the model's own greedy continuations of `count` random prompts, seeded apart from
 * the bench's prompts, then by id (model/draft-vocab.ts rankByFrequency).
 */
export function selfGeneratedRanking(model: InferenceModel, count = 8, tokens = 64, seed = 4321): Int32Array {
  const V = model.config.vocabSize;
  const seen: number[] = [];
  randomPrompts(count, 16, V, seed).forEach((p, i) => {
    const r = decodeAll(model, p, { max_new_tokens: tokens, seed: seed + i });
    seen.push(...r.ids);
  });
  return rankByFrequency(seen, V);
}

/** speedup_vs_standard and speedup_range of a run from its per-repeat rates and standard's (stats.ts). */
export function speedupFields(
  rates: readonly number[],
  standard: readonly (number | null | undefined)[] | undefined,
): Pick<DecodeBenchRun, 'speedup_vs_standard' | 'speedup_range'> {
  const p = standard ? pairedSpeedup(rates, standard) : null;
  return { speedup_vs_standard: p?.median ?? null, speedup_range: p?.range ?? null };
}

export function runDecodeBench(model: InferenceModel, o: DecodeBenchOptions): DecodeBenchResult {
  const backend: Backend = model.backend,
    c = model.config,
    log = o.log ?? (() => {});
  const modes = [...(o.modes ?? (model.hasModule ? DECODE_MODES : ['standard' as const]))];
  for (const m of modes) {
    if (!DECODE_MODES.includes(m)) throw new Error(`bench: unknown mode "${m}" (known: ${DECODE_MODES.join(', ')})`);
    if (m !== 'standard' && !model.hasModule)
      throw new Error(`bench: mode "${m}" needs a recyclable module, and ${o.name} has none`);
  }
  const tokens = o.tokens ?? 64,
    repeats = o.repeats ?? 3;
  if (!Number.isInteger(tokens) || tokens < 2) throw new Error(`bench: tokens must be an integer ≥ 2, got ${tokens}`);
  if (!Number.isInteger(repeats) || repeats < 1)
    throw new Error(`bench: repeats must be a positive integer, got ${repeats}`);
  const prompts = o.prompts ?? randomPrompts(o.promptCount ?? 2, o.promptLength ?? 16, c.vocabSize);
  for (const p of prompts) {
    if (p.length + tokens > c.maxPositions)
      throw new Error(
        `bench: a ${p.length}-token prompt + ${tokens} new tokens exceed the context length ${c.maxPositions}`,
      );
  }
  // builds the module's draft head (model/draft-head.ts) and verified's module copy (module-dtype.ts) before any timing
  const bytes = storedCallBytes(model),
    checkedBytes = storedCallBytes(model, true);
  const headDtype = model.hasModule ? (model.draftHead?.dtype ?? model.weights.weight(topNames(c).head).dtype) : null;
  const moduleDtype = (checked: boolean): string | null =>
    model.moduleWeightDtype(checked)?.replace('_panels', '') ?? null;
  // The probe reads the model's own largest weight allocation in place where it holds PROBE_BYTES (a probe buffer
  // beside llama-1b's weights would add 256 MB to the peak resident memory); smaller models use the probe's buffer.
  const largest = [...model.weights.storage].sort((a, b) => b.byteLength - a.byteLength)[0];
  const probe = (): Bandwidth | null =>
    o.bandwidth === false ? null : measureReadBandwidth(backend, PROBE_BYTES, 3, 'best', largest);
  let calls: CallTimings | null = null;
  if (o.callTimings !== false) {
    calls = measureCallTimings(model);
    const moduleCalls =
      calls.module_m2_ms !== null
        ? `, module M=1 ${calls.module_m1_ms!.toFixed(2)} ms, M=2 ${calls.module_m2_ms.toFixed(2)} ms`
        : '';
    log(`calls: full M=1 ${calls.full_m1_ms.toFixed(2)} ms, M=2 ${calls.full_m2_ms.toFixed(2)} ms${moduleCalls}`);
  }
  const caches = createCaches(model);
  const variants = benchVariants(modes, o.draftTokens, o.recycleDraftTokens);
  const gen = (v: BenchVariant, p: number[], n: number) =>
    decodeAll(
      model,
      p,
      { mode: v.mode, max_new_tokens: n, eos_token_id: [], seed: 1, draft_tokens: v.draftTokens },
      caches,
    );
  for (const v of variants) gen(v, prompts[0]!, 8); // warm-up: JIT, page faults in the caches, auto's calibration
  const totals = new Map<BenchVariant, Totals>(
    variants.map((v) => [
      v,
      {
        seconds: [],
        rates: [],
        bw: [],
        tokens: 0,
        full: 0,
        module: 0,
        accepted: 0,
        rejected: 0,
        checked: [],
        acceptedByDepth: [],
        rounds: {},
      },
    ]),
  );
  const bwSamples: number[] = [];
  let bwMethod: string | null = null;
  for (let r = 0; r < repeats; r++) {
    const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
    for (const variant of order) {
      const t = totals.get(variant)!;
      const bw = probe();
      if (bw) {
        bwSamples.push(bw.gbs);
        t.bw.push(bw.gbs);
        bwMethod = bw.method;
      }
      let made = 0;
      const t0 = performance.now();
      for (const p of prompts) {
        const s = gen(variant, p, tokens).stats;
        made += s.tokens;
        t.full += s.full_calls;
        t.module += s.module_calls;
        t.accepted += s.accepted;
        t.rejected += s.rejected;
        add(t.checked, s.checked_by_depth);
        add(t.acceptedByDepth, s.accepted_by_depth);
        for (const [k, n] of Object.entries(s.rounds_by_draft_tokens)) t.rounds[k] = (t.rounds[k] ?? 0) + n;
      }
      const sec = (performance.now() - t0) / 1000;
      t.tokens += made;
      t.seconds.push(sec);
      t.rates.push(made / sec);
      log(
        `repeat ${r + 1}/${repeats} ${variantLabel(variant)}: ${(made / sec).toFixed(1)} tokens/s` +
          `${bw ? ` (read bandwidth just before: ${bw.gbs.toFixed(1)} GB/s)` : ''}`,
      );
    }
  }
  const std = [...totals].find(([v]) => v.mode === 'standard')?.[1];
  const gbs = bwSamples.length > 0 ? median(bwSamples) : null;
  const runs: DecodeBenchRun[] = variants.map((variant) => {
    const mode = variant.mode,
      t = totals.get(variant)!,
      rate = median(t.rates);
    const moduleBytes = mode === 'verified' ? checkedBytes.module : bytes.module;
    const bpt = (t.full * bytes.full + t.module * moduleBytes) / t.tokens;
    const drafts = t.accepted + t.rejected;
    const roof = gbs !== null ? (gbs * 1e9) / bpt : null;
    // Each run against the probe taken just before it (the machine's bandwidth moves between runs).
    const fraction =
      t.bw.length === t.rates.length && t.bw.length > 0
        ? median(t.rates.map((x, i) => (x * bpt) / (t.bw[i]! * 1e9)))
        : null;
    return {
      dtype: o.dtype ?? 'f32',
      mode,
      draft_tokens: variant.draftTokens,
      draft_head_dtype: mode === 'standard' ? null : headDtype,
      module_dtype: mode === 'standard' ? null : moduleDtype(mode === 'verified'),
      tokens_per_s: rate,
      ...speedupFields(t.rates, std?.rates),
      full_calls_per_token: t.full / t.tokens,
      acceptance: mode === 'verified' ? (drafts > 0 ? t.accepted / drafts : null) : null,
      acceptance_by_depth:
        mode === 'verified' ? t.checked.map((n, j) => (n > 0 ? (t.acceptedByDepth[j] ?? 0) / n : null)) : null,
      tokens_per_full_call: t.tokens / t.full,
      rounds_by_draft_tokens: t.rounds,
      bytes_per_token: bpt,
      roofline_tokens_per_s: roof,
      roofline_fraction: fraction,
      samples: t.rates,
    };
  });
  return {
    model: o.name,
    threads: backend.threads(),
    backend: backendLabel(backend),
    bandwidth_gbs: gbs,
    bandwidth_samples_gbs: bwSamples,
    bandwidth_method: bwMethod,
    roofline_tokens_per_s: gbs !== null ? (gbs * 1e9) / bytes.full : null,
    full_call_bytes: bytes.full,
    module_call_bytes: bytes.module,
    verified_module_call_bytes: checkedBytes.module,
    draft_vocab: model.draftHead?.vocabSize ?? null,
    prompts: prompts.length,
    prompt_tokens: Math.round(prompts.reduce((s, p) => s + p.length, 0) / prompts.length),
    new_tokens: tokens,
    repeats,
    call_timings: calls,
    runs,
  };
}

/** Bytes of a weight as stored (q8_0 / q4_0: the quants plus a float16 scale per 32). */
function storedBytes(w: Weight): number {
  return w.data.byteLength + ('scales' in w ? w.scales.byteLength : 0);
}

/**
 * weight-bytes.ts's call bytes in the model's own storage: a full call reads every base matrix once (the tied
 * embedding once, as the head; the position table and an untied embedding only touch rows), a module call reads
 * the module (its matrices as module calls, `checked` ones or not, read them: model/module-dtype.ts), the final norm
 * and the draft head.
 */
export function storedCallBytes(model: InferenceModel, checked = false): CallBytes {
  const c = model.config,
    t = topNames(c);
  const sum = (specs: readonly ParamSpec[]): number =>
    specs.reduce((s, p) => s + storedBytes(model.weights.weight(p.name)), 0);
  const rowOnly = new Set([t.positionEmbedding, c.tieEmbeddings ? null : t.tokenEmbedding]);
  const full = sum(baseParamSpecs(c).filter((s) => !rowOnly.has(s.name)));
  const head = sum(
    baseParamSpecs(c).filter((s) => s.name === t.head || s.name === t.finalNorm || s.name === t.finalNormBias),
  );
  // over a draft vocabulary the module reads its gathered head rows instead of the whole head (model/draft-vocab.ts)
  const draft = model.draftHead;
  const moduleHead = draft ? head - storedBytes(model.weights.weight(t.head)) + draft.bytes(checked) : head;
  if (!c.recycle) return { full, module: 0 };
  const read = model.moduleWeights(checked);
  const asRead = (p: ParamSpec): number =>
    storedBytes(p.shape.length === 2 ? read.weight(p.name) : model.weights.weight(p.name));
  return { full, module: moduleParamSpecs(c).reduce((s, p) => s + asRead(p), 0) + moduleHead };
}

/** Prefill tokens/s: `ids` through one full call from an empty cache, median over `repeats` (after a warm-up). */
export function measurePrefill(
  model: InferenceModel,
  ids: readonly number[],
  repeats: number,
  dtype: UserDtype,
): PrefillRun {
  const cache = model.newBaseCache(ids.length);
  model.forwardBase(ids.slice(0, Math.min(8, ids.length)), cache, 'last');
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    cache.reset();
    const t0 = performance.now();
    model.forwardBase(ids, cache, 'last');
    samples.push(ids.length / ((performance.now() - t0) / 1000));
  }
  return { dtype, tokens: ids.length, tokens_per_s: median(samples), samples };
}

function backendLabel(b: Backend): string {
  const simd = (b as { simd?: unknown }).simd;
  return typeof simd === 'string' ? `${b.name} (${simd})` : b.name;
}

/** The human-readable report. */
export function formatDecodeBench(r: DecodeBenchResult): string {
  const mb = (x: number): string => `${(x / 1e6).toFixed(1)} MB`;
  const checkedMb = r.verified_module_call_bytes;
  const vs = r.runs.some((x) => x.vs_llama_cpp !== undefined);
  const lines = [
    `model ${r.model}: full call ${mb(r.full_call_bytes)}` +
      `${r.module_call_bytes ? `, module call ${mb(r.module_call_bytes)}` : ''}` +
      `${checkedMb !== r.module_call_bytes ? ` (verified's ${mb(checkedMb)})` : ''}` +
      ` of ${r.runs[0]?.dtype ?? 'f32'} ` +
      'weights; ' +
      `${r.backend}, ${r.threads} thread(s)`,
    r.bandwidth_gbs !== null
      ? `read bandwidth ${r.bandwidth_gbs.toFixed(1)} GB/s (median of ${r.bandwidth_samples_gbs.length} probes, ` +
        `${r.bandwidth_samples_gbs.map((x) => x.toFixed(1)).join(' / ')}; ${r.bandwidth_method}) ` +
        `→ standard roofline ${r.roofline_tokens_per_s!.toFixed(1)} tokens/s`
      : 'read bandwidth not measured',
    ...(r.call_timings && !r.call_timings_by_dtype ? [callLine(r.call_timings)] : []),
    `${r.prompts} prompt(s) of ~${r.prompt_tokens} tokens, ${r.new_tokens} new tokens each, ` +
      `greedy, median of ${r.repeats}`,
    '',
    'dtype mode             tokens/s  speedup  (range)      full calls/token  acceptance  MB/token  roofline tok/s' +
      '  of roofline' +
      (vs ? '  vs llama.cpp' : '') +
      '  acceptance by depth',
  ];
  const ratio = (x: number | null | undefined): string => (x !== null && x !== undefined ? `${x.toFixed(2)}x` : '-');
  for (const x of r.runs) {
    lines.push(
      [
        x.dtype.padEnd(5),
        variantLabel({ mode: x.mode, draftTokens: x.draft_tokens }).padEnd(15),
        x.tokens_per_s.toFixed(1).padStart(9),
        ratio(x.speedup_vs_standard).padStart(8),
        (x.speedup_range ? `(${x.speedup_range.map((v) => v.toFixed(2)).join('–')})` : '').padEnd(12),
        x.full_calls_per_token.toFixed(3).padStart(16),
        (x.acceptance !== null ? `${(100 * x.acceptance).toFixed(1)}%` : '-').padStart(11),
        (x.bytes_per_token / 1e6).toFixed(1).padStart(9),
        (x.roofline_tokens_per_s !== null ? x.roofline_tokens_per_s.toFixed(1) : '-').padStart(15),
        (x.roofline_fraction !== null ? `${(100 * x.roofline_fraction).toFixed(0)}%` : '-').padStart(12),
        ...(vs ? [ratio(x.vs_llama_cpp).padStart(13)] : []),
        ` ${depthCell(x)}`,
      ].join(' '),
    );
  }
  for (const p of r.prefill ?? []) {
    const lc = r.llama_cpp?.find((l) => l.dtype === p.dtype);
    lines.push(
      `prefill ${p.dtype}: ${p.tokens} tokens at ${p.tokens_per_s.toFixed(1)} tokens/s` +
        (lc?.prefill_tokens_per_s
          ? `; llama.cpp ${lc.prefill_tokens_per_s.toFixed(1)} (${ratio(p.vs_llama_cpp)})`
          : ''),
    );
  }
  for (const l of r.llama_cpp ?? [])
    lines.push(
      `llama.cpp ${l.dtype} (${l.ggml_type}): standard ${l.tokens_per_s.toFixed(1)} tokens/s ` +
        `(${l.samples.map((x) => x.toFixed(1)).join(' / ')})`,
    );
  for (const k of r.skipped ?? []) lines.push(`${k.dtype}: not measured: ${k.reason}`);
  if (r.draft_vocab) lines.push(`module head over a draft vocabulary of ${r.draft_vocab} ids (--draft-vocab)`);
  const heads = new Map(r.runs.filter((x) => x.draft_head_dtype).map((x) => [x.dtype, x.draft_head_dtype!]));
  if (heads.size > 0)
    lines.push(
      `module calls read the head as ${[...heads].map(([d, h]) => `${h} (${d} model)`).join(', ')} ` +
        '(--draft-head-dtype)',
    );
  const mods = new Map<string, string>();
  for (const x of r.runs) {
    if (!x.module_dtype) continue;
    const per = `${x.module_dtype} in ${x.mode}`,
      had = mods.get(x.dtype);
    if (!had?.includes(per)) mods.set(x.dtype, had ? `${had}, ${per}` : per);
  }
  if (mods.size > 0)
    lines.push(
      `module calls read the module's matrices as ${[...mods].map(([d, m]) => `${m} (${d} model)`).join('; ')} ` +
        '(--module-dtype)',
    );
  for (const t of r.call_timings_by_dtype ?? []) lines.push(`${t.dtype} calls: ${callLine(t)}`);
  if (r.peak_rss_mb !== undefined) lines.push(`peak resident memory ${r.peak_rss_mb.toFixed(0)} MB`);
  return lines.join('\n');
}

/** "71% 52% 40%" per depth, and for auto the k it chose ("k=3×20 k=1×4"). */
function depthCell(x: DecodeBenchRun): string {
  const depth = x.acceptance_by_depth?.length ? x.acceptance_by_depth : null;
  const cells = depth ? depth.map((a) => (a === null ? '-' : `${(100 * a).toFixed(0)}%`)).join(' ') : '';
  const ks = Object.entries(x.rounds_by_draft_tokens).sort((a, b) => b[1] - a[1]);
  const chose = x.draft_tokens === 'auto' ? ` (chose ${ks.map(([k, n]) => `k=${k}×${n}`).join(' ')})` : '';
  return `${cells}${chose}`;
}

function callLine(t: CallTimings): string {
  const mod =
    t.module_m2_ms !== null
      ? `; module call M=1 ${t.module_m1_ms!.toFixed(2)} ms, M=2 ${t.module_m2_ms.toFixed(2)} ms ` +
        `→ recycle ideal ${t.recycle_ideal_speedup!.toFixed(2)}x`
      : '';
  const ratio = (t.full_m2_ms / t.full_m1_ms).toFixed(2);
  return `full call M=1 ${t.full_m1_ms.toFixed(2)} ms, M=2 ${t.full_m2_ms.toFixed(2)} ms (${ratio}x)${mod}`;
}
