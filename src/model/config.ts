/**
 * Model configuration: the Hugging Face config.json of a GPT-2 or Llama base, plus our "recycle" section
 * (ARCHITECTURE.md §5). `parseConfig` validates a parsed JSON object and names the file and field on error;
 * `toHfConfig` writes it back in the same HF-style layout.
 */
import { z } from 'zod';

export type Arch = 'gpt2' | 'llama';

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

const llamaSchema = z.object({
  model_type: z.literal('llama'),
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
  rope_theta: z.number().positive().default(10000),
  rope_scaling: z.null().optional(),
  attention_bias: z.literal(false).optional(),
  mlp_bias: z.literal(false).optional(),
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

/** Validate a parsed config.json. `where` names the file in errors. */
export function parseConfig(json: unknown, where = 'config.json'): ModelConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new Error(`${where}: expected a JSON object`);
  }
  const type = (json as { model_type?: unknown }).model_type;
  if (type !== 'gpt2' && type !== 'llama') {
    throw new Error(`${where}: model_type must be "gpt2" or "llama", got ${JSON.stringify(type)}`);
  }
  const schema = type === 'gpt2' ? gpt2Schema : llamaSchema;
  const r = schema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    throw new Error(`${where}: field "${field}": ${issue.message}`);
  }
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
      ropeTheta: c.rope_theta,
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
  if (c.arch === 'llama' && c.nHeads * c.headDim !== c.hidden) {
    bad('head_dim', `heads × head_dim = ${c.nHeads * c.headDim} must equal hidden_size ${c.hidden}`);
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
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
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
    vocab_size: c.vocabSize,
    tie_word_embeddings: c.tieEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId,
    torch_dtype: 'float32',
    ...recycle,
  };
}

/** Default module depth: ceil(L/4), at least 1 (ARCHITECTURE.md §1.1). */
export function defaultRecycleLayers(nLayers: number): number {
  return Math.max(1, Math.ceil(nLayers / 4));
}
