/**
 * The state one generation shares between its steps, whatever the mode: the model, the base and module KV
 * caches (kept in sync by position: module position t holds (h_t, x_{t+1})), the forward scratch, the token
 * history, the sampler, the stop conditions (EOS, max_new_tokens, context length), the AbortSignal and the live
 * statistics. Chained drafts (draft_tokens > 1) append module positions beyond the base's for one round; the mode
 * rolls them back before the module catches up with real (h, x) pairs.
 */
import type { KVCache } from '../model/kv-cache.js';
import type { BaseOutput, ForwardScratch, InferenceModel, LogitRows, ModuleOutput } from '../model/infer.js';
import { TokenHistory } from './history.js';
import type { ResolvedOptions } from './options.js';
import { Sampler, seededUniform } from './sampler.js';
import { emptyStats, type GenerationStats, type TokenEvent, type TokenSource } from './types.js';

/**
 * A model call a mode asks for. The modes do not call the model themselves: they yield the call, and whoever drives
 * the mode runs it — alone (`DecodeSession.run`, what `decode` does) or batched with other sessions' calls (a
 * server's scheduler) — stores `result` and resumes the mode. Outputs must live in the session's own scratch (the
 * modes keep them across later yields). Kernels are row-independent, so both ways give the same bits.
 */
export interface BaseCall {
  readonly call: 'base';
  readonly session: DecodeSession;
  /** Token ids for the next base positions (cache.length …). */
  readonly ids: ArrayLike<number>;
  readonly rows: LogitRows;
  result: BaseOutput | null;
}

export interface ModuleCall {
  readonly call: 'module';
  readonly session: DecodeSession;
  /** Rows (hidden[i], nextIds[i]) for the next module positions; logits of the last row are wanted. */
  readonly hidden: Float32Array;
  readonly nextIds: ArrayLike<number>;
  /** Logits [1, V] of the last row. */
  result: Float32Array | null;
  /**
   * The module's hidden rows u [M, C] (its last block's output, before the final norm: forwardModuleOut's `hidden`),
   * set together with `result`. A chained draft step feeds the last row back in place of h.
   */
  resultHidden: Float32Array | null;
}

export type ModelCall = BaseCall | ModuleCall;

/** What a mode's generator yields: a token for the caller, or a model call for its driver. */
export type DecodeStep = TokenEvent | ModelCall;

export function isModelCall(step: DecodeStep): step is ModelCall {
  return 'call' in step;
}

/**
 * What one generation writes: its KV caches and the scratch its forward outputs live in. The modes keep outputs
 * across a `yield` (recycle and verified hold h, verified a second logits row), so generations that interleave need
 * a set each; without `scratch` the model's shared one is used (fine for one generation run to the end).
 */
export interface SessionCaches {
  base: KVCache;
  module: KVCache | null;
  scratch?: { base: ForwardScratch; module: ForwardScratch | null };
}

export class DecodeSession {
  readonly history: TokenHistory;
  readonly sampler: Sampler;
  readonly stats: GenerationStats;
  /** Generated ids so far. */
  readonly output: number[] = [];
  readonly maxLength: number;
  private readonly eos: Set<number>;
  private readonly t0 = performance.now();
  private finished = false;

  constructor(
    readonly model: InferenceModel,
    readonly prompt: readonly number[],
    readonly options: ResolvedOptions,
    eosIds: readonly number[],
    readonly caches: SessionCaches,
  ) {
    const V = model.config.vocabSize;
    this.history = new TokenHistory(V, prompt);
    this.sampler = new Sampler(options, V, seededUniform(options.seed));
    this.stats = emptyStats(options.mode, prompt.length, options.seed, options.draftTokens);
    this.eos = new Set(eosIds);
    this.maxLength = Math.min(model.config.maxPositions, caches.base.maxT, caches.module?.maxT ?? Infinity);
    caches.base.reset();
    caches.module?.reset();
  }

  /**
   * Whether the full model checks what this session's module calls draft (verified mode): such calls may read the
   * module's cheaper copy (model/module-dtype.ts); recycle's are emitted as they are.
   */
  get checksDrafts(): boolean {
    return this.options.mode === 'verified';
  }

  /** True once EOS, max_new_tokens or the context length ended the generation. */
  get done(): boolean {
    return this.finished;
  }

  /** How many more tokens may be emitted (max_new_tokens and the context length). */
  room(): number {
    if (this.finished) return 0;
    return Math.min(this.options.maxNewTokens - this.output.length, this.maxLength - this.history.length);
  }

  /** Throw the signal's reason if the caller aborted. */
  checkAbort(): void {
    const sig = this.options.signal;
    if (sig?.aborted)
      throw sig.reason instanceof Error
        ? sig.reason
        : new Error(`generation aborted${sig.reason !== undefined ? `: ${String(sig.reason)}` : ''}`);
  }

