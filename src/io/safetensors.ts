/**
 * safetensors read/write (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}`, then the data.
 * Offsets are relative to the end of the header. Nothing read from the file is trusted (DESIGN §7): every size and
 * offset is checked before use and every error names the file, the tensor or field, and the value.
 * Tensors are read one at a time with positioned reads, so a multi-GB file never sits in one Buffer.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { writeAll, writeFileAtomicWith } from './atomic.js';
import { openRegularFile } from './files.js';
import { parseJson } from './json.js';
import { bf16ToF32Array, f16ToF32Array, f32ToF16Array } from './half.js';

/** dtypes we read (all upcast to float32); anything else is rejected by name. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'F64' | 'I32' | 'I64';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I32: 4, I64: 8 };
/** dtypes that exist in the format but that we do not convert: named in the error instead of "unknown". */
const KNOWN_UNSUPPORTED = [
  'BOOL',
  'U8',
  'I8',
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

export interface WriteTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

export interface WriteOptions {
  dtype?: 'F32' | 'F16';
  metadata?: Record<string, string>;
}

if (os.endianness() !== 'LE') throw new Error('safetensors: this reader assumes a little-endian host');

function isDtype(s: string): s is SafetensorsDtype {
  return Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

function describe(v: unknown): string {
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
        `${t}: shape ${describe(shape)} of ${dtype} needs ${want} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`,
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
      `${where}: ${dataStart + dataSize - next} trailing bytes after the last tensor (data section is ${dataSize} bytes)`,
    );
  }
  return { infos: new Map(sorted), metadata };
}

function readExact(fd: number, file: string, what: string, buf: Uint8Array, pos: number): void {
  let off = 0;
  while (off < buf.length) {
    const n = fs.readSync(fd, buf, off, Math.min(buf.length - off, 1 << 30), pos + off);
    if (n === 0) throw new Error(`safetensors ${file}: ${what}: file ended after ${pos + off} bytes (truncated?)`);
    off += n;
  }
}

/**
 * An open safetensors file: the header is parsed and checked up front, tensor data is read on demand.
 * Call close() when done (readSafetensors does it for you).
 */
export class SafetensorsReader {
  readonly file: string;
  readonly metadata: Record<string, string>;
  private readonly infos: Map<string, TensorInfo>;
  private fd: number | null;

