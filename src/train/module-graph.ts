/**
 * Training the recyclable module on a frozen base without the base on the tape (ARCHITECTURE.md §1.2, EAGLE style).
 * Per batch the base runs in inference mode (InferenceModel.forwardBase over a fresh KV cache per sequence: no tape,
 * no gradients, no stored activations, weights in the dtype they were loaded in) and gives h_t for every position;
 * only the module goes on the tape:
 *
 *   m_t     = W_in · concat(h_t, e(x_{t+1})) + b_in,   t = 0..T−2       (h: data, e: frozen table)
 *   u       = module blocks(m)                                          (trainable)
 *   rlogits = head(u)  (the base's final norm and head: frozen, but dlogits → du flows through them)
 *   loss    = CE(rlogits, x_{t+2}); backward seeded with λ
 * or, with the k-step recycle loss, the module unrolled on its own states (model/module-chain.ts):
 *   loss    = Σ_j w_j · CE(depth j's logits, x_{t+j+1}).
 *
 * This is the same function of the module's parameters as TrainGraph.forward with a frozen base (the LM term's
 * gradient is zero there), so losses and module gradients agree with it to float32 rounding (test/train-module).
 * The LM loss of the base is not computed per step (it cannot change); evaluation reports it.
 */
import type { Backend } from '../kernels/backend.js';
import type { ModelConfig } from '../model/config.js';
import type { GraphBatch, ParamSource } from '../model/graph.js';
import { InferenceModel, type ForwardScratch } from '../model/infer.js';
import type { KVCache } from '../model/kv-cache.js';
import { ModuleChain, type ChainOptions } from '../model/module-chain.js';
import type { Weights } from '../model/weights.js';
import type { Tape } from '../nn/tape.js';
import { Tensor } from '../tensor/tensor.js';

/** The frozen base in inference mode: h for the module rows of a batch. */
export class FrozenBase {
  readonly model: InferenceModel;
  private cache: KVCache | null = null;
  private readonly scratch: ForwardScratch;

  constructor(
    readonly config: ModelConfig,
    weights: Weights,
    backend: Backend,
  ) {
    this.model = new InferenceModel(config, weights, backend);
    this.scratch = this.model.newScratch();
  }

  /**
   * h_t of rows (b, t), t = 0..T−2, into `out` [B·(T−1), C] (the module's row layout). `onLogits(b, logits)` (eval):
   * also the next-token logits [T, V] of sequence b, valid during the call.
   */
  hidden(batch: GraphBatch, out: Float32Array, onLogits?: (b: number, logits: Float32Array) => void): void {
    const { B, T } = batch,
      C = this.config.hidden,
      Tm = T - 1;
    if (out.length < B * Tm * C) throw new Error(`FrozenBase.hidden: out has ${out.length} values, need ${B * Tm * C}`);
    if (!this.cache || this.cache.maxT < T) this.cache = this.model.newBaseCache(T);
    for (let b = 0; b < B; b++) {
      this.cache.reset();
      const r = this.model.forwardBase(
        batch.inputs.subarray(b * T, (b + 1) * T),
        this.cache,
        onLogits ? 'all' : 'none',
        this.scratch,
      );
      out.set(r.hidden.subarray(0, Tm * C), b * Tm * C);
      onLogits?.(b, r.logits);
    }
  }
}

export interface ModuleOutput {
  /** Σ_j w_j·CE_j over the chain's depths, [1]; backward seeded with λ. */
  loss: Tensor;
  /** CE of the recycle head at depth 1, [1] (mean over rows whose target is not −1). */
  recycleLoss: Tensor;
  /** [B·(T−1), V]: row b·(T−1)+t predicts x_{t+2}. */
  recycleLogits: Tensor;
  /** Per depth j = 1..k: CE, logits (row b·(T−1)+t predicts x_{t+j+1}) and targets. */
  depths: { losses: Tensor[]; logits: Tensor[]; targets: Int32Array[] };
}

/** The module chain (model/module-chain.ts) over h rows that are data (the frozen base's), not tape tensors. */
export class ModuleGraph {
  private readonly chain: ModuleChain;

  constructor(
    readonly config: ModelConfig,
    /** The k-step recycle loss: depth and per-depth weights (default: depth 1). */
    readonly chainOptions: ChainOptions = { depth: 1 },
  ) {
    if (!config.recycle) throw new Error('ModuleGraph: the model has no recyclable module');
    this.chain = new ModuleChain(config);
  }

  /**
   * The module on the tape over `h` [B·(T−1), C] (FrozenBase.hidden's layout). Gradients reach only the parameters
   * of `p` that carry a grad (recycle.*); call tape.backward(out.loss, λ) for them. `depth`: unroll the chain this
   * far instead of the training depth (evaluation).
   */
  forward(tape: Tape, p: ParamSource, batch: GraphBatch, h: Float32Array, depth?: number): ModuleOutput {
    const { B, T } = batch,
      C = this.config.hidden,
      R = B * (T - 1);
    if (T < 2) throw new Error(`ModuleGraph: sequence length ${T} leaves no module rows (need T ≥ 2)`);
    if (h.length < R * C) throw new Error(`ModuleGraph: h has ${h.length} values, need ${R * C}`);
    // another depth than the training chain's (evaluation): that depth's default weights
    const opts = depth === undefined || depth === this.chainOptions.depth ? this.chainOptions : { depth };
    const out = this.chain.forward(tape, p, batch, new Tensor([R, C], h.subarray(0, R * C)), opts);
    return { loss: out.loss, recycleLoss: out.losses[0]!, recycleLogits: out.logits[0]!, depths: out };
  }
}
