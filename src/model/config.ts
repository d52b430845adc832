/**
 * Model configuration: the Hugging Face config.json of a GPT-2, Llama or Qwen2 base, plus our "recycle" section
 * (ARCHITECTURE.md §5). `parseConfig` validates a parsed JSON object and names the file and field on error;
 * `toHfConfig` writes it back in the same HF-style layout.
 *
 * Llama-family configs as they are in the wild: `rope_scaling` ("llama3" and "linear" frequency rescaling, legacy
 * "type" key or "rope_type"; transformers 5's `rope_parameters` too), `attention_bias` (q/k/v/o biases) and `mlp_bias`,
 * an explicit `head_dim` (heads × head_dim may differ from hidden_size), tied or untied heads. model_type "qwen2" is a
 * Llama-family model with q/k/v biases (and none on o_proj or the MLP), as transformers' Qwen2 classes build it.
 */
import { z } from 'zod';

export type Arch = 'gpt2' | 'llama';

/** The HF model_type: a Llama-family arch is "llama" or "qwen2". */
export type ModelType = 'gpt2' | 'llama' | 'qwen2';

/**
 * RoPE frequency rescaling (transformers' modeling_rope_utils; model/rope.ts computes the frequencies).
 * linear: every inverse frequency / factor. llama3: by wavelength λ = 2π/f against the original context L₀ —
 * λ < L₀/high_freq_factor kept, λ > L₀/low_freq_factor divided by factor, smoothly interpolated in between.
 */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositions: number;
    };

export interface RecycleConfig {
  /** N_r: number of transformer blocks in the recyclable module. */
  numLayers: number;
  /** λ in loss = LM + λ·recycle. */
  lossWeight: number;
}

export interface ModelConfig {
  arch: Arch;
  vocabSize: number;
  /** C: model width. */
  hidden: number;
  nLayers: number;
  nHeads: number;
  /** G: key/value heads (= nHeads for GPT-2). */
  nKvHeads: number;
  headDim: number;
  /** MLP inner width (4C for GPT-2 unless n_inner is set). */
  intermediate: number;
  /** Context length (n_positions / max_position_embeddings). */
  maxPositions: number;
  normEps: number;
  /** Llama only. */
  ropeTheta: number;
  /** Llama only: RoPE frequency rescaling (absent or null: none). */
  ropeScaling?: RopeScaling | null;
  /** Llama only: biases on the q/k/v projections (Llama attention_bias, Qwen2). Absent: none. */
  qkvBias?: boolean;
  /** Llama only: a bias on o_proj (Llama attention_bias). Absent: none. */
  oBias?: boolean;
  /** Llama only: biases on gate/up/down_proj (mlp_bias). Absent: none. */
  mlpBias?: boolean;
  /** The HF model_type written back by toHfConfig (absent: the arch's own). */
  modelType?: ModelType;
  tieEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenId: number | null;
  recycle: RecycleConfig | null;
}

/**
 * Upper bounds on every size a config can set. Sizes drive allocation, so a config is checked against them (and
 * its weights file against the config) before anything is allocated. Each is far above any model this library can
 * run on a CPU, and each product of them stays exact in float64.
 */
export const CONFIG_LIMITS = {
  vocab: 1 << 22,
  width: 1 << 16,
  layers: 1024,
  heads: 1024,
  headDim: 4096,
  intermediate: 1 << 20,
  positions: 1 << 24,
  moduleLayers: 256,
  /** RoPE base and rescaling factors (rope_theta, rope_scaling.*). */
  ropeTheta: 1e12,
  ropeFactor: 1 << 16,
} as const;

const int = (min: number, max = 0x7fffffff) => z.number().int().min(min).max(max);
const tokenId = z.union([int(0), z.array(int(0)).nonempty(), z.null()]).optional();
const L = CONFIG_LIMITS;

const recycleSchema = z.object({
  num_layers: int(1, L.moduleLayers),
  loss_weight: z.number().nonnegative().default(1),
  hidden: z.literal('pre_norm').default('pre_norm'),
});