  constructor(file: string) {
    this.file = file;
    const { fd, size } = openRegularFile(file, 'safetensors file');
    try {
      if (size < 8)
        throw new Error(`safetensors ${file}: file is ${size} bytes, too short for the 8-byte header length`);
      const lenBuf = new Uint8Array(8);
      readExact(fd, file, 'header length', lenBuf, 0);
      const n = new DataView(lenBuf.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new Error(`safetensors ${file}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const headerLen = Number(n);
      if (8 + headerLen > size) {
        throw new Error(`safetensors ${file}: header length ${headerLen} runs past the end of the ${size}-byte file`);
      }
      if (headerLen < 2)
        throw new Error(`safetensors ${file}: header length ${headerLen} is too short for a JSON object`);
      const hb = new Uint8Array(headerLen);
      readExact(fd, file, 'header', hb, 8);
      let text: string;
      try {
        // ignoreBOM: a byte-order mark stays in the text and is rejected by the parser, as the reference does.
        text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(hb);
      } catch {
        throw new Error(`safetensors ${file}: header is not valid UTF-8`);
      }
      const json = parseJson(text, `safetensors ${file}: header`, { maxDepth: 8 });
      const parsed = parseHeader(file, json, 8 + headerLen, size);
      this.infos = parsed.infos;
      this.metadata = parsed.metadata;
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    this.fd = fd;
  }

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

  /** Reads one tensor, upcast to float32. */
  get(name: string): LoadedTensor {
    if (this.fd === null) throw new Error(`safetensors ${this.file}: reader is closed`);
    const info = this.info(name);
    const bytes = info.end - info.begin;
    const count = bytes / DTYPE_BYTES[info.dtype];
    const what = `tensor "${name}"`;
    let data: Float32Array;
    switch (info.dtype) {
      case 'F32':
        data = new Float32Array(count); // fresh, hence 4-byte aligned even if the file offset is not
        readExact(this.fd, this.file, what, new Uint8Array(data.buffer), info.begin);
        break;
      case 'F16':
      case 'BF16': {
        const half = new Uint16Array(count);
        readExact(this.fd, this.file, what, new Uint8Array(half.buffer), info.begin);
        data = info.dtype === 'F16' ? f16ToF32Array(half) : bf16ToF32Array(half);
        break;
      }
      case 'F64': {
        const d = new Float64Array(count);
        readExact(this.fd, this.file, what, new Uint8Array(d.buffer), info.begin);
        data = Float32Array.from(d);
        break;
      }
      case 'I32':
      case 'I64': {
        const src = info.dtype === 'I32' ? new Int32Array(count) : new BigInt64Array(count);
        readExact(this.fd, this.file, what, new Uint8Array(src.buffer), info.begin);
        data = new Float32Array(count);
        for (let i = 0; i < count; i++) {
          const v = Number(src[i]);
          if (Math.fround(v) !== v) {
            throw new Error(
              `safetensors ${this.file}: ${what}: ${info.dtype} value ${src[i]} at index ${i} is not exact in float32`,
            );
          }
          data[i] = v;
        }
        break;
      }
    }
    return { dtype: info.dtype, shape: [...info.shape], data };
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

export function openSafetensors(file: string): SafetensorsReader {
  return new SafetensorsReader(file);
}

/** Reads every tensor of `file` (upcast to float32) and the metadata. */
export function readSafetensors(file: string): SafetensorsFile {
  const r = new SafetensorsReader(file);
  try {
    const tensors = new Map<string, LoadedTensor>();
    for (const name of r.names()) tensors.set(name, r.get(name));
    return { tensors, metadata: { ...r.metadata } };
  } finally {
    r.close();
  }
}

/**
 * Writes tensors (in the given order, contiguous) as F32 or F16, atomically. The header is padded with spaces to a
 * multiple of 8 bytes so every tensor starts 8-byte aligned in the file, as the reference writer does.
 */
export function writeSafetensors(file: string, tensors: readonly WriteTensor[], opts: WriteOptions = {}): void {
  const dtype = opts.dtype ?? 'F32';
  if (dtype !== 'F32' && dtype !== 'F16')
    throw new Error(`writeSafetensors ${file}: dtype must be F32 or F16, got ${describe(dtype)}`);
  const width = DTYPE_BYTES[dtype];
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length > 0) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string')
        throw new Error(`writeSafetensors ${file}: metadata.${k} must be a string, got ${describe(v)}`);
    }
    header.__metadata__ = opts.metadata;
  }
  let offset = 0;
  for (const t of tensors) {
    const where = `writeSafetensors ${file}: tensor "${t.name}"`;
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__')
      throw new Error(`${where}: invalid name`);
    if (Object.prototype.hasOwnProperty.call(header, t.name)) throw new Error(`${where}: duplicate name`);
    let count = 1;
    t.shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new Error(`${where}: shape[${i}] must be a non-negative integer, got ${d}`);
      count *= d;
    });
    if (count !== t.data.length) {
      throw new Error(`${where}: shape ${describe(t.shape)} has ${count} elements but data has ${t.data.length}`);
    }
    header[t.name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + count * width] };
    offset += count * width;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hb.length));
  writeFileAtomicWith(file, (fd) => {
    writeAll(fd, lenBuf);
    writeAll(fd, hb);
    for (const t of tensors) {
      const d = t.data;
      if (dtype === 'F32') writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      else {
        // convert in slices so a huge tensor does not need a second full-size copy at once
        const step = 1 << 20;
        for (let i = 0; i < d.length; i += step) {
          const h = f32ToF16Array(d.subarray(i, Math.min(d.length, i + step)));
          writeAll(fd, new Uint8Array(h.buffer));
        }
      }
    }
  });
}
