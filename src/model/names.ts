/**
 * Parameter naming and shapes. Internal names are the Hugging Face tensor names (so checkpoints load in HF
 * tools) and "recycle.*" for the module (ARCHITECTURE.md §5). Internally every linear weight is [out, in]; GPT-2's
 * Conv1D weights are [in, out] in the file, so they carry `fileTransposed` and are transposed at load/save.
 */
import type { Arch, ModelConfig } from './config.js';

export interface ParamSpec {
  name: string;
  /** Internal shape ([out, in] for linear weights). */
  shape: number[];
  /** Stored transposed in the file (GPT-2 Conv1D). */
  fileTransposed: boolean;
  /** Weight decay applies (matrices, not norms/biases). */
  decay: boolean;
  /** Initialisation kind used by init.ts. */
  init: 'normal' | 'residual' | 'ones' | 'zeros' | 'in_proj';
}

/** Names of the tensors of one block, relative to its prefix ("h.3.", "model.layers.3.", "recycle.layers.0."). */
export interface BlockNames {
  norm1: string;
  norm1Bias: string | null;
  norm2: string;
  norm2Bias: string | null;
  /** GPT-2: the fused c_attn [3C, C]; Llama: q/k/v separately ([H·D, C], [G·D, C], [G·D, C]). */
  qkv: string | null;
  qkvBias: string | null;
  q: string | null;
  k: string | null;
  v: string | null;
  /** Llama attention_bias, Qwen2. */
  qBias: string | null;
  kBias: string | null;
  vBias: string | null;
  /** [C, H·D]. */
  o: string;
  /** GPT-2; Llama attention_bias. */
  oBias: string | null;
  /** GPT-2: c_fc; Llama: up_proj (gate_proj separate). */
  up: string;
  /** GPT-2; Llama mlp_bias (up, gate and down). */
  upBias: string | null;
  gate: string | null;
  gateBias: string | null;
  down: string;
  downBias: string | null;
}

/** The tensor names of one block of `c` under `prefix`; bias slots are null where the config has no bias. */
export function blockNames(c: ModelConfig, prefix: string): BlockNames {
  if (c.arch === 'gpt2') {
    return {
      norm1: `${prefix}ln_1.weight`,
      norm1Bias: `${prefix}ln_1.bias`,
      norm2: `${prefix}ln_2.weight`,
      norm2Bias: `${prefix}ln_2.bias`,
      qkv: `${prefix}attn.c_attn.weight`,
      qkvBias: `${prefix}attn.c_attn.bias`,
      q: null,
      k: null,
      v: null,
      qBias: null,
      kBias: null,
      vBias: null,
      o: `${prefix}attn.c_proj.weight`,
      oBias: `${prefix}attn.c_proj.bias`,
      up: `${prefix}mlp.c_fc.weight`,
      upBias: `${prefix}mlp.c_fc.bias`,
      gate: null,
      gateBias: null,
      down: `${prefix}mlp.c_proj.weight`,
      downBias: `${prefix}mlp.c_proj.bias`,
    };
  }
  const bias = (on: boolean | undefined, module: string): string | null => (on ? `${prefix}${module}.bias` : null);
  return {
    norm1: `${prefix}input_layernorm.weight`,
    norm1Bias: null,
    norm2: `${prefix}post_attention_layernorm.weight`,
    norm2Bias: null,
    qkv: null,
    qkvBias: null,
    q: `${prefix}self_attn.q_proj.weight`,
    k: `${prefix}self_attn.k_proj.weight`,
    v: `${prefix}self_attn.v_proj.weight`,
    qBias: bias(c.qkvBias, 'self_attn.q_proj'),
    kBias: bias(c.qkvBias, 'self_attn.k_proj'),
    vBias: bias(c.qkvBias, 'self_attn.v_proj'),
    o: `${prefix}self_attn.o_proj.weight`,
    oBias: bias(c.oBias, 'self_attn.o_proj'),
    up: `${prefix}mlp.up_proj.weight`,
    upBias: bias(c.mlpBias, 'mlp.up_proj'),
    gate: `${prefix}mlp.gate_proj.weight`,
    gateBias: bias(c.mlpBias, 'mlp.gate_proj'),
    down: `${prefix}mlp.down_proj.weight`,
    downBias: bias(c.mlpBias, 'mlp.down_proj'),
  };
}

export function basePrefix(arch: Arch, layer: number): string {
  return arch === 'gpt2' ? `h.${layer}.` : `model.layers.${layer}.`;
}

export function modulePrefix(layer: number): string {
  return `recycle.layers.${layer}.`;
}

export interface TopNames {
  tokenEmbedding: string;
  positionEmbedding: string | null;
  finalNorm: string;
  finalNormBias: string | null;
  /** The LM head weight [V, C]; equals tokenEmbedding when tied. */
  head: string;
}