const gpt2Schema = z.object({
  model_type: z.literal('gpt2'),
  vocab_size: int(1, L.vocab),
  n_embd: int(1, L.width),
  n_layer: int(1, L.layers),
  n_head: int(1, L.heads),
  n_positions: int(1, L.positions),
  n_inner: int(1, L.intermediate).nullable().optional(),
  layer_norm_epsilon: z.number().positive().default(1e-5),
  activation_function: z.enum(['gelu_new', 'gelu_pytorch_tanh']).default('gelu_new'),
  tie_word_embeddings: z.literal(true).default(true),
  bos_token_id: tokenId,
  eos_token_id: tokenId,
  recycle: recycleSchema.optional(),
});

const ropeObject = z.record(z.string(), z.unknown());
const ropeFactor = z.number().positive().max(L.ropeFactor);

const ropeLinearSchema = z.object({ factor: ropeFactor });

const ropeLlama3Schema = z
  .object({
    factor: ropeFactor,
    low_freq_factor: ropeFactor,
    high_freq_factor: ropeFactor,
    original_max_position_embeddings: int(1, L.positions),
  })
  .refine((r) => r.low_freq_factor < r.high_freq_factor, {
    message: 'must be above low_freq_factor (the smoothing band would be empty)',
    path: ['high_freq_factor'],
  });

const llamaSchema = z.object({
  model_type: z.enum(['llama', 'qwen2']),
  vocab_size: int(1, L.vocab),
  hidden_size: int(1, L.width),
  intermediate_size: int(1, L.intermediate),
  num_hidden_layers: int(1, L.layers),
  num_attention_heads: int(1, L.heads),
  num_key_value_heads: int(1, L.heads).optional(),
  head_dim: int(1, L.headDim).nullable().optional(),
  hidden_act: z.literal('silu').default('silu'),
  max_position_embeddings: int(1, L.positions),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().max(L.ropeTheta).default(10000),
  rope_scaling: ropeObject.nullable().optional(),
  rope_parameters: ropeObject.nullable().optional(),
  partial_rotary_factor: z.literal(1, { message: 'partial rotary embeddings are not supported (1 only)' }).optional(),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  use_sliding_window: z
    .literal(false, { message: 'sliding-window attention is not supported (full causal attention only)' })
    .optional(),
  tie_word_embeddings: z.boolean().default(false),
  bos_token_id: tokenId,
  eos_token_id: tokenId,
  recycle: recycleSchema.optional(),
});

function firstId(v: number | number[] | null | undefined): number | null {
  if (v === undefined || v === null) return null;
  return Array.isArray(v) ? (v[0] ?? null) : v;
}

function recycleOf(r: z.infer<typeof recycleSchema> | undefined): RecycleConfig | null {
  return r ? { numLayers: r.num_layers, lossWeight: r.loss_weight } : null;
}

/** The message of a zod failure, naming the field under `prefix`. */
function zodIssue(where: string, prefix: string, error: z.ZodError): Error {
  const issue = error.issues[0]!;
  const field = [prefix, ...issue.path.map(String)].filter((p) => p !== '').join('.') || '(root)';
  return new Error(`${where}: field "${field}": ${issue.message}`);
}

/** The RoPE rescalings this library computes (model/rope.ts); "dynamic", "yarn", "longrope" … are refused. */
const SUPPORTED_ROPE = ['llama3', 'linear'] as const;

/**
 * A `rope_scaling` (or transformers 5 `rope_parameters`) object: its `rope_type` (or legacy `type`) and that type's
 * parameters. "default" is no rescaling; "dynamic", "yarn", "longrope" and any other type are refused by name.
 */
