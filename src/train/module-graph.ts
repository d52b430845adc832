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
 *
 * This is the same function of the module's parameters as TrainGraph.forward with a frozen base (the LM term's
 * gradient is zero there), so losses and module gradients agree with it to float32 rounding (test/train-module).
 * The LM loss of the base is not computed per step (it cannot change); evaluation reports it.
 */
import type { Backend } from '../kernels/backend.js';
import type { ModelConfig } from '../model/config.js';
import { blockForward } from '../model/block.js';
import { normOnTape, TapeBlockOps, type GraphBatch, type ParamSource } from '../model/graph.js';
import { InferenceModel, type ForwardScratch } from '../model/infer.js';
import type { KVCache } from '../model/kv-cache.js';
import { blockNames, modulePrefix, topNames, type BlockNames } from '../model/names.js';
import { ropeFor, type RopeTable } from '../model/rope.js';
import type { Weights } from '../model/weights.js';
import * as nn from '../nn/ops.js';
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
  /** CE of the recycle head, [1] (mean over rows whose target is not −1). */
  recycleLoss: Tensor;
  /** [B·(T−1), V]: row b·(T−1)+t predicts x_{t+2}. */
  recycleLogits: Tensor;
}

/** Position ids 0..T−2 repeated for B rows, and the module's next ids / targets, cached per shape. */
export class ModuleGraph {
  private readonly blocks: BlockNames[];
  private readonly posCache = new Map<string, Int32Array>();
  private readonly rope: number | RopeTable;

  constructor(readonly config: ModelConfig) {
    if (!config.recycle) throw new Error('ModuleGraph: the model has no recyclable module');
    this.blocks = Array.from({ length: config.recycle.numLayers }, (_, l) => blockNames(config, modulePrefix(l)));
    this.rope = ropeFor(config);
  }

  private positions(B: number, T: number): Int32Array {
    const key = `${B}x${T}`;
    let p = this.posCache.get(key);
    if (!p) {
      p = new Int32Array(B * T);
      for (let i = 0; i < p.length; i++) p[i] = i % T;
      this.posCache.set(key, p);
    }
    return p;
  }

  /**
   * The module on the tape over `h` [B·(T−1), C] (FrozenBase.hidden's layout). Gradients reach only the parameters
   * of `p` that carry a grad (recycle.*); call tape.backward(out.recycleLoss, λ) for them.
   */
  forward(tape: Tape, p: ParamSource, batch: GraphBatch, h: Float32Array): ModuleOutput {
    const c = this.config,
      { B, T } = batch,
      C = c.hidden,
      Tm = T - 1;
    if (T < 2) throw new Error(`ModuleGraph: sequence length ${T} leaves no module rows (need T ≥ 2)`);
    const R = B * Tm;
    const nextIds = new Int32Array(R);
    const targets2 = new Int32Array(R);
    for (let b = 0; b < B; b++) {
      nextIds.set(batch.inputs.subarray(b * T + 1, b * T + T), b * Tm);
      targets2.set(batch.targets2.subarray(b * T, b * T + Tm), b * Tm);
    }
    const top = topNames(c);
    const hRows = new Tensor([R, C], h.subarray(0, R * C));
    const e = nn.embedding(tape, nextIds, p.get(top.tokenEmbedding));
    let m = nn.linear(
      tape,
      nn.concatCols(tape, hRows, e),
      p.get('recycle.in_proj.weight'),
      p.get('recycle.in_proj.bias'),
    );
    const ops = new TapeBlockOps(tape, p, c, B, Tm, this.positions(B, Tm), this.rope);
    for (const n of this.blocks) m = blockForward(ops, n, m);
    const recycleLogits = nn.linear(
      tape,
      normOnTape(tape, p, c, m, top.finalNorm, top.finalNormBias),
      p.get(top.head),
      null,
    );
    const recycleLoss = nn.crossEntropy(tape, recycleLogits, targets2);
    return { recycleLoss, recycleLogits };
  }
}
