/**
 * AdamW over a ParamStore, the learning-rate schedule and gradient clipping.
 */
import type { Backend } from '../kernels/backend.js';
import type { ParamInfo, ParamStore } from './params.js';

export interface AdamWConfig {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters get weight decay; default: matrices and embeddings (rank ≥ 2), not biases or norm gains. */
  decays?: (p: ParamInfo) => boolean;
}

/** Optimizer state for checkpoints: the number of steps taken and the two moment buffers (store order). */
export interface AdamWState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

interface Range {
  offset: number;
  size: number;
  decay: boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  /** Contiguous runs of parameters that share a decay flag: one adamw call each. */
  private readonly ranges: Range[] = [];
  private steps = 0;

  constructor(
    private readonly backend: Backend,
    private readonly store: ParamStore,
    config: AdamWConfig = {},
  ) {
    this.beta1 = config.beta1 ?? 0.9;
    this.beta2 = config.beta2 ?? 0.95;
    this.eps = config.eps ?? 1e-8;
    this.weightDecay = config.weightDecay ?? 0.1;
    for (const [name, beta] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const) {
      if (!(beta >= 0 && beta < 1)) throw new Error(`AdamW: ${name} must be in [0, 1), got ${beta}`);
    }
    if (!(this.eps > 0 && Number.isFinite(this.eps))) throw new Error(`AdamW: eps must be positive, got ${this.eps}`);
    if (!(this.weightDecay >= 0 && Number.isFinite(this.weightDecay)))
      throw new Error(`AdamW: weightDecay must be >= 0, got ${this.weightDecay}`);
    if (!store.finalized) throw new Error('AdamW: the ParamStore must be finalized first');
    const decays = config.decays ?? ((p: ParamInfo) => p.shape.length >= 2);
    for (const p of store.layout()) {
      const decay = decays(p);
      const last = this.ranges[this.ranges.length - 1];
      if (last && last.decay === decay && last.offset + last.size === p.offset) last.size += p.size;
      else this.ranges.push({ offset: p.offset, size: p.size, decay });
    }
    this.m = backend.alloc.f32(store.size);
    this.v = backend.alloc.f32(store.size);
  }

  /** Steps taken so far (the next step uses step count + 1 for bias correction). */
  get stepCount(): number {
    return this.steps;
  }

  /** One update of every parameter from the store's gradients. Does not clear the gradients. */
  step(lr: number): void {
    if (!(lr >= 0 && Number.isFinite(lr)))
      throw new Error(`AdamW: learning rate must be a finite number >= 0, got ${lr}`);
    const t = this.steps + 1;
    const { data, grad } = this.store;
    for (const r of this.ranges) {
      const end = r.offset + r.size;
      this.backend.adamw(
        r.size,
        data.subarray(r.offset, end),
        grad.subarray(r.offset, end),
        this.m.subarray(r.offset, end),
        this.v.subarray(r.offset, end),
        lr,
        this.beta1,
        this.beta2,
        this.eps,
        r.decay ? this.weightDecay : 0,
        t,
      );
    }
    this.steps = t;
  }

  /** A copy of the state, for a checkpoint. */
  exportState(): AdamWState {
    return { step: this.steps, m: this.m.slice(), v: this.v.slice() };
  }

  /**
   * The state as views of the live moments (no copy: a checkpoint of a 1B-parameter base's module would otherwise
   * hold a second 400 MB of moments while it writes). Valid until the next step().
   */
  stateView(): AdamWState {
    return { step: this.steps, m: this.m, v: this.v };
  }

  /** Restores a state from exportState() of an optimizer over the same parameter layout. */
  importState(state: AdamWState): void {
    const n = this.store.size;
    if (!Number.isInteger(state.step) || state.step < 0)
      throw new Error(`AdamW.importState: step must be an integer >= 0, got ${state.step}`);
    if (state.m.length !== n || state.v.length !== n) {
      throw new Error(
        `AdamW.importState: moments have ${state.m.length} and ${state.v.length} elements, the parameters ${n}`,
      );
    }
    this.m.set(state.m);
    this.v.set(state.v);
    this.steps = state.step;
  }
}

export interface CosineScheduleOptions {
  /** Steps of linear warm-up. */
  warmup: number;
  /** Step at which the decay reaches minLr (and stays there). */
  total: number;
  maxLr: number;
  minLr: number;
}

/**
 * lr(step) for a 0-based step: linear warm-up maxLr·(step+1)/warmup for step < warmup, then cosine decay from
 * maxLr (at step = warmup) to minLr (at step = total), then minLr.
 */
export function cosineSchedule(opts: CosineScheduleOptions): (step: number) => number {
  const { warmup, total, maxLr, minLr } = opts;
  if (!Number.isInteger(warmup) || warmup < 0)
    throw new Error(`cosineSchedule: warmup must be an integer >= 0, got ${warmup}`);
  if (!Number.isInteger(total) || total < warmup)
    throw new Error(`cosineSchedule: total must be an integer >= warmup (${warmup}), got ${total}`);
  if (!(Number.isFinite(maxLr) && Number.isFinite(minLr) && minLr >= 0 && minLr <= maxLr)) {
    throw new Error(`cosineSchedule: need 0 <= minLr <= maxLr (finite), got minLr ${minLr}, maxLr ${maxLr}`);
  }
  return (step: number): number => {
    if (!Number.isInteger(step) || step < 0)
      throw new Error(`cosineSchedule: step must be an integer >= 0, got ${step}`);
    if (step < warmup) return (maxLr * (step + 1)) / warmup;
    if (step >= total) return minLr;
    const progress = (step - warmup) / (total - warmup);
    return minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (maxLr - minLr);
  };
}

/**
 * Scales all gradients so their global L2 norm is at most maxNorm (Infinity: measure only). Returns the norm
 * before clipping. Throws when the norm is not finite, so training stops on NaN/Inf instead of corrupting weights.
 */
export function clipGradNorm(store: ParamStore, maxNorm: number, backend: Backend): number {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be > 0, got ${maxNorm}`);
  const grad = store.grad;
  const norm = Math.sqrt(backend.sumSquares(grad.length, grad));
  if (!Number.isFinite(norm))
    throw new Error(`clipGradNorm: gradient norm is ${norm} (a NaN or Inf gradient); stopping`);
  if (norm > maxNorm) backend.scale(grad.length, grad, maxNorm / norm);
  return norm;
}
