/**
 * The training graph: the GPT-2 / Llama base and the recyclable module on the tape, for a batch of B sequences
 * of T tokens (ARCHITECTURE.md §1.1–1.2). It computes the same function as InferenceModel (infer.ts), which matches
 * PyTorch, but for all positions at once and with a backward.
 *
 *   x        = e(ids) (+ wpe[t] for GPT-2)                          [B*T, C]
 *   h        = base blocks(x)                                       [B*T, C]   (pre final norm)
 *   logits   = head(h)                                              [B*T, V]   → CE vs x_{t+1}
 *   m_t      = W_in · concat(h_t, e(x_{t+1})) + b_in,  t = 0..T−2   [B*(T−1), C]
 *   u        = module blocks(m)  (Llama: RoPE at position t)        [B*(T−1), C]
 *   rlogits  = head(u)  (the base's final norm and head, shared)    [B*(T−1), V] → CE vs x_{t+2}
 *   loss     = CE(next) + λ · CE(recycle)
 * With a k-step recycle loss (module-chain.ts) the module runs k times on its own outputs and
 *   loss     = CE(next) + λ · Σ_j w_j · CE(recycle at depth j).
 *
 * Which parameters train is decided by the ParamSource: a tensor with a `grad` collects gradients, one without
 * (frozen base, evaluation) does not, and the tape records nothing that no gradient needs.
 */
import * as nn from '../nn/ops.js';
import type { Tape } from '../nn/tape.js';
import { Tensor, reshape } from '../tensor/tensor.js';
import { blockForward } from './block.js';
import type { ModelConfig } from './config.js';
import { ModuleChain, needsTeacher, type Teacher } from './module-chain.js';
import { basePrefix, blockNames, topNames, type BlockNames } from './names.js';
import { ropeFor, type RopeTable } from './rope.js';
import { normOnTape, TapeBlockOps } from './tape-block.js';
import type { Weights } from './weights.js';

export { normOnTape, TapeBlockOps } from './tape-block.js';

/** The parameters by Hugging Face name (internal [out, in] layout); a tensor with a grad trains. */
export interface ParamSource {
  get(name: string): Tensor;
}

/** Read-only parameters from inference Weights (no gradients): evaluation, frozen parts. */
export function weightsSource(w: Weights): ParamSource {
  const cache = new Map<string, Tensor>();
  return {
    get(name: string): Tensor {
      let t = cache.get(name);
      if (!t) {
        t = new Tensor(w.spec(name).shape, w.get(name));
        cache.set(name, t);
      }
      return t;
    },
  };
}

/**
 * A batch in the layout of src/data/dataset.ts: row-major [B, T]; targets[b,t] = x_{t+1}, targets2[b,t] = x_{t+2}.
 * Targets may be −1 (ignored). targets2 is read for t ≤ T−2 only (the module has no row for t = T−1).
 */
export interface GraphBatch {
  B: number;
  T: number;
  inputs: Int32Array;
  targets: Int32Array;
  targets2: Int32Array;
}

export interface GraphOutput {
  /** CE(next) + λ·Σ_j w_j·CE(recycle_j), [1] (the recycle term is left out when the model has no module). */
  loss: Tensor;
  lmLoss: Tensor;
  /** CE of depth 1 (the paper's recycle loss). */
  recycleLoss: Tensor | null;
  /** CE of each depth 1..k, their logits and targets (null without a module). */
  recycleDepths: { losses: Tensor[]; logits: Tensor[]; targets: Int32Array[] } | null;
  /** Next-token logits [B*T, V]. */
  logits: Tensor;
  /** Recycle logits [B*(T−1), V]: row b*(T−1)+t predicts x_{t+2}. */
  recycleLogits: Tensor | null;
}

export interface GraphOptions {
  /** λ; default config.recycle.lossWeight. */
  lossWeight?: number;
  /** Run the module (default: when the config has one). */
  module?: boolean;
  /** The k-step recycle loss: depth k and per-depth weights (default depth 1, module-chain.ts). */
  depth?: number;
  depthWeights?: readonly number[];
  /** α of the module's distillation toward the base's distributions (module-chain.ts; default 0). */
  distill?: number;
  /** β of the reverse KL(module ‖ base) in the recycle loss (module-chain.ts; default 0). */
  reverseKl?: number;
}

/**
 * The base's next-token distributions as the module's teacher: softmax of the head's logits [B·T, V] (detached), at
 * positions 0..T−2, the positions a frozen base's h rows cover too (module-graph.ts), so both train the same function.
 */
function teacherOf(tape: Tape, logits: Tensor, B: number, T: number): Teacher {
  const V = logits.lastDim,
    probs = tape.scratch(B * T * V);
  nn.softmaxRows(tape, B * T, V, logits.data, probs);
  return { probs, stride: T, count: T - 1 };
}