export function topNames(c: ModelConfig): TopNames {
  if (c.arch === 'gpt2') {
    return {
      tokenEmbedding: 'wte.weight',
      positionEmbedding: 'wpe.weight',
      finalNorm: 'ln_f.weight',
      finalNormBias: 'ln_f.bias',
      head: 'wte.weight',
    };
  }
  return {
    tokenEmbedding: 'model.embed_tokens.weight',
    positionEmbedding: null,
    finalNorm: 'model.norm.weight',
    finalNormBias: null,
    head: c.tieEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
  };
}

function blockSpecs(c: ModelConfig, prefix: string): ParamSpec[] {
  const C = c.hidden,
    I = c.intermediate,
    qw = c.nHeads * c.headDim,
    kvw = c.nKvHeads * c.headDim;
  const n = blockNames(c, prefix);
  const gpt2 = c.arch === 'gpt2';
  const mat = (name: string, shape: number[], init: ParamSpec['init'] = 'normal'): ParamSpec => ({
    name,
    shape,
    fileTransposed: gpt2,
    decay: true,
    init,
  });
  const vec = (name: string | null, size: number, init: ParamSpec['init']): ParamSpec[] =>
    name ? [{ name, shape: [size], fileTransposed: false, decay: false, init }] : [];
  const specs: ParamSpec[] = [...vec(n.norm1, C, 'ones'), ...vec(n.norm1Bias, C, 'zeros')];
  if (n.qkv) specs.push(mat(n.qkv, [3 * C, C]), ...vec(n.qkvBias, 3 * C, 'zeros'));
  else {
    specs.push(mat(n.q!, [qw, C]), ...vec(n.qBias, qw, 'zeros'));
    specs.push(mat(n.k!, [kvw, C]), ...vec(n.kBias, kvw, 'zeros'));
    specs.push(mat(n.v!, [kvw, C]), ...vec(n.vBias, kvw, 'zeros'));
  }
  specs.push(mat(n.o, [C, qw], 'residual'), ...vec(n.oBias, C, 'zeros'));
  specs.push(...vec(n.norm2, C, 'ones'), ...vec(n.norm2Bias, C, 'zeros'));
  if (n.gate) specs.push(mat(n.gate, [I, C]), ...vec(n.gateBias, I, 'zeros'));
  specs.push(mat(n.up, [I, C]), ...vec(n.upBias, I, 'zeros'));
  specs.push(mat(n.down, [C, I], 'residual'), ...vec(n.downBias, C, 'zeros'));
  return specs;
}

/** All parameters of the base model, in memory order. */
export function baseParamSpecs(c: ModelConfig): ParamSpec[] {
  const t = topNames(c);
  const specs: ParamSpec[] = [
    { name: t.tokenEmbedding, shape: [c.vocabSize, c.hidden], fileTransposed: false, decay: true, init: 'normal' },
  ];
  if (t.positionEmbedding)
    specs.push({
      name: t.positionEmbedding,
      shape: [c.maxPositions, c.hidden],
      fileTransposed: false,
      decay: true,
      init: 'normal',
    });
  for (let l = 0; l < c.nLayers; l++) specs.push(...blockSpecs(c, basePrefix(c.arch, l)));
  specs.push({ name: t.finalNorm, shape: [c.hidden], fileTransposed: false, decay: false, init: 'ones' });
  if (t.finalNormBias)
    specs.push({ name: t.finalNormBias, shape: [c.hidden], fileTransposed: false, decay: false, init: 'zeros' });
  if (!c.tieEmbeddings)
    specs.push({ name: t.head, shape: [c.vocabSize, c.hidden], fileTransposed: false, decay: true, init: 'normal' });
  return specs;
}

/** All parameters of the recyclable module (empty without a "recycle" section). */
export function moduleParamSpecs(c: ModelConfig): ParamSpec[] {
  if (!c.recycle) return [];
  const C = c.hidden;
  const specs: ParamSpec[] = [
    { name: 'recycle.in_proj.weight', shape: [C, 2 * C], fileTransposed: false, decay: true, init: 'in_proj' },
    { name: 'recycle.in_proj.bias', shape: [C], fileTransposed: false, decay: false, init: 'zeros' },
  ];
  for (let l = 0; l < c.recycle.numLayers; l++) specs.push(...blockSpecs(c, modulePrefix(l)));
  return specs;
}

export function allParamSpecs(c: ModelConfig): ParamSpec[] {
  return [...baseParamSpecs(c), ...moduleParamSpecs(c)];
}

export function countParams(specs: ParamSpec[]): number {
  return specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Weights read by matrix products (linear, the embedding lookup, the head): the ones a backend may keep in a
 * narrower dtype. Norms, biases and GPT-2's position table (added, not multiplied) stay float32. */
export function isProductWeight(spec: ParamSpec, c: ModelConfig): boolean {
  return spec.shape.length === 2 && spec.name !== topNames(c).positionEmbedding;
}
