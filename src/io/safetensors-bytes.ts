/**
 * The part of safetensors reading that needs no file system: the header checks, tensor decoding, and a reader over
 * bytes in memory. The Node reader (safetensors.ts) reads through a file descriptor with the same functions, so a
 * file on disk and the same bytes in memory pass exactly the same checks. No `node:` import: the browser core uses it.
 *
 * Format (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}`, then the data. Offsets are
 * relative to the end of the header. Nothing read is trusted (DESIGN §7): every size and offset is checked before use
 * and every error names the file (or "(bytes)"), the tensor or field, and the value.
 */
import { parseJson } from './json.js';
import { bf16ToF32Array, f16ToF32Array } from '../kernels/half.js';

/**
 * dtypes we read (all can be upcast to float32, exactly for I8); anything else is rejected by name. I8 holds the
 * quants of a q8_0 weight in a quantized model directory (ARCHITECTURE.md §5), read as stored into an Int8Array.
 */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64' | 'I8';
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I32: 4,
  I64: 8,
  I8: 1,
};
/** dtypes that exist in the format but that we do not convert: named in the error instead of "unknown". */
const KNOWN_UNSUPPORTED = [
  'BOOL',
  'U8',
  'U16',
  'I16',
  'U32',
  'U64',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'C64',
];

/** Largest header we accept: HF's own reader caps it at 100 MB; real headers are a few hundred KB. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** absolute byte range in the file */
  readonly begin: number;
  readonly end: number;
}

export interface LoadedTensor {
  readonly dtype: SafetensorsDtype;
  readonly shape: number[];
  readonly data: Float32Array;
}

export interface SafetensorsFile {
  readonly tensors: Map<string, LoadedTensor>;
  readonly metadata: Record<string, string>;
}

/** Fills `dst` with the bytes at absolute position `pos`; `what` names the read in errors (short reads throw). */
export type ReadAt = (dst: Uint8Array, pos: number, what: string) => void;

// Typed arrays use the host's byte order and the format is little-endian; every engine we target is little-endian.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('safetensors: this reader assumes a little-endian host');
}

function isDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** Validates the parsed header; returns tensors sorted by file offset. Pure, so tests can call it directly. */
export function parseHeader(
  file: string,
  header: unknown,
  dataStart: number,
  fileSize: number,
): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const where = `safetensors ${file}`;
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new Error(`${where}: header must be a JSON object, got ${describe(header)}`);
  }
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const infos = new Map<string, TensorInfo>();
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
        throw new Error(`${where}: __metadata__ must be an object of strings, got ${describe(raw)}`);
      }
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`${where}: __metadata__.${k} must be a string, got ${describe(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const t = `${where}: tensor "${name}"`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new Error(`${t}: entry must be an object, got ${describe(raw)}`);
    }
    const { dtype, shape, data_offsets: offs } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string') throw new Error(`${t}: dtype must be a string, got ${describe(dtype)}`);
    if (!isDtype(dtype)) {
      const why = KNOWN_UNSUPPORTED.includes(dtype) ? 'unsupported' : 'unknown';
      throw new Error(`${t}: ${why} dtype ${describe(dtype)} (supported: ${Object.keys(DTYPE_BYTES).join(', ')})`);
    }
    if (!Array.isArray(shape)) throw new Error(`${t}: shape must be an array, got ${describe(shape)}`);
    let count = 1;
    shape.forEach((d: unknown, i: number) => {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
        throw new Error(`${t}: shape[${i}] must be a non-negative integer, got ${describe(d)}`);
      }
      count *= d;
    });
    if (!Number.isSafeInteger(count)) throw new Error(`${t}: shape ${describe(shape)} has too many elements`);
    if (!Array.isArray(offs) || offs.length !== 2) {
      throw new Error(`${t}: data_offsets must be [begin, end], got ${describe(offs)}`);
    }
    const [b, e] = offs as unknown[];
    for (const [k, v] of [
      ['begin', b],
      ['end', e],
    ] as const) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
        throw new Error(`${t}: data_offsets ${k} must be a non-negative integer, got ${describe(v)}`);
      }
    }
    const begin = b as number;
    const end = e as number;
    if (end < begin) throw new Error(`${t}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataSize) {
      throw new Error(
        `${t}: data_offsets [${begin}, ${end}] run past the end of the file (data section is ${dataSize} bytes)`,
      );
    }
    const want = count * DTYPE_BYTES[dtype];
    if (want !== end - begin) {
      throw new Error(
        `${t}: shape ${describe(shape)} of ${dtype} needs ${want} bytes ` +
          `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
      );
    }
    infos.set(name, { dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end });
  }
  // As the reference reader: the tensors tile the data section exactly, in offset order. No two share bytes, no
  // byte belongs to none (a hole could hide data), and nothing follows the last tensor.
  const sorted = [...infos.entries()].sort((x, y) => x[1].begin - y[1].begin || x[1].end - y[1].end);
  let next = dataStart;
  let prev = '';
  for (const [n, i] of sorted) {
    const range = (x: TensorInfo): string => `[${x.begin - dataStart}, ${x.end - dataStart}]`;
    if (i.begin < next) throw new Error(`${where}: tensors "${prev}" and "${n}" ${range(i)} overlap`);
    if (i.begin > next) {
      throw new Error(
        `${where}: data bytes [${next - dataStart}, ${i.begin - dataStart}) before tensor "${n}" belong to no tensor`,
      );
    }
    next = i.end;
    prev = n;
  }
  if (next !== dataStart + dataSize) {
    throw new Error(
      `${where}: ${dataStart + dataSize - next} trailing bytes after the last tensor ` +
        `(data section is ${dataSize} bytes)`,
    );
  }
  return { infos: new Map(sorted), metadata };
}

/**
 * Reads and checks the header of a `size`-byte safetensors file through `read`: the length prefix, its bounds, strict
 * UTF-8, strict JSON (io/json.ts), then parseHeader.
 */
export function readHeader(
  file: string,
  size: number,
  read: ReadAt,
): { infos: Map<string, TensorInfo>; metadata: Record<string, string> } {
  if (size < 8) throw new Error(`safetensors ${file}: file is ${size} bytes, too short for the 8-byte header length`);
  const lenBuf = new Uint8Array(8);
  read(lenBuf, 0, 'header length');
  const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new Error(`safetensors ${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const headerLen = Number(n);
  if (8 + headerLen > size) {
    throw new Error(`safetensors ${file}: header length ${headerLen} runs past the end of the ${size}-byte file`);
  }
  if (headerLen < 2) throw new Error(`safetensors ${file}: header length ${headerLen} is too short for a JSON object`);
  const hb = new Uint8Array(headerLen);
  read(hb, 8, 'header');
  let text: string;
  try {
    // ignoreBOM: a byte-order mark stays in the text and is rejected by the parser, as the reference does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(hb);
  } catch {
    throw new Error(`safetensors ${file}: header is not valid UTF-8`);
  }
  const json = parseJson(text, `safetensors ${file}: header`, { maxDepth: 8 });
  return parseHeader(file, json, 8 + headerLen, size);
}

/**
 * Reads one tensor through `read`, upcast to float32. The raw values are read straight into a fresh typed array
 * (4-byte aligned whatever the file offset), so F32 needs no second copy.
 */
export function readTensor(file: string, name: string, info: TensorInfo, read: ReadAt): LoadedTensor {
  const count = (info.end - info.begin) / DTYPE_BYTES[info.dtype];
  const what = `tensor "${name}"`;
  const fill = (a: { buffer: ArrayBufferLike }): void => read(new Uint8Array(a.buffer), info.begin, what);
  let data: Float32Array;
  switch (info.dtype) {
    case 'F32':
      data = new Float32Array(count);
      fill(data);
      break;
    case 'F16':
    case 'BF16': {
      const half = new Uint16Array(count);
      fill(half);
      data = info.dtype === 'F16' ? f16ToF32Array(half) : bf16ToF32Array(half);
      break;
    }
    case 'F64': {
      const d = new Float64Array(count);
      fill(d);
      data = Float32Array.from(d);
      break;
    }
    case 'I8': {
      const q = new Int8Array(count);
      fill(q);
      data = Float32Array.from(q);
      break;
    }
    case 'I32':
    case 'I64': {
      const src = info.dtype === 'I32' ? new Int32Array(count) : new BigInt64Array(count);
      fill(src);
      data = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        const v = Number(src[i]);
        if (Math.fround(v) !== v) {
          throw new Error(
            `safetensors ${file}: ${what}: ${info.dtype} value ${src[i]} at index ${i} is not exact in float32`,
          );
        }
        data[i] = v;
      }
      break;
    }
  }
  return { dtype: info.dtype, shape: [...info.shape], data };
}

/** Where `readInto` puts a tensor's stored values: F32 → Float32Array, F16 / BF16 → Uint16Array, I8 → Int8Array. */
export type StoredArray = Float32Array | Uint16Array | Int8Array;

function fitsStored(dtype: SafetensorsDtype, dst: StoredArray): boolean {
  switch (dtype) {
    case 'F32':
      return dst instanceof Float32Array;
    case 'F16':
    case 'BF16':
      return dst instanceof Uint16Array;
    case 'I8':
      return dst instanceof Int8Array;
    default:
      return false;
  }
}

/**
 * Reads one tensor's stored values as they are into `dst`: F32 into a Float32Array, F16 / BF16 bits into a
 * Uint16Array, I8 into an Int8Array, with no conversion and no intermediate copy (a loader keeps weights in their
 * stored dtype this way).
 */
export function readTensorInto(file: string, name: string, info: TensorInfo, read: ReadAt, dst: StoredArray): void {
  if (!fitsStored(info.dtype, dst)) {
    throw new Error(
      `safetensors ${file}: tensor "${name}" is ${info.dtype}; ` +
        `it cannot be read as stored into ${dst.constructor.name}`,
    );
  }
  const count = (info.end - info.begin) / DTYPE_BYTES[info.dtype];
  if (dst.length !== count) {
    throw new Error(`safetensors ${file}: tensor "${name}" has ${count} elements, the destination ${dst.length}`);
  }
  read(new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), info.begin, `tensor "${name}"`);
}

