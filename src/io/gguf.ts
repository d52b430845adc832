/**
 * GGUF v3 export (`recyclegpt export-gguf`): the base model as llama.cpp loads it, the recyclable module beside it as
 * safetensors.
 *
 * The file: magic "GGUF", version 3, tensor count, KV count, the KV metadata (typed values, arrays of them), the
 * tensor infos (name, dims innermost first, ggml type, offset into the data section), padding to the alignment
 * (general.alignment, 32), then each tensor's data at its offset, every offset a multiple of the alignment. Little
 * endian throughout. Written atomically (io/atomic.ts), one tensor at a time.
 *
 * Tensor data: F32, F16 (IEEE half bits), BF16, and Q8_0 as ggml stores it: blocks of 32 along a row, each
 * {float16 d; int8 qs[32]} (34 bytes) — our q8_0 weights (kernels/quant.ts) hold the same d and qs in two arrays,
 * interleaved here, so a q8_0 export is bit-exact.
 *
 * Layout as llama.cpp's own converter (convert_hf_to_gguf.py) writes it:
 * - a linear weight [out, in] (our internal layout, GPT-2's Conv1D already transposed at import) has dims
 *   [in, out]; the embedding [vocab, C] has dims [C, vocab];
 * - gpt2: token_embd, position_embd, output_norm(.bias), blk.N.{attn_norm, attn_qkv, attn_output, ffn_norm, ffn_up,
 *   ffn_down}(.weight/.bias); the head is tied, so there is no output.weight (llama.cpp then reads token_embd);
 * - llama: token_embd, output_norm, output (only when untied: without it llama.cpp ties to token_embd),
 *   blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, optional biases,
 *   rope_freqs for llama3 RoPE scaling. llama.cpp's llama rotates interleaved pairs (x[2i], x[2i+1]) while HF
 *   rotates halves (x[i], x[i+D/2]), so q_proj / k_proj rows (and their biases) are permuted within each head:
 *   GGUF row h·D + 2i + j = HF row h·D + j·D/2 + i.
 * - tokenizer: "gpt2" (byte-level BPE), pre-tokenizer "gpt-2" (GPT-2's regex, which our trainer's ByteLevel
 *   pre-tokenizer uses), tokens in id order (ids the tokenizer lacks up to the model's vocab are "[PADi]", unused),
 *   token types (normal; control for special added tokens, user-defined for other added ones), merges "a b", bos
 *   and eos ids (bos = eos where the model has none, as GPT-2), add_bos_token false.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeAll, writeFileAtomicWith } from './atomic.js';
import { readJsonFile } from './files.js';
import { exportTensors, loadModelDir } from './model-dir.js';
import { writeSafetensors } from './safetensors.js';
import type { StoredWeight } from '../kernels/backend.js';
import { Q8_BLOCK } from '../kernels/quant.js';
import { toHfConfig, type ModelConfig } from '../model/config.js';
import { convertWeights, weightToF32, type UserDtype } from '../model/convert.js';
import { basePrefix, baseParamSpecs, blockNames, moduleParamSpecs, topNames, type BlockNames } from '../model/names.js';
import type { Weights } from '../model/weights.js';
import { BYTE_TO_UNICODE } from '../tokenizer/bytes.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little endian
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types (gguf-py GGUFValueType). */
export const GGUF_VALUE_TYPE = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPE, 'array'>;