function parseRopeScaling(raw: Record<string, unknown>, field: string, where: string): RopeScaling | null {
  const typeKey = 'rope_type' in raw ? 'rope_type' : 'type' in raw ? 'type' : null;
  const type = typeKey ? raw[typeKey] : undefined;
  if (typeKey === null || typeof type !== 'string') {
    if (typeKey === null && field === 'rope_parameters') return null; // only rope_theta
    throw new Error(`${where}: field "${field}.${typeKey ?? 'rope_type'}": expected a RoPE type string`);
  }
  if (type === 'default') return null;
  if (type === 'linear') {
    const r = ropeLinearSchema.safeParse(raw);
    if (!r.success) throw zodIssue(where, field, r.error);
    return { type: 'linear', factor: r.data.factor };
  }
  if (type === 'llama3') {
    const r = ropeLlama3Schema.safeParse(raw);
    if (!r.success) throw zodIssue(where, field, r.error);
    return {
      type: 'llama3',
      factor: r.data.factor,
      lowFreqFactor: r.data.low_freq_factor,
      highFreqFactor: r.data.high_freq_factor,
      originalMaxPositions: r.data.original_max_position_embeddings,
    };
  }
  const supported = ['default', ...SUPPORTED_ROPE].map((t) => `"${t}"`).join(', ');
  throw new Error(
    `${where}: field "${field}.${typeKey}": RoPE scaling type ${JSON.stringify(type)} is not supported ` +
      `(supported: ${supported})`,
  );
}

/**
 * RoPE of a Llama-family config: rope_theta and rope_scaling, or transformers 5's rope_parameters (which carries
 * rope_theta itself; a per-layer-type dictionary of them is refused).
 */
function ropeOf(c: z.infer<typeof llamaSchema>, where: string): { theta: number; scaling: RopeScaling | null } {
  const params = c.rope_parameters;
  if (c.rope_scaling || !params) {
    return {
      theta: c.rope_theta,
      scaling: c.rope_scaling ? parseRopeScaling(c.rope_scaling, 'rope_scaling', where) : null,
    };
  }
  const nested = Object.keys(params).find((k) => typeof params[k] === 'object' && params[k] !== null);
  if (nested !== undefined) {
    throw new Error(`${where}: field "rope_parameters.${nested}": per-layer-type RoPE parameters are not supported`);
  }
  let theta = c.rope_theta;
  if ('rope_theta' in params) {
    const t = z.number().positive().max(L.ropeTheta).safeParse(params.rope_theta);
    if (!t.success) throw zodIssue(where, 'rope_parameters.rope_theta', t.error);
    theta = t.data;
  }
  return { theta, scaling: parseRopeScaling(params, 'rope_parameters', where) };
}