  /** The prompt in one batched forward: h for every prompt position, logits for the last. */
  *prefill(): Generator<ModelCall, BaseOutput, void> {
    const out = yield* this.full(this.prompt, 'last');
    this.stats.prefill_seconds = (performance.now() - this.t0) / 1000;
    return out;
  }

  /** A full call on `ids` at the next base positions. */
  *full(ids: ArrayLike<number>, rows: LogitRows): Generator<ModelCall, BaseOutput, void> {
    this.checkAbort();
    this.stats.full_calls++;
    const call: BaseCall = { call: 'base', session: this, ids, rows, result: null };
    yield call;
    if (!call.result) throw new Error('decode: a full call was resumed before it ran');
    return call.result;
  }

  /** A module call on rows (h[i], nextIds[i]) at the next module positions; logits of the last row. */
  *module(hidden: Float32Array, nextIds: ArrayLike<number>): Generator<ModelCall, Float32Array, void> {
    return (yield* this.moduleOut(hidden, nextIds)).logits;
  }

  /**
   * A module call returning the logits of the last row and the module's hidden rows u. Not `chained`: the rows catch
   * the module up with the base (module position t holds (h_t, x_{t+1}), so it ends level with the base cache).
   * `chained`: one draft step ahead of the base, on the previous step's u and its draft (ARCHITECTURE.md §1.3).
   */
  *moduleOut(
    hidden: Float32Array,
    nextIds: ArrayLike<number>,
    chained = false,
  ): Generator<ModelCall, ModuleOutput, void> {
    this.checkAbort();
    const cache = this.caches.module;
    if (!cache) throw new Error('decode: this mode needs a module cache');
    const base = this.caches.base.length;
    if (chained ? cache.length < base : cache.length + nextIds.length !== base) {
      throw new Error(
        `decode: module cache (${cache.length} + ${nextIds.length}${chained ? ', chained' : ''}) ` +
          `out of step with the base cache (${base})`,
      );
    }
    this.stats.module_calls++;
    const call: ModuleCall = { call: 'module', session: this, hidden, nextIds, result: null, resultHidden: null };
    yield call;
    if (!call.result || !call.resultHidden) throw new Error('decode: a module call was resumed before it ran');
    return { logits: call.result, hidden: call.resultHidden };
  }

  /** Run one of this session's calls by itself, on its caches and scratch. */
  run(call: ModelCall): void {
    if (call.session !== this) throw new Error("decode: a call was run by another session's driver");
    const { base, module, scratch } = this.caches;
    if (call.call === 'base') {
      call.result = this.model.forwardBase(call.ids, base, call.rows, scratch?.base);
    } else {
      if (!module) throw new Error('decode: this mode needs a module cache');
      const out = this.model.forwardModuleOut(
        call.hidden,
        call.nextIds,
        module,
        'last',
        scratch?.module ?? undefined,
        this.checksDrafts,
      );
      call.result = out.logits;
      call.resultHidden = out.hidden;
    }
  }

  /**
   * Record a generated token; ends the generation on EOS or when no room is left. `depth`: the draft position of a
   * recycled, accepted or replaced token (1 = the first draft after a full call); counted in the per-depth stats.
   */
  emit(id: number, source: TokenSource, depth?: number): TokenEvent {
    if (this.finished) throw new Error('decode: emit after the generation ended');
    const ev: TokenEvent = { id, source, index: this.output.length };
    if (depth !== undefined) ev.depth = depth;
    this.output.push(id);
    this.history.push(id);
    const s = this.stats;
    s.tokens++;
    if (source === 'accepted') s.accepted++;
    else if (source === 'replaced') s.rejected++;
    else if (source === 'recycled') s.recycled++;
    if (depth !== undefined && source !== 'full') {
      if (source === 'recycled') bump(s.drafted_by_depth, depth);
      else {
        bump(s.checked_by_depth, depth);
        // accepted_by_depth as long as checked_by_depth (a 0 where no draft at a depth was accepted)
        if (source === 'accepted') bump(s.accepted_by_depth, depth);
        else while (s.accepted_by_depth.length < depth) s.accepted_by_depth.push(0);
      }
    }
    s.seconds = (performance.now() - this.t0) / 1000;
    s.tokens_per_s = s.seconds > 0 ? s.tokens / s.seconds : 0;
    if (this.eos.has(id)) this.end('eos');
    else if (this.output.length >= this.options.maxNewTokens) this.end('length');
    else if (this.history.length >= this.maxLength) this.end('context');
    return ev;
  }

  /** End the generation (also used by the caller for stop strings). */
  end(reason: GenerationStats['finish_reason']): void {
    this.finished = true;
    this.stats.finish_reason ??= reason;
  }
}

/** counts[depth − 1]++, growing the array with zeros. */
export function bump(counts: number[], depth: number): void {
  while (counts.length < depth) counts.push(0);
  counts[depth - 1]!++;
}