/** What a reader of one safetensors file offers, on disk or in memory. */
export interface SafetensorsSource {
  readonly file: string;
  readonly metadata: Record<string, string>;
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** One tensor, widened to float32. */
  get(name: string): LoadedTensor;
  /** One F32 / F16 / BF16 / I8 tensor's stored values into `dst` (see readTensorInto). */
  readInto(name: string, dst: StoredArray): void;
  close(): void;
}

/** Bytes as given by a caller: a Uint8Array (or any view: a Node Buffer, a DataView) or an ArrayBuffer. */
export type Bytes = ArrayBufferView | ArrayBuffer;

/** `b` as a Uint8Array over the same memory (no copy); anything that is not bytes is an error naming `where`. */
export function asUint8Array(b: unknown, where: string): Uint8Array {
  if (b instanceof Uint8Array) return b;
  if (ArrayBuffer.isView(b)) return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  // toString, not instanceof: an ArrayBuffer from another realm (a worker, an iframe) is still one
  const tag = Object.prototype.toString.call(b);
  if (tag === '[object ArrayBuffer]' || tag === '[object SharedArrayBuffer]') return new Uint8Array(b as ArrayBuffer);
  throw new Error(`${where}: expected bytes (a Uint8Array or an ArrayBuffer), got ${describeKind(b)}`);
}

function describeKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return `an object (${Object.prototype.toString.call(v).slice(8, -1)})`;
  return typeof v;
}

/** Positioned reads from memory; short only if the caller's buffer shrank since the header was checked. */
function readFrom(b: Uint8Array, file: string): ReadAt {
  return (dst, pos, what) => {
    const src = b.subarray(pos, pos + dst.length);
    if (src.length !== dst.length) {
      throw new Error(`safetensors ${file}: ${what}: bytes end after ${pos + src.length} (the buffer was changed?)`);
    }
    dst.set(src);
  };
}

/**
 * What the file and the in-memory readers share: the checked header, and tensors read through the source's
 * `ReadAt` (null once closed).
 */
export abstract class CheckedSafetensors implements SafetensorsSource {
  constructor(
    readonly file: string,
    private readonly infos: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  /** The reader of the open source, or null when it was closed. */
  protected abstract readAt(): ReadAt | null;
  abstract close(): void;

  /** Tensor names in file order. */
  names(): string[] {
    return [...this.infos.keys()];
  }

  has(name: string): boolean {
    return this.infos.has(name);
  }

  info(name: string): TensorInfo {
    const i = this.infos.get(name);
    if (!i) throw new Error(`safetensors ${this.file}: no tensor named "${name}"`);
    return i;
  }

  /** One tensor, upcast to float32 (a fresh array: the source's bytes are never aliased). */
  get(name: string): LoadedTensor {
    return readTensor(this.file, name, this.info(name), this.open());
  }

  readInto(name: string, dst: StoredArray): void {
    readTensorInto(this.file, name, this.info(name), this.open(), dst);
  }

  private open(): ReadAt {
    const r = this.readAt();
    if (r === null) throw new Error(`safetensors ${this.file}: reader is closed`);
    return r;
  }
}

/** A safetensors file held in memory: the same checks as the file reader; tensors are decoded on demand. */
export class SafetensorsBytes extends CheckedSafetensors {
  private bytes: Uint8Array | null;

  /** `file` names the bytes in errors ("safetensors (bytes): header length ..."). */
  constructor(bytes: Bytes, file = '(bytes)') {
    const b = asUint8Array(bytes, `safetensors ${file}`);
    const parsed = readHeader(file, b.length, readFrom(b, file));
    super(file, parsed.infos, parsed.metadata);
    this.bytes = b;
  }

  protected readAt(): ReadAt | null {
    return this.bytes === null ? null : readFrom(this.bytes, this.file);
  }

  /** Drops the reference to the bytes. */
  close(): void {
    this.bytes = null;
  }
}
