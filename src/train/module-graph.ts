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
 * With distillation (chainOptions.distill α > 0) the teacher is the frozen base's own distribution,
 * softmax(head(h_pos)) for pos = 0..T−2, computed here from the same h rows (no gradient).
 *
 * This is the same function of the module's parameters as TrainGraph.forward with a frozen base (the LM term's
 * gradient is zero there), so losses and module gradients agree with it to float32 rounding (test/train-module).
 * The LM loss of the base is not computed per step (it cannot change); evaluation reports it.
 */
import type { Backend } from '../kernels/backend.js';
import type { ModelConfig } from '../model/config.js';
import type { GraphBatch, ParamSource } from '../model/graph.js';
import { blockForward } from '../model/block.js';
import { DecodeBlockOps, type RowSpan } from '../model/decode-ops.js';
import { InferenceModel, type ForwardScratch } from '../model/infer.js';
import type { KVCache } from '../model/kv-cache.js';
import { basePrefix, blockNames, topNames, type BlockNames } from '../model/names.js';
import { ModuleChain, needsTeacher, type ChainOptions, type Teacher } from '../model/module-chain.js';
import { normOnTape } from '../model/tape-block.js';
import * as nn from '../nn/ops.js';
import type { Weights } from '../model/weights.js';
import type { Weight } from '../kernels/backend.js';
import type { Tape } from '../nn/tape.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * The frozen base in inference mode: h for the module rows of a batch. The batch's sequences run several at a time
 * as one forward (up to MAX_ROWS rows; each on its own KV cache, attention per sequence), and a product weight stored
 * in half precision (or q8_0) is widened to float32 once per product call of the group, by the backend's embedding
 * kernel (its rows are converted exactly) into one buffer of the largest matrix, so the product is the float32 GEMM
 * (the half-weight GEMM widens chunks of W per call and repacks x per chunk: ~25% slower at K = 3072). `linear` above
 * 8 rows is the GEMM, whose per-element sums depend neither on the row count nor on how W was widened, so h has the
 * bits of separate forwardBase calls (test/train-frozen-base.test.ts).
 */
export class FrozenBase {
  readonly model: InferenceModel;
  private cache: KVCache | null = null;
  private readonly scratch: ForwardScratch;
  private caches: KVCache[] = [];
  private readonly ops: DecodeBlockOps;
  private readonly blocks: BlockNames[];

  /** Rows per forward: the GEMM's efficiency is reached well below it, and the scratch and KV caches grow with it. */
  static readonly MAX_ROWS = 1024;

  constructor(
    readonly config: ModelConfig,
    weights: Weights,
    backend: Backend,
  ) {
    this.model = new InferenceModel(config, weights, backend);
    this.scratch = this.model.newScratch();
    this.ops = new DecodeBlockOps(config, widenedProducts(weights, backend), backend);
    this.blocks = Array.from({ length: config.nLayers }, (_, l) => blockNames(config, basePrefix(config.arch, l)));
  }

  /**
   * h_t of rows (b, t), t = 0..T−2, into `out` [B·(T−1), C] (the module's row layout). `onLogits(b, logits)` (eval):
   * also the next-token logits [T, V] of sequence b, valid during the call (then the sequences run one at a time
   * through forwardBase, so that one sequence's logits are held at once).
   */
  hidden(batch: GraphBatch, out: Float32Array, onLogits?: (b: number, logits: Float32Array) => void): void {
    const { B, T } = batch,
      C = this.config.hidden,
      Tm = T - 1;
    if (out.length < B * Tm * C) throw new Error(`FrozenBase.hidden: out has ${out.length} values, need ${B * Tm * C}`);
    if (!onLogits) {
      const per = Math.max(1, Math.floor(FrozenBase.MAX_ROWS / T));
      for (let b0 = 0; b0 < B; b0 += per) this.forwardGroup(batch, b0, Math.min(B, b0 + per), out);
      return;
    }
    if (!this.cache || this.cache.maxT < T) this.cache = this.model.newBaseCache(T);
    for (let b = 0; b < B; b++) {
      this.cache.reset();
      const r = this.model.forwardBase(batch.inputs.subarray(b * T, (b + 1) * T), this.cache, 'all', this.scratch);
      out.set(r.hidden.subarray(0, Tm * C), b * Tm * C);
      onLogits(b, r.logits);
    }
  }

