/**
 * The transformer block's operations on the tape (block.ts's BlockOps): shared by the training graph (graph.ts), the
 * k-step module chain (module-chain.ts) and the frozen-base module graph (train/module-graph.ts).
 */
import * as nn from '../nn/ops.js';
import type { Tape } from '../nn/tape.js';
import { Tensor, rowsView } from '../tensor/tensor.js';
import { normKind, type BlockOps } from './block.js';
import type { ModelConfig } from './config.js';
import type { ParamSource } from './graph.js';
import type { BlockNames } from './names.js';
import type { RopeTable } from './rope.js';

/** The model's norm (blocks and the final one) on the tape. */
export function normOnTape(tape: Tape, p: ParamSource, c: ModelConfig, x: Tensor, w: string, b: string | null): Tensor {
  return normKind(c) === 'layer'
    ? nn.layerNorm(tape, x, p.get(w), p.get(b!), c.normEps)
    : nn.rmsNorm(tape, x, p.get(w), c.normEps);
}

/**
 * The block's operations on the tape, for B sequences of T rows (row b*T + t sits at position t): the training graph's
 * and the frozen-base module graph's (train/module-graph.ts).
 */
export class TapeBlockOps implements BlockOps<Tensor> {
  constructor(
    protected readonly tape: Tape,
    protected readonly p: ParamSource,
    protected readonly c: ModelConfig,
    protected readonly B: number,
    protected readonly T: number,
    protected readonly pos: Int32Array,
    protected readonly rope: number | RopeTable,
  ) {}

  norm(x: Tensor, w: string, b: string | null): Tensor {
    return normOnTape(this.tape, this.p, this.c, x, w, b);
  }

  attention(a: Tensor, n: BlockNames): Tensor {
    const { tape, p, c, B, T, pos, rope } = this,
      C = c.hidden,
      H = c.nHeads,
      G = c.nKvHeads,
      D = c.headDim;
    let q: Tensor, k: Tensor, v: Tensor;
    if (n.qkv) {
      // GPT-2's fused c_attn [3C, C]: rows 0..C are q, C..2C k, 2C..3C v (views share data and grad)
      const W = p.get(n.qkv),
        Wb = p.get(n.qkvBias!);
      q = nn.linear(tape, a, rowsView(W, 0, C), rowsView(Wb, 0, C));
      k = nn.linear(tape, a, rowsView(W, C, C), rowsView(Wb, C, C));
      v = nn.linear(tape, a, rowsView(W, 2 * C, C), rowsView(Wb, 2 * C, C));
    } else {
      const R = B * T;
      const proj = (w: string, b: string | null): Tensor => nn.linear(tape, a, p.get(w), b ? p.get(b) : null);
      q = nn.rope(tape, proj(n.q!, n.qBias), R, H, D, pos, rope);
      k = nn.rope(tape, proj(n.k!, n.kBias), R, G, D, pos, rope);
      v = proj(n.v!, n.vBias);
    }
    return this.attend(q, k, v, n);
  }

  /** Attention over the projected (and rotated) q, k, v: causal here; the k-step module chain's differs. */
  protected attend(q: Tensor, k: Tensor, v: Tensor, n: BlockNames): Tensor {
    void n;
    const c = this.c;
    return nn.attention(this.tape, q, k, v, { B: this.B, T: this.T, H: c.nHeads, G: c.nKvHeads, D: c.headDim });
  }

  linear(x: Tensor, w: string, b: string | null): Tensor {
    return nn.linear(this.tape, x, this.p.get(w), b ? this.p.get(b) : null);
  }

  gelu(x: Tensor): Tensor {
    return nn.gelu(this.tape, x);
  }

  swiglu(gate: Tensor, up: Tensor): Tensor {
    return nn.swiglu(this.tape, gate, up);
  }

  residual(x: Tensor, y: Tensor): Tensor {
    return nn.add(this.tape, x, y);
  }
}
