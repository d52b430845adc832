/**
 * The recyclable module unrolled over k depths on the tape: the k-step recycle loss (ARCHITECTURE.md §1.2).
 *
 * For a batch window x_0..x_{T+1} (inputs, targets, targets2 of graph.ts) and anchor rows t = 0..T−2:
 *   depth 1:  m¹_t = W_in · concat(h_t, e(x_{t+1})) + b_in     at module position t,      → x_{t+2}
 *   depth j:  mʲ_t = W_in · concat(u^{j−1}_t, e(x_{t+j})) + b_in at module position t+j−1, → x_{t+j+1}
 * where uʲ_t is the output of the module's last block at depth j (before the final norm) and the logits are
 * head(uʲ_t) (the shared final norm and head). Depth-1 rows attend causally over depth-1 rows; a depth-j row at
 * anchor t attends over the depth-1 rows 0..t and over its own chain's rows of depths 2..j at anchor t
 * (chain-attention.ts).
 * This is exactly a decode step that appends chained drafts to the module KV cache after the positions computed
 * from real base states, with teacher forcing (true tokens x_{t+j} instead of drafts).
 *
 * Rows whose token x_{t+j} or target x_{t+j+1} lies beyond the window (depth ≥ 3 near the end) take token 0 and
 * target −1: they add no loss and, since no valid row attends to them, change nothing else.
 * loss = Σ_j w_j · CE_j (each CE a mean over its counted rows).
 *
 * Distillation (`distill` α > 0, a teacher given): CE_j is taken against (1 − α)·onehot(x_{t+j+1}) + α·p_base, where
 * p_base is the base's own next-token distribution for x_{t+j+1}, i.e. softmax(head(h_{t+j})) (detached): the module
 * learns to match what the base would say there, which is what verified decoding accepts and what recycle's tokens
 * should look like. Rows whose base position t+j is not among the teacher's positions keep the one-hot target.
 */
import * as nn from '../nn/ops.js';
import { chainAttention, type ChainExtra } from '../nn/chain-attention.js';
import type { Tape } from '../nn/tape.js';
import type { Tensor } from '../tensor/tensor.js';
import { blockForward } from './block.js';
import type { ModelConfig } from './config.js';
import type { GraphBatch, ParamSource } from './graph.js';
import { normOnTape, TapeBlockOps } from './tape-block.js';
import { blockNames, modulePrefix, topNames, type BlockNames } from './names.js';
import { ropeFor, type RopeTable } from './rope.js';

/** Most depths a chain trains for (a verified full call checks at most 7 drafts in the 8-row product). */
export const MAX_RECYCLE_DEPTH = 7;

/** Default per-depth weights 1, 1/2, 1/4, …: depth j's drafts count only after j−1 accepted ones (α^{j−1}). */
export function defaultDepthWeights(depth: number): number[] {
  return Array.from({ length: depth }, (_, j) => 0.5 ** j);
}

export interface ChainOptions {
  /** k ≥ 1 (1 = the paper's single-step recycle loss). */
  depth: number;
  /** w_1..w_k (default defaultDepthWeights). */
  weights?: readonly number[];
  /** α of the distillation toward the base (0 or absent: the one-hot targets alone, the paper's loss). */
  distill?: number;
  /** β of the reverse KL(module ‖ base) added at every depth (0 or absent: none; nn.crossEntropyDistill). */
  reverseKl?: number;
}

/** Whether a chain with these options trains toward the base's distributions (and so needs them: Teacher). */
export function needsTeacher(opts: Pick<ChainOptions, 'distill' | 'reverseKl'>): boolean {
  return (opts.distill ?? 0) > 0 || (opts.reverseKl ?? 0) > 0;
}

/** The base's next-token distributions for distillation: row b·stride + pos for base positions pos < count. */
export interface Teacher {
  probs: Float32Array;
  stride: number;
  count: number;
}

export interface ModuleChainOutput {
  /** Σ_j w_j · CE_j, [1]. */
  loss: Tensor;
  /** CE_j per depth, [1] each. */
  losses: Tensor[];
  /** Per depth [B·(T−1), V]: row b·(T−1)+t predicts x_{t+j+1}. */
  logits: Tensor[];
  /** Per depth, the targets of those rows (−1: beyond the window). */
  targets: Int32Array[];
}

/** Block ops of one depth: attention over depth 1's keys and the chain's own (see the file comment). */
class ChainBlockOps extends TapeBlockOps {
  constructor(
    tape: Tape,
    p: ParamSource,
    c: ModelConfig,
    B: number,
    T: number,
    pos: Int32Array,
    rope: number | RopeTable,
    private readonly depth: number,
    /** Per block: depth 1's k/v, then each later depth's. */
    private readonly kv: Map<BlockNames, ChainExtra[]>,
  ) {
    super(tape, p, c, B, T, pos, rope);
  }

  protected override attend(q: Tensor, k: Tensor, v: Tensor, n: BlockNames): Tensor {
    const dims = { B: this.B, T: this.T, H: this.c.nHeads, G: this.c.nKvHeads, D: this.c.headDim };
    let stack = this.kv.get(n);
    if (this.depth === 1 || !stack) this.kv.set(n, (stack = []));
    stack.push({ k, v });
    if (this.depth === 1) return nn.attention(this.tape, q, k, v, dims);
    return chainAttention(this.tape, q, stack[0]!.k, stack[0]!.v, stack.slice(1), dims);
  }
}