  /** Sequences b0..b1−1 of the batch as one forward (embeddings, blocks; no final norm or head); h rows into out. */
  private forwardGroup(batch: GraphBatch, b0: number, b1: number, out: Float32Array): void {
    const c = this.config,
      be = this.model.backend,
      w = this.model.weights,
      s = this.scratch,
      T = batch.T,
      n = b1 - b0,
      C = c.hidden,
      Tm = T - 1,
      rows = n * T;
    if (this.caches.length < n || this.caches[0]!.maxT < T)
      this.caches = Array.from({ length: n }, () => this.model.newBaseCache(T));
    s.ensure(rows);
    const spans: RowSpan[] = [];
    for (let i = 0; i < n; i++) {
      const cache = this.caches[i]!;
      cache.reset();
      cache.ensureRoom(T);
      spans.push({ r0: i * T, M: T, pos0: 0, cache });
      for (let t = 0; t < T; t++) {
        const id = batch.inputs[(b0 + i) * T + t]!;
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize)
          throw new Error(`FrozenBase.hidden: token id ${id} is outside the vocabulary (${c.vocabSize})`);
        s.ids[i * T + t] = id;
        s.pos[i * T + t] = t;
      }
    }
    const top = topNames(c),
      x = s.x.subarray(0, rows * C);
    be.embeddingForward(rows, C, c.vocabSize, s.ids.subarray(0, rows), w.weight(top.tokenEmbedding), x);
    if (top.positionEmbedding) {
      const wpe = w.get(top.positionEmbedding).subarray(0, T * C);
      for (let i = 0; i < n; i++) {
        const xs = x.subarray(i * T * C, (i + 1) * T * C);
        be.add(T * C, xs, wpe, xs);
      }
    }
    for (let l = 0; l < c.nLayers; l++) blockForward(this.ops.at(s, spans, rows, l), this.blocks[l]!, x);
    for (let i = 0; i < n; i++) out.set(x.subarray(i * T * C, (i * T + Tm) * C), (b0 + i) * Tm * C);
  }
}

/**
 * `weights` whose product weights (2-D, not float32) read as float32: each weight() call widens the matrix into one
 * shared buffer (the largest matrix's size), valid until the next call. The block's decode operations ask for a
 * weight right before its one product, so each product sees its own matrix.
 */
function widenedProducts(weights: Weights, be: Backend): Weights {
  let buf = be.alloc.f32(0),
    iota = new Int32Array(0);
  const widen = (name: string): Weight => {
    const w = weights.weight(name),
      shape = weights.spec(name).shape;
    if (w.dtype === 'f32' || shape.length !== 2) return w;
    const [N, K] = shape as [number, number];
    if (buf.length < N * K) buf = be.alloc.f32(N * K);
    if (iota.length < N) iota = Int32Array.from({ length: N }, (_, i) => i);
    const data = buf.subarray(0, N * K);
    be.embeddingForward(N, K, N, iota.subarray(0, N), w, data);
    return { dtype: 'f32', data };
  };
  return new Proxy(weights, {
    get(target, prop, receiver): unknown {
      if (prop === 'weight') return widen;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
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
    // evaluation (depth given) scores the data: no distillation; another depth than the training chain's takes that
    // depth's default weights
    const opts =
      depth === undefined
        ? this.chainOptions
        : depth === this.chainOptions.depth
          ? { ...this.chainOptions, distill: 0, reverseKl: 0 }
          : { depth };
    const hRows = new Tensor([R, C], h.subarray(0, R * C));
    const teacher = needsTeacher(opts) ? this.teacher(tape, p, hRows, T) : null;
    const out = this.chain.forward(tape, p, batch, hRows, opts, teacher);
    return { loss: out.loss, recycleLoss: out.losses[0]!, recycleLogits: out.logits[0]!, depths: out };
  }

  /** softmax(head(h)) of every h row: data (h and the frozen norm and head carry no grad, so nothing is recorded). */
  private teacher(tape: Tape, p: ParamSource, h: Tensor, T: number): Teacher {
    const c = this.config,
      top = topNames(c);
    const logits = nn.linear(tape, normOnTape(tape, p, c, h, top.finalNorm, top.finalNormBias), p.get(top.head), null);
    const [R, V] = [h.shape[0]!, c.vocabSize];
    const probs = tape.scratch(R * V);
    nn.softmaxRows(tape, R, V, logits.data, probs);
    return { probs, stride: T - 1, count: T - 1 };
  }
}