/** One metadata value: a scalar of a type, or an array of scalars of one type. */
export type GgufValue =
  | { type: Exclude<GgufScalarType, 'string' | 'bool' | 'u64' | 'i64'>; value: number }
  | { type: 'u64' | 'i64'; value: bigint | number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string'; values: readonly string[] }
  | { type: 'array'; itemType: 'i32' | 'u32' | 'f32'; values: ArrayLike<number> };

/** ggml tensor types written here (ggml.h enum ggml_type). */
export const GGML_TYPE = { f32: 0, f16: 1, q8_0: 8, bf16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPE;

/** A tensor to write: `shape` is row-major, outermost first (as numpy); GGUF lists it reversed. */
export interface GgufTensor {
  name: string;
  shape: readonly number[];
  type: GgmlType;
  /** f32: float32 values; f16 / bf16: the bits; q8_0: quants and float16 scale bits (one per 32 along a row). */
  data: Float32Array | Uint16Array | { qs: Int8Array; d: Uint16Array };
}

/** Bytes of a tensor's data in the file. */
export function ggmlBytes(type: GgmlType, count: number): number {
  if (type === 'f32') return 4 * count;
  if (type === 'q8_0') return (count / Q8_BLOCK) * (2 + Q8_BLOCK);
  return 2 * count;
}

const align = (n: number): number => Math.ceil(n / GGUF_ALIGNMENT) * GGUF_ALIGNMENT;

/** Growable little-endian byte buffer for the header. */
class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.length++);
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  scalar(type: GgufScalarType, v: number | bigint | boolean | string): void {
    const n = typeof v === 'number' ? v : 0;
    this.ensure(8);
    const b = this.buf,
      o = this.length;
    switch (type) {
      case 'u8':
        b.writeUInt8(n, o);
        this.length += 1;
        return;
      case 'i8':
        b.writeInt8(n, o);
        this.length += 1;
        return;
      case 'u16':
        b.writeUInt16LE(n, o);
        this.length += 2;
        return;
      case 'i16':
        b.writeInt16LE(n, o);
        this.length += 2;
        return;
      case 'u32':
        b.writeUInt32LE(n, o);
        this.length += 4;
        return;
      case 'i32':
        b.writeInt32LE(n, o);
        this.length += 4;
        return;
      case 'f32':
        b.writeFloatLE(n, o);
        this.length += 4;
        return;
      case 'f64':
        b.writeDoubleLE(n, o);
        this.length += 8;
        return;
      case 'u64':
        b.writeBigUInt64LE(BigInt(v as number | bigint), o);
        this.length += 8;
        return;
      case 'i64':
        b.writeBigInt64LE(BigInt(v as number | bigint), o);
        this.length += 8;
        return;
      case 'bool':
        b.writeUInt8(v ? 1 : 0, o);
        this.length += 1;
        return;
      case 'string':
        this.string(v as string);
        return;
    }
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.ensure(bytes.length);
    bytes.copy(this.buf, this.length);
    this.length += bytes.length;
  }
  pad(to: number): void {
    const n = to - this.length;
    this.ensure(n);
    this.buf.fill(0, this.length, to);
    this.length = to;
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function checkTensor(t: GgufTensor, where: string): number {
  if (t.shape.length < 1 || t.shape.length > 4)
    throw new Error(`${where}: tensor "${t.name}" has ${t.shape.length} dims (GGUF takes 1 to 4)`);
  for (const d of t.shape)
    if (!Number.isInteger(d) || d < 1) throw new Error(`${where}: tensor "${t.name}" has a bad dim ${d}`);
  const count = t.shape.reduce((a, b) => a * b, 1);
  const inner = t.shape[t.shape.length - 1]!;
  if (t.type === 'q8_0') {
    if (inner % Q8_BLOCK !== 0)
      throw new Error(
        `${where}: tensor "${t.name}" [${t.shape.join(', ')}] cannot be q8_0: rows of ${inner} are not a multiple ` +
          `of ${Q8_BLOCK}`,
      );
    const d = t.data as { qs: Int8Array; d: Uint16Array };
    if (!(d.qs instanceof Int8Array) || d.qs.length !== count || d.d.length !== count / Q8_BLOCK)
      throw new Error(`${where}: tensor "${t.name}": q8_0 data must be ${count} quants and ${count / 32} scales`);
  } else {
    const want = t.type === 'f32' ? Float32Array : Uint16Array;
    if (!(t.data instanceof want) || t.data.length !== count)
      throw new Error(`${where}: tensor "${t.name}": ${t.type} data must be a ${want.name} of ${count} values`);
  }
  return count;
}

/** The bytes of a tensor's data as the file stores them (views where possible). */
function tensorBytes(t: GgufTensor): Uint8Array {
  if (t.type !== 'q8_0') {
    const a = t.data as Float32Array | Uint16Array;
    return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  }
  const { qs, d } = t.data as { qs: Int8Array; d: Uint16Array };
  const blocks = d.length,
    out = Buffer.alloc(blocks * (2 + Q8_BLOCK));
  for (let b = 0; b < blocks; b++) {
    const o = b * (2 + Q8_BLOCK);
    out.writeUInt16LE(d[b]!, o);
    out.set(new Uint8Array(qs.buffer, qs.byteOffset + b * Q8_BLOCK, Q8_BLOCK), o + 2);
  }
  return out;
}

/** The header (up to and including the padding before the data section) and each tensor's data offset. */
export function encodeGgufHeader(
  metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensor[],
  where = 'gguf',
): { header: Buffer; offsets: number[]; dataBytes: number } {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.length);
  const keys = new Set<string>();
  for (const [key, v] of metadata) {
    if (keys.has(key)) throw new Error(`${where}: metadata key "${key}" given twice`);
    keys.add(key);
    w.string(key);
    w.u32(GGUF_VALUE_TYPE[v.type]);
    if (v.type !== 'array') {
      w.scalar(v.type, v.value);
      continue;
    }
    w.u32(GGUF_VALUE_TYPE[v.itemType]);
    w.u64(v.values.length);
    if (v.itemType === 'string') for (const s of v.values as readonly string[]) w.string(s);
    else for (let i = 0; i < v.values.length; i++) w.scalar(v.itemType, (v.values as ArrayLike<number>)[i]!);
  }
  const names = new Set<string>();
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new Error(`${where}: tensor "${t.name}" given twice`);
    names.add(t.name);
    const count = checkTensor(t, where);
    w.string(t.name);
    w.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) w.u64(t.shape[i]!);
    w.u32(GGML_TYPE[t.type]);
    w.u64(off);
    offsets.push(off);
    off = align(off + ggmlBytes(t.type, count));
  }
  w.pad(align(w.length));
  return { header: w.bytes(), offsets, dataBytes: off };
}