/** Position ids 0..T−1 repeated for B rows; cached per shape (the tape holds them until backward). */
class Positions {
  private readonly cache = new Map<string, Int32Array>();

  get(B: number, T: number): Int32Array {
    const key = `${B}x${T}`;
    let p = this.cache.get(key);
    if (!p) {
      p = new Int32Array(B * T);
      for (let i = 0; i < p.length; i++) p[i] = i % T;
      this.cache.set(key, p);
    }
    return p;
  }
}

export class TrainGraph {
  private readonly baseBlocks: BlockNames[];
  private readonly chain: ModuleChain | null;
  private readonly positions = new Positions();
  /** rope_theta for the kernel, or the scaled frequencies' table (rope.ts), shared by every forward. */
  private readonly rope: number | RopeTable;

  constructor(readonly config: ModelConfig) {
    this.rope = ropeFor(config);
    this.baseBlocks = Array.from({ length: config.nLayers }, (_, l) => blockNames(config, basePrefix(config.arch, l)));
    this.chain = config.recycle ? new ModuleChain(config) : null;
  }

  /** The forward pass on `tape`; call tape.backward(out.loss) for gradients. */
  forward(tape: Tape, p: ParamSource, batch: GraphBatch, opts: GraphOptions = {}): GraphOutput {
    const c = this.config,
      { B, T } = batch,
      C = c.hidden;
    this.checkBatch(batch);
    const top = topNames(c);
    // ---- base: (B*T, C) residual stream
    let x = nn.embedding(tape, batch.inputs, p.get(top.tokenEmbedding));
    if (top.positionEmbedding)
      x = nn.add(tape, x, nn.embedding(tape, this.positions.get(B, T), p.get(top.positionEmbedding)));
    const pos = this.positions.get(B, T);
    const baseOps = new TapeBlockOps(tape, p, c, B, T, pos, this.rope);
    for (const n of this.baseBlocks) x = blockForward(baseOps, n, x);
    const h = x;
    const logits = this.head(tape, p, h);
    const lmLoss = nn.crossEntropy(tape, logits, batch.targets);

    const runModule = (opts.module ?? true) && this.chain !== null && T >= 2;
    if (!runModule)
      return { loss: lmLoss, lmLoss, recycleLoss: null, recycleDepths: null, logits, recycleLogits: null };

    // ---- module: anchor rows (b, t) for t = 0..T−2, i.e. B*(T−1) rows, unrolled over k depths
    const Tm = T - 1;
    const hRows = reshape(nn.sliceCols(tape, reshape(h, [B, T * C]), 0, Tm * C), [B * Tm, C]);
    const distill = opts.distill ?? 0,
      reverseKl = opts.reverseKl ?? 0;
    const chain = this.chain!.forward(
      tape,
      p,
      batch,
      hRows,
      {
        depth: opts.depth ?? 1,
        ...(opts.depthWeights ? { weights: opts.depthWeights } : {}),
        distill,
        reverseKl,
      },
      needsTeacher({ distill, reverseKl }) ? teacherOf(tape, logits, B, T) : null,
    );
    const lambda = opts.lossWeight ?? c.recycle!.lossWeight;
    const loss = nn.weightedSum(tape, lmLoss, chain.loss, lambda);
    return {
      loss,
      lmLoss,
      recycleLoss: chain.losses[0]!,
      recycleDepths: chain,
      logits,
      recycleLogits: chain.logits[0]!,
    };
  }

  private checkBatch(batch: GraphBatch): void {
    const { B, T } = batch,
      V = this.config.vocabSize;
    if (!Number.isInteger(B) || B < 1 || !Number.isInteger(T) || T < 1)
      throw new Error(`TrainGraph: batch B=${B}, T=${T} must be positive integers`);
    if (T > this.config.maxPositions)
      throw new Error(`TrainGraph: sequence length ${T} exceeds the context length ${this.config.maxPositions}`);
    for (const [name, a, ignorable] of [
      ['inputs', batch.inputs, false],
      ['targets', batch.targets, true],
      ['targets2', batch.targets2, true],
    ] as const) {
      if (a.length !== B * T) throw new Error(`TrainGraph: batch.${name} has ${a.length} ids, B·T = ${B * T}`);
      for (let i = 0; i < a.length; i++) {
        const id = a[i]!;
        if (!(id >= 0 && id < V) && !(ignorable && id === -1))
          throw new Error(`TrainGraph: batch.${name}[${i}] = ${id} is outside the vocabulary (${V})`);
      }
    }
  }

  /** Final norm + LM head: [R, C] → [R, V]. */
  private head(tape: Tape, p: ParamSource, x: Tensor): Tensor {
    const top = topNames(this.config);
    return nn.linear(
      tape,
      normOnTape(tape, p, this.config, x, top.finalNorm, top.finalNormBias),
      p.get(top.head),
      null,
    );
  }
}
