/**
 * One pre-norm transformer block, written once for both ways it runs: decoding over KV caches (infer.ts, kernels
 * on preallocated scratch) and training on the tape (graph.ts, ops with a backward). GPT-2 and Llama blocks differ
 * only in what the names point at (fused c_attn or q/k/v, GELU MLP or SwiGLU, LayerNorm or RMSNorm), which the
 * ops handle; the recyclable module's blocks are the same blocks under "recycle.layers.N.". Llama-family blocks
 * may carry biases (attention_bias, Qwen2's q/k/v, mlp_bias: null slots otherwise) and a head dim other than C/H
 * (q/o projections [H·D, C] / [C, H·D]); the names and shapes say so (names.ts).
 *
 *   a = norm1(x);  x = x + o(attention(a));  f = norm2(x);  x = x + down(act(up(f)[, gate(f)]))
 */
import type { ModelConfig } from './config.js';
import type { BlockNames } from './names.js';

/** Where a product's output goes in the decode scratch (the training ops ignore it). */
export type ProductSlot = 'proj' | 'up' | 'gate';

/** The operations a block needs, over activations of type X ([rows, C] row-major). */
export interface BlockOps<X> {
  /** The block's norm: LayerNorm (with bias) for GPT-2, RMSNorm for Llama (see normKind). */
  norm(x: X, weight: string, bias: string | null): X;
  /**
   * Self-attention of the normed rows: q/k/v projections (+ biases, + RoPE), causal attention, before the output
   * proj; returns [rows, H·D].
   */
  attention(a: X, n: BlockNames): X;
  linear(x: X, weight: string, bias: string | null, slot: ProductSlot): X;
  gelu(x: X): X;
  swiglu(gate: X, up: X): X;
  /** x + y (the residual stream; the decode ops add in place). */
  residual(x: X, y: X): X;
}

/** The one norm rule of the model families: GPT-2 uses LayerNorm, Llama RMSNorm. */
export function normKind(config: ModelConfig): 'layer' | 'rms' {
  return config.arch === 'gpt2' ? 'layer' : 'rms';
}

/** One block on x; returns the new residual stream. */
export function blockForward<X>(ops: BlockOps<X>, n: BlockNames, x: X): X {
  const a = ops.norm(x, n.norm1, n.norm1Bias);
  x = ops.residual(x, ops.linear(ops.attention(a, n), n.o, n.oBias, 'proj'));
  const f = ops.norm(x, n.norm2, n.norm2Bias);
  const up = ops.linear(f, n.up, n.upBias, 'up');
  const act = n.gate ? ops.swiglu(ops.linear(f, n.gate, n.gateBias, 'gate'), up) : ops.gelu(up);
  return ops.residual(x, ops.linear(act, n.down, n.downBias, 'proj'));
}