export class ModuleChain {
  private readonly blocks: BlockNames[];
  private readonly rope: number | RopeTable;

  constructor(readonly config: ModelConfig) {
    if (!config.recycle) throw new Error('ModuleChain: the model has no recyclable module');
    this.blocks = Array.from({ length: config.recycle.numLayers }, (_, l) => blockNames(config, modulePrefix(l)));
    this.rope = ropeFor(config);
  }

  /** Input ids, targets and positions of depth j for a batch (rows b·(T−1)+t). */
  private rows(
    batch: GraphBatch,
    j: number,
    teacher: Teacher | null,
  ): { ids: Int32Array; targets: Int32Array; pos: Int32Array; teacherRows: Int32Array } {
    const { B, T } = batch,
      Tm = T - 1;
    const ids = new Int32Array(B * Tm),
      targets = new Int32Array(B * Tm),
      pos = new Int32Array(B * Tm),
      teacherRows = new Int32Array(B * Tm).fill(-1);
    for (let b = 0; b < B; b++) {
      // x_i of the window: inputs for i ≤ T−1, then targets[T−1] = x_T and targets2[T−1] = x_{T+1}
      const target = (i: number): number =>
        i <= T ? batch.targets[b * T + i - 1]! : i === T + 1 ? batch.targets2[b * T + T - 1]! : -1;
      const token = (i: number): number => (i <= T - 1 ? batch.inputs[b * T + i]! : target(i));
      for (let t = 0; t < Tm; t++) {
        const r = b * Tm + t,
          x = token(t + j);
        ids[r] = x < 0 ? 0 : x;
        targets[r] = x < 0 ? -1 : target(t + j + 1);
        pos[r] = Math.min(t + j - 1, T - 1);
        // the base predicts x_{t+j+1} at position t+j
        if (teacher && targets[r] !== -1 && t + j < teacher.count) teacherRows[r] = b * teacher.stride + t + j;
      }
    }
    return { ids, targets, pos, teacherRows };
  }

  /**
   * The chain over `h` [B·(T−1), C] (h_t for anchor rows t = 0..T−2; a tensor on the tape for joint training, data
   * for a frozen base). Gradients reach every parameter of `p` that has a grad. `teacher`: the base's distributions
   * (needed when opts.distill > 0).
   */
  forward(
    tape: Tape,
    p: ParamSource,
    batch: GraphBatch,
    h: Tensor,
    opts: ChainOptions,
    teacher: Teacher | null = null,
  ): ModuleChainOutput {
    const c = this.config,
      { B, T } = batch,
      Tm = T - 1;
    const K = opts.depth;
    const w = opts.weights ?? defaultDepthWeights(K);
    if (!Number.isInteger(K) || K < 1 || K > MAX_RECYCLE_DEPTH)
      throw new Error(`ModuleChain: depth ${K} must be an integer in [1, ${MAX_RECYCLE_DEPTH}]`);
    if (w.length !== K) throw new Error(`ModuleChain: ${w.length} depth weights for depth ${K}`);
    if (T < 2) throw new Error(`ModuleChain: sequence length ${T} leaves no module rows (need T ≥ 2)`);
    const alpha = opts.distill ?? 0;
    if (!(alpha >= 0 && alpha <= 1)) throw new Error(`ModuleChain: distill ${alpha} must be in [0, 1]`);
    const beta = opts.reverseKl ?? 0;
    if (!(beta >= 0 && Number.isFinite(beta))) throw new Error(`ModuleChain: reverseKl ${beta} must be >= 0`);
    const soft = needsTeacher(opts);
    if (soft && !teacher)
      throw new Error('ModuleChain: distill or reverseKl > 0 needs the base’s distributions (teacher)');
    const top = topNames(c);
    const kv = new Map<BlockNames, ChainExtra[]>();
    const losses: Tensor[] = [],
      logits: Tensor[] = [],
      targets: Int32Array[] = [];
    let u = h;
    for (let j = 1; j <= K; j++) {
      const r = this.rows(batch, j, soft ? teacher : null);
      const e = nn.embedding(tape, r.ids, p.get(top.tokenEmbedding));
      let m = nn.linear(
        tape,
        nn.concatCols(tape, u, e),
        p.get('recycle.in_proj.weight'),
        p.get('recycle.in_proj.bias'),
      );
      const ops = new ChainBlockOps(tape, p, c, B, Tm, r.pos, this.rope, j, kv);
      for (const n of this.blocks) m = blockForward(ops, n, m);
      u = m;
      const lj = nn.linear(tape, normOnTape(tape, p, c, m, top.finalNorm, top.finalNormBias), p.get(top.head), null);
      losses.push(
        soft
          ? nn.crossEntropyDistill(tape, lj, r.targets, {
              probs: teacher!.probs,
              rows: r.teacherRows,
              alpha,
              reverse: beta,
            })
          : nn.crossEntropy(tape, lj, r.targets),
      );
      logits.push(lj);
      targets.push(r.targets);
    }
    return { loss: nn.weightedSumN(tape, losses, w), losses, logits, targets };
  }
}