/** Validate a parsed config.json. `where` names the file in errors. */
export function parseConfig(json: unknown, where = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${where}: expected a JSON object`);
  }
  const type = (json as { model_type?: unknown }).model_type;
  if (type !== 'gpt2' && type !== 'llama' && type !== 'qwen2') {
    throw new Error(
      `${where}: model_type must be "gpt2" or "llama" (or the Llama-family "qwen2"), got ${JSON.stringify(type)}`,
    );
  }
  const schema = type === 'gpt2' ? gpt2Schema : llamaSchema;
  const r = schema.safeParse(json);
  if (!r.success) throw zodIssue(where, '', r.error);
  let cfg: ModelConfig;
  if (r.data.model_type === 'gpt2') {
    const c = r.data;
    cfg = {
      arch: 'gpt2',
      vocabSize: c.vocab_size,
      hidden: c.n_embd,
      nLayers: c.n_layer,
      nHeads: c.n_head,
      nKvHeads: c.n_head,
      headDim: c.n_embd / c.n_head,
      intermediate: c.n_inner ?? 4 * c.n_embd,
      maxPositions: c.n_positions,
      normEps: c.layer_norm_epsilon,
      ropeTheta: 0,
      tieEmbeddings: true,
      bosTokenId: firstId(c.bos_token_id),
      eosTokenId: firstId(c.eos_token_id),
      recycle: recycleOf(c.recycle),
    };
  } else {
    const c = r.data as z.infer<typeof llamaSchema>;
    const kv = c.num_key_value_heads ?? c.num_attention_heads;
    const rope = ropeOf(c, where);
    // transformers: Qwen2Attention has q/k/v biases and none on o_proj (no attention_bias key), a bias-free MLP;
    // LlamaAttention puts attention_bias on q, k, v and o, LlamaMLP mlp_bias on gate, up and down.
    const qwen2 = c.model_type === 'qwen2';
    cfg = {
      arch: 'llama',
      vocabSize: c.vocab_size,
      hidden: c.hidden_size,
      nLayers: c.num_hidden_layers,
      nHeads: c.num_attention_heads,
      nKvHeads: kv,
      headDim: c.head_dim ?? c.hidden_size / c.num_attention_heads,
      intermediate: c.intermediate_size,
      maxPositions: c.max_position_embeddings,
      normEps: c.rms_norm_eps,
      ropeTheta: rope.theta,
      ropeScaling: rope.scaling,
      qkvBias: qwen2 || c.attention_bias,
      oBias: !qwen2 && c.attention_bias,
      mlpBias: !qwen2 && c.mlp_bias,
      modelType: c.model_type,
      tieEmbeddings: c.tie_word_embeddings,
      bosTokenId: firstId(c.bos_token_id),
      eosTokenId: firstId(c.eos_token_id),
      recycle: recycleOf(c.recycle),
    };
  }
  validateConfig(cfg, where);
  return cfg;
}

/** Cross-field checks shared by parsed configs and presets. */
export function validateConfig(c: ModelConfig, where = 'config'): void {
  const bad = (field: string, msg: string): never => {
    throw new Error(`${where}: ${field}: ${msg}`);
  };
  if (!Number.isInteger(c.headDim)) bad('hidden/heads', `width ${c.hidden} is not a multiple of ${c.nHeads} heads`);
  const sizes: Array<[string, number, number, number]> = [
    ['vocab_size', c.vocabSize, 1, L.vocab],
    ['hidden', c.hidden, 1, L.width],
    ['layers', c.nLayers, 1, L.layers],
    ['heads', c.nHeads, 1, L.heads],
    ['kv_heads', c.nKvHeads, 1, L.heads],
    ['head_dim', c.headDim, 1, L.headDim],
    ['intermediate', c.intermediate, 1, L.intermediate],
    ['positions', c.maxPositions, 1, L.positions],
  ];
  if (c.recycle) sizes.push(['recycle.num_layers', c.recycle.numLayers, 1, L.moduleLayers]);
  for (const [field, v, min, max] of sizes) {
    if (!Number.isInteger(v) || v < min || v > max) bad(field, `${v} is outside [${min}, ${max}]`);
  }
  if (c.nHeads % c.nKvHeads !== 0) bad('num_key_value_heads', `${c.nKvHeads} does not divide ${c.nHeads} heads`);
  if (c.arch === 'llama' && c.headDim % 2 !== 0) bad('head_dim', `RoPE needs an even head dim, got ${c.headDim}`);
  // GPT-2 splits the width into heads; a Llama-family q/o projection is [H·D, C] / [C, H·D] with any H·D.
  if (c.arch === 'gpt2' && c.nHeads * c.headDim !== c.hidden) {
    bad('head_dim', `heads × head_dim = ${c.nHeads * c.headDim} must equal the width ${c.hidden}`);
  }
  if (c.nHeads * c.headDim > L.width) {
    bad('head_dim', `heads × head_dim = ${c.nHeads} × ${c.headDim} is above the attention width limit ${L.width}`);
  }
  if (c.arch === 'llama' && !(c.ropeTheta > 0 && c.ropeTheta <= L.ropeTheta)) {
    bad('rope_theta', `${c.ropeTheta} is outside (0, ${L.ropeTheta}]`);
  }
  if (c.arch === 'gpt2' && (c.ropeScaling || c.qkvBias || c.oBias || c.mlpBias || (c.modelType ?? 'gpt2') !== 'gpt2')) {
    bad('model_type', 'RoPE scaling, Llama-style biases and other model types are Llama-family settings');
  }
  if (c.arch === 'llama' && c.modelType === 'gpt2') bad('model_type', 'a Llama-family config cannot be "gpt2"');
  if (c.arch === 'llama') {
    const [qkv, o, mlp] = [c.qkvBias === true, c.oBias === true, c.mlpBias === true];
    if (c.modelType === 'qwen2' && (!qkv || o || mlp)) {
      bad('model_type', 'Qwen2 has q/k/v biases and no o_proj or MLP biases');
    }
    if (c.modelType !== 'qwen2' && qkv !== o) bad('attention_bias', 'Llama puts biases on all of q/k/v/o or on none');
  }
  const s = c.ropeScaling;
  if (s) {
    const factors: Array<[string, number]> = [['factor', s.factor]];
    if (s.type === 'llama3') factors.push(['low_freq_factor', s.lowFreqFactor], ['high_freq_factor', s.highFreqFactor]);
    for (const [k, v] of factors) {
      if (!(v > 0 && v <= L.ropeFactor)) bad(`rope_scaling.${k}`, `${v} is outside (0, ${L.ropeFactor}]`);
    }
    if (s.type === 'llama3') {
      if (!(s.lowFreqFactor < s.highFreqFactor)) {
        bad('rope_scaling.high_freq_factor', `${s.highFreqFactor} must be above low_freq_factor ${s.lowFreqFactor}`);
      }
      const p = s.originalMaxPositions;
      if (!Number.isInteger(p) || p < 1 || p > L.positions) {
        bad('rope_scaling.original_max_position_embeddings', `${p} is outside [1, ${L.positions}]`);
      }
    }
  }
  for (const [k, v] of [
    ['bos_token_id', c.bosTokenId],
    ['eos_token_id', c.eosTokenId],
  ] as const) {
    if (v !== null && v >= c.vocabSize) bad(k, `${v} is outside the vocabulary (${c.vocabSize})`);
  }
}

/** The HF-style config.json object for a config (inverse of parseConfig). */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  const recycle = c.recycle
    ? { recycle: { num_layers: c.recycle.numLayers, loss_weight: c.recycle.lossWeight, hidden: 'pre_norm' } }
    : {};
  if (c.arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      activation_function: 'gelu_new',
      n_embd: c.hidden,
      n_layer: c.nLayers,
      n_head: c.nHeads,
      n_positions: c.maxPositions,
      n_ctx: c.maxPositions,
      n_inner: c.intermediate === 4 * c.hidden ? null : c.intermediate,
      vocab_size: c.vocabSize,
      layer_norm_epsilon: c.normEps,
      bos_token_id: c.bosTokenId,
      eos_token_id: c.eosTokenId,
      tie_word_embeddings: true,
      ...recycle,
    };
  }
  const qwen2 = c.modelType === 'qwen2';
  // Qwen2's q/k/v biases are implied by its model_type; Llama spells them (and o's) as attention_bias.
  const biases = qwen2 ? {} : { attention_bias: c.qkvBias === true, mlp_bias: c.mlpBias === true };
  return {
    architectures: [qwen2 ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'],
    model_type: qwen2 ? 'qwen2' : 'llama',
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    rope_scaling: ropeScalingJson(c.ropeScaling ?? null),
    ...biases,
    ...(qwen2 ? { use_sliding_window: false } : {}),
    vocab_size: c.vocabSize,
    tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    torch_dtype: 'float32',
    ...recycle,
  };
}

function ropeScalingJson(s: RopeScaling | null): Record<string, unknown> | null {
  if (!s) return null;
  if (s.type === 'linear') return { rope_type: 'linear', factor: s.factor };
  return {
    rope_type: 'llama3',
    factor: s.factor,
    low_freq_factor: s.lowFreqFactor,
    high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositions,
  };
}

/** Default module depth: ceil(L/4), at least 1 (ARCHITECTURE.md §1.1). */
export function defaultRecycleLayers(nLayers: number): number {
  return Math.max(1, Math.ceil(nLayers / 4));
}