/**
 * Write a GGUF v3 file atomically. `general.alignment` is 32 (the default; written by the caller's metadata or
 * not at all). Tensors are written in order, each padded to the alignment.
 */
export function writeGguf(
  file: string,
  metadata: ReadonlyArray<readonly [string, GgufValue]>,
  tensors: readonly GgufTensor[],
  progress?: (done: number, total: number) => void,
): void {
  const { header, offsets } = encodeGgufHeader(metadata, tensors, file);
  const zeros = new Uint8Array(GGUF_ALIGNMENT);
  writeFileAtomicWith(file, (fd) => {
    writeAll(fd, header);
    let pos = 0;
    tensors.forEach((t, i) => {
      if (offsets[i]! > pos) writeAll(fd, zeros.subarray(0, offsets[i]! - pos));
      const bytes = tensorBytes(t);
      writeAll(fd, bytes);
      pos = offsets[i]! + bytes.length;
      progress?.(i + 1, tensors.length);
    });
    if (align(pos) > pos) writeAll(fd, zeros.subarray(0, align(pos) - pos));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Model → GGUF

/** The dtypes of `export-gguf --dtype`. */
export type GgufExportDtype = 'f32' | 'f16' | 'q8_0';
export const GGUF_EXPORT_DTYPES: readonly GgufExportDtype[] = ['f32', 'f16', 'q8_0'];

/** llama_ftype (general.file_type) of an export. */
const FILE_TYPE: Record<GgufExportDtype, number> = { f32: 0, f16: 1, q8_0: 7 };

const USER_DTYPE: Record<GgufExportDtype, UserDtype> = { f32: 'f32', f16: 'f16', q8_0: 'int8' };

/** A weight as a GGUF tensor of the given row-major shape, rows optionally reordered (`rowOf[g]` = source row). */
function weightTensor(name: string, w: StoredWeight, shape: readonly number[], rowOf?: Int32Array): GgufTensor {
  const rows = shape[0]!;
  const rowLen = shape.length === 1 ? 1 : shape[1]!;
  const perm = <T extends Float32Array | Uint16Array | Int8Array>(a: T, len: number): T => {
    if (!rowOf) return a;
    const out = new (a.constructor as new (n: number) => T)(a.length);
    for (let g = 0; g < rows; g++) out.set(a.subarray(rowOf[g]! * len, (rowOf[g]! + 1) * len), g * len);
    return out;
  };
  switch (w.dtype) {
    case 'f32':
      return { name, shape, type: 'f32', data: perm(w.data, rowLen) };
    case 'f16':
      return { name, shape, type: 'f16', data: perm(w.data, rowLen) };
    case 'bf16':
      return { name, shape, type: 'bf16', data: perm(w.data, rowLen) };
    case 'q8_0':
      return {
        name,
        shape,
        type: 'q8_0',
        data: { qs: perm(w.data, rowLen), d: perm(w.scales, rowLen / Q8_BLOCK) },
      };
  }
}

/**
 * llama.cpp's RoPE row order for q_proj / k_proj with `heads` heads of `headDim`: GGUF row h·D + 2i + j holds
 * HF row h·D + j·D/2 + i (convert_hf_to_gguf.py's permute).
 */
export function ropeRowOrder(heads: number, headDim: number): Int32Array {
  if (headDim % 2 !== 0) throw new Error(`gguf: head_dim ${headDim} is odd; RoPE needs pairs`);
  const half = headDim / 2,
    out = new Int32Array(heads * headDim);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) out[h * headDim + 2 * i + j] = h * headDim + j * half + i;
  return out;
}

/** The llama3 rope_freqs factors (convert_hf_to_gguf.py): one per frequency, dividing it. */
function llama3RopeFactors(c: ModelConfig): Float32Array {
  const s = c.ropeScaling;
  if (!s || s.type !== 'llama3') throw new Error('gguf: llama3 rope factors asked for without llama3 scaling');
  const dim = c.headDim,
    out = new Float32Array(dim / 2);
  const lowWave = s.originalMaxPositions / s.lowFreqFactor,
    highWave = s.originalMaxPositions / s.highFreqFactor;
  for (let i = 0; i < dim / 2; i++) {
    const freq = 1 / Math.pow(c.ropeTheta, (2 * i) / dim);
    const wave = (2 * Math.PI) / freq;
    if (wave < highWave) out[i] = 1;
    else if (wave > lowWave) out[i] = s.factor;
    else {
      const smooth = (s.originalMaxPositions / wave - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** Where each base tensor goes: the GGUF name, and the row order for llama's q/k. */
function ggufNames(c: ModelConfig): Map<string, { name: string; rowOf?: Int32Array }> {
  const m = new Map<string, { name: string; rowOf?: Int32Array }>();
  const top = topNames(c);
  m.set(top.tokenEmbedding, { name: 'token_embd.weight' });
  if (top.positionEmbedding) m.set(top.positionEmbedding, { name: 'position_embd.weight' });
  m.set(top.finalNorm, { name: 'output_norm.weight' });
  if (top.finalNormBias) m.set(top.finalNormBias, { name: 'output_norm.bias' });
  if (!c.tieEmbeddings) m.set(top.head, { name: 'output.weight' });
  const qOrder = c.arch === 'llama' ? ropeRowOrder(c.nHeads, c.headDim) : undefined;
  const kOrder = c.arch === 'llama' ? ropeRowOrder(c.nKvHeads, c.headDim) : undefined;
  const slots: [keyof BlockNames, string, Int32Array?][] = [
    ['norm1', 'attn_norm.weight'],
    ['norm1Bias', 'attn_norm.bias'],
    ['qkv', 'attn_qkv.weight'],
    ['qkvBias', 'attn_qkv.bias'],
    ['q', 'attn_q.weight', qOrder],
    ['qBias', 'attn_q.bias', qOrder],
    ['k', 'attn_k.weight', kOrder],
    ['kBias', 'attn_k.bias', kOrder],
    ['v', 'attn_v.weight'],
    ['vBias', 'attn_v.bias'],
    ['o', 'attn_output.weight'],
    ['oBias', 'attn_output.bias'],
    ['norm2', 'ffn_norm.weight'],
    ['norm2Bias', 'ffn_norm.bias'],
    ['gate', 'ffn_gate.weight'],
    ['gateBias', 'ffn_gate.bias'],
    ['up', 'ffn_up.weight'],
    ['upBias', 'ffn_up.bias'],
    ['down', 'ffn_down.weight'],
    ['downBias', 'ffn_down.bias'],
  ];
  for (let l = 0; l < c.nLayers; l++) {
    const b = blockNames(c, basePrefix(c.arch, l));
    for (const [slot, suffix, rowOf] of slots) {
      const hf = b[slot];
      if (hf) m.set(hf, { name: `blk.${l}.${suffix}`, rowOf });
    }
  }
  return m;
}

/** Checks that llama.cpp's architecture can run this config; throws naming what cannot. */
export function checkGgufExportable(c: ModelConfig): void {
  const type = c.modelType ?? c.arch;
  if (type !== 'gpt2' && type !== 'llama')
    throw new Error(`export-gguf: model_type "${type}" is not exported (gpt2 and llama are)`);
  if (c.arch === 'gpt2' && c.nKvHeads !== c.nHeads)
    throw new Error('export-gguf: a gpt2 model with grouped key/value heads has no llama.cpp equivalent');
  if (c.arch === 'gpt2' && c.headDim * c.nHeads !== c.hidden)
    throw new Error(`export-gguf: gpt2 needs heads × head_dim = hidden (${c.nHeads} × ${c.headDim} ≠ ${c.hidden})`);
}

/** The base model's tensors for GGUF, from weights already in their export storage. */
export function ggufModelTensors(c: ModelConfig, weights: Weights): GgufTensor[] {
  checkGgufExportable(c);
  const names = ggufNames(c);
  const out: GgufTensor[] = [];
  for (const spec of baseParamSpecs(c)) {
    const to = names.get(spec.name);
    if (!to) throw new Error(`export-gguf: no GGUF name for "${spec.name}"`);
    out.push(weightTensor(to.name, weights.weight(spec.name), spec.shape, to.rowOf));
  }
  if (c.arch === 'llama' && c.ropeScaling?.type === 'llama3')
    out.push({ name: 'rope_freqs.weight', shape: [c.headDim / 2], type: 'f32', data: llama3RopeFactors(c) });
  return out;
}

/** The architecture metadata (general.* and `{arch}.*`). */
export function ggufArchMetadata(c: ModelConfig, name: string, dtype: GgufExportDtype): [string, GgufValue][] {
  checkGgufExportable(c);
  const a = c.arch;
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  const kv: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: a }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', u32(FILE_TYPE[dtype])],
    ['general.quantization_version', u32(2)],
    ['general.alignment', u32(GGUF_ALIGNMENT)],
    [`${a}.vocab_size`, u32(c.vocabSize)],
    [`${a}.context_length`, u32(c.maxPositions)],
    [`${a}.embedding_length`, u32(c.hidden)],
    [`${a}.block_count`, u32(c.nLayers)],
    [`${a}.feed_forward_length`, u32(c.intermediate)],
    [`${a}.attention.head_count`, u32(c.nHeads)],
  ];
  if (a === 'gpt2') {
    kv.push([`${a}.attention.layer_norm_epsilon`, f32(c.normEps)]);
    return kv;
  }
  kv.push(
    [`${a}.attention.head_count_kv`, u32(c.nKvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(c.normEps)],
    [`${a}.attention.key_length`, u32(c.headDim)],
    [`${a}.attention.value_length`, u32(c.headDim)],
    [`${a}.rope.dimension_count`, u32(c.headDim)],
    [`${a}.rope.freq_base`, f32(c.ropeTheta)],
  );
  if (c.ropeScaling?.type === 'linear')
    kv.push(
      [`${a}.rope.scaling.type`, { type: 'string', value: 'linear' }],
      [`${a}.rope.scaling.factor`, f32(c.ropeScaling.factor)],
    );
  return kv;
}

/** llama.cpp token types (llama_token_type / gguf-py TokenType). */
export const GGUF_TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Whether a tokenizer.json pre-tokenizer is GPT-2's byte-level one (ByteLevel with its regex). */
function isGpt2PreTokenizer(p: unknown): boolean {
  return isObj(p) && p.type === 'ByteLevel' && p.use_regex !== false && p.add_prefix_space !== true;
}

/**
 * A stand-in tokenizer.json for a model without one (a bench preset's random weights): the 256 byte tokens, the
 * last id "<|endoftext|>" (special), every other id unused, no merges. llama.cpp loads it; ids are fed directly.
 */
export function placeholderTokenizerJson(vocabSize: number): Record<string, unknown> {
  if (vocabSize < 257)
    throw new Error(`export-gguf: a placeholder vocabulary needs 257 ids, the model has ${vocabSize}`);
  const vocab: Record<string, number> = {};
  BYTE_TO_UNICODE.forEach((ch, b) => (vocab[ch] = b));
  return {
    added_tokens: [{ id: vocabSize - 1, content: '<|endoftext|>', special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    model: { type: 'BPE', vocab, merges: [] },
  };
}

/** The tokenizer metadata of a byte-level BPE tokenizer.json for a model of `c`. */
export function ggufTokenizerMetadata(tokenizerJson: unknown, c: ModelConfig, file: string): [string, GgufValue][] {
  if (!isObj(tokenizerJson) || !isObj(tokenizerJson.model)) throw new Error(`${file}: not a tokenizer.json object`);
  const model = tokenizerJson.model;
  if (model.type !== undefined && model.type !== 'BPE')
    throw new Error(`${file}: model.type "${String(model.type)}": only byte-level BPE tokenizers export to GGUF`);
  if (!isGpt2PreTokenizer(tokenizerJson.pre_tokenizer))
    throw new Error(
      `${file}: pre_tokenizer must be GPT-2's ByteLevel (use_regex, no prefix space) to export as ` +
        `tokenizer.ggml.pre "gpt-2", got ${JSON.stringify(tokenizerJson.pre_tokenizer)?.slice(0, 80)}`,
    );
  if (tokenizerJson.normalizer !== null && tokenizerJson.normalizer !== undefined)
    throw new Error(`${file}: a normalizer is not supported by the GGUF export`);
  if (!isObj(model.vocab)) throw new Error(`${file}: model.vocab must be an object`);
  const V = c.vocabSize;
  const tokens: (string | undefined)[] = new Array<string | undefined>(V);
  const types = new Int32Array(V).fill(GGUF_TOKEN_TYPE.normal);
  const put = (tok: string, id: unknown, what: string): void => {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      throw new Error(`${file}: ${what} "${tok}" has a bad id ${String(id)}`);
    if (id >= V) throw new Error(`${file}: ${what} "${tok}" has id ${id}, beyond the model's vocab_size ${V}`);
    if (tokens[id] !== undefined && tokens[id] !== tok)
      throw new Error(`${file}: id ${id} is both "${tokens[id]}" and "${tok}"`);
    tokens[id] = tok;
  };
  for (const [tok, id] of Object.entries(model.vocab)) put(tok, id, 'token');
  const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [];
  for (const t of added) {
    if (!isObj(t) || typeof t.content !== 'string') throw new Error(`${file}: added_tokens: bad entry`);
    put(t.content, t.id, 'added token');
    types[t.id as number] = t.special === false ? GGUF_TOKEN_TYPE.userDefined : GGUF_TOKEN_TYPE.control;
  }
  for (let i = 0; i < V; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = GGUF_TOKEN_TYPE.unused;
    }
  }
  const merges = Array.isArray(model.merges) ? model.merges : [];
  const mergeStrings = merges.map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string')
      return `${m[0]} ${m[1]}`;
    throw new Error(`${file}: model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
  const eos = c.eosTokenId ?? added.find((t) => isObj(t) && t.special !== false)?.id;
  const kv: [string, GgufValue][] = [
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'gpt-2' }],
    ['tokenizer.ggml.tokens', { type: 'array', itemType: 'string', values: tokens as string[] }],
    ['tokenizer.ggml.token_type', { type: 'array', itemType: 'i32', values: types }],
    ['tokenizer.ggml.merges', { type: 'array', itemType: 'string', values: mergeStrings }],
  ];
  if (typeof eos === 'number') {
    kv.push(['tokenizer.ggml.bos_token_id', { type: 'u32', value: c.bosTokenId ?? eos }]);
    kv.push(['tokenizer.ggml.eos_token_id', { type: 'u32', value: eos }]);
  }
  kv.push(['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }]);
  kv.push(['tokenizer.ggml.add_eos_token', { type: 'bool', value: false }]);
  return kv;
}

/** `OUT.gguf` → `OUT.recycle.safetensors` (the module's file beside the GGUF). */
export function moduleFileFor(ggufFile: string): string {
  return `${ggufFile.replace(/\.gguf$/i, '')}.recycle.safetensors`;
}

export interface GgufExportOptions {
  dtype?: GgufExportDtype;
  /** general.name (default: the output file's name). */
  name?: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /** Called after each GGUF tensor is written (a progress bar). */
  progress?: (done: number, total: number) => void;
}

export interface GgufExportResult {
  file: string;
  bytes: number;
  tensors: number;
  /** The module's safetensors file, or null for a model without one. */
  moduleFile: string | null;
  /** Tensors kept in another dtype than asked (q8_0 needs rows of a multiple of 32: those stay f16). */
  kept: { name: string; dtype: string }[];
}

/**
 * Export a model (config, weights in any storage, tokenizer.json parsed) as GGUF at `file`, the module (if any)
 * as `moduleFileFor(file)`: F32 for an f32 export, else F16 (safetensors has no q8_0), with the model's config
 * (HF config.json with its "recycle" section) as the "config" metadata string.
 */
export function exportGguf(
  config: ModelConfig,
  weights: Weights,
  tokenizerJson: unknown,
  tokenizerFile: string,
  file: string,
  o: GgufExportOptions = {},
): GgufExportResult {
  const dtype = o.dtype ?? 'f32',
    log = o.log ?? (() => {});
  if (!GGUF_EXPORT_DTYPES.includes(dtype))
    throw new Error(`export-gguf: dtype must be one of ${GGUF_EXPORT_DTYPES.join(', ')}, got "${String(dtype)}"`);
  checkGgufExportable(config);
  const tokMeta = ggufTokenizerMetadata(tokenizerJson, config, tokenizerFile);
  const stored = convertWeights(weights, config, USER_DTYPE[dtype]);
  const tensors = ggufModelTensors(config, stored);
  const want = dtype === 'q8_0' ? 'q8_0' : dtype;
  const kept = tensors
    .filter((t) => t.shape.length === 2 && t.type !== want && t.name !== 'position_embd.weight')
    .map((t) => ({ name: t.name, dtype: t.type }));
  const meta = [...ggufArchMetadata(config, o.name ?? basename(file).replace(/\.gguf$/i, ''), dtype), ...tokMeta];
  const { dataBytes, header } = encodeGgufHeader(meta, tensors, file);
  const bytes = header.length + dataBytes;
  const big = bytes > 64 * 2 ** 20;
  let lastPct = -1;
  writeGguf(file, meta, tensors, (done, total) => {
    o.progress?.(done, total);
    const pct = Math.floor((100 * done) / total);
    if (big && pct >= lastPct + 10) {
      lastPct = pct;
      log(`export-gguf: ${done}/${total} tensors written (${pct}%)`);
    }
  });
  let moduleFile: string | null = null;
  const mspecs = moduleParamSpecs(config);
  if (mspecs.length > 0) {
    moduleFile = moduleFileFor(file);
    writeSafetensors(
      moduleFile,
      exportTensors(mspecs, (n) => weightToF32(weights.weight(n))),
      {
        dtype: dtype === 'f32' ? 'F32' : 'F16',
        metadata: { format: 'pt', config: JSON.stringify(toHfConfig(config)), base_gguf: basename(file) },
      },
    );
  }
  return { file, bytes, tensors: tensors.length, moduleFile, kept };
}

/** Export a model directory (config.json, weights, tokenizer.json). */
export function exportModelDirGguf(dir: string, file: string, o: GgufExportOptions = {}): GgufExportResult {
  const tokFile = join(dir, 'tokenizer.json');
  if (!existsSync(tokFile))
    throw new Error(`export-gguf: ${dir} has no tokenizer.json (llama.cpp needs the vocabulary in the GGUF)`);
  const { config, weights } = loadModelDir(dir);
  checkGgufExportable(config);
  const tok = readJsonFile(tokFile, 'tokenizer');
  return exportGguf(config, weights, tok, tokFile, file, { name: basename(dir), ...o });
}
