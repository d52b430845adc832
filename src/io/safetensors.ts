/**
 * safetensors read/write (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {str: str}}`, then the data.
 * Offsets are relative to the end of the header. Nothing read from the file is trusted (DESIGN §7): every size and
 * offset is checked before use and every error names the file, the tensor or field, and the value.
 * Tensors are read one at a time with positioned reads, so a multi-GB file never sits in one Buffer. The checks and
 * the decoding are those of safetensors-bytes.ts (no `node:` import), which also reads the same format from memory.
 */
import * as fs from 'node:fs';
import { writeAll, writeFileAtomicWith } from './atomic.js';
import { openRegularFile } from './files.js';
import { f32ToF16Array } from '../kernels/half.js';
import {
  CheckedSafetensors,
  DTYPE_BYTES,
  describe,
  readHeader,
  type LoadedTensor,
  type ReadAt,
  type SafetensorsFile,
} from './safetensors-bytes.js';

export {
  MAX_HEADER_BYTES,
  parseHeader,
  SafetensorsBytes,
  type Bytes,
  type LoadedTensor,
  type SafetensorsDtype,
  type SafetensorsFile,
  type SafetensorsSource,
  type TensorInfo,
} from './safetensors-bytes.js';

/**
 * One tensor to write. Without `dtype`, `data` is float32 and is written as the file's dtype (WriteOptions.dtype:
 * F32, or F16 rounded to nearest even). With `dtype`, the values are written as given: F32 from a Float32Array
 * (or F16 converted from one), F16 / BF16 bits from a Uint16Array, I8 from an Int8Array.
 */
export interface WriteTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array | Uint16Array | Int8Array;
  readonly dtype?: WriteDtype;
}

/** The dtypes the writer writes. */
export type WriteDtype = 'F32' | 'F16' | 'BF16' | 'I8';

export interface WriteOptions {
  /** The dtype of float32 tensors that name none (F32 or F16). */
  dtype?: 'F32' | 'F16';
  metadata?: Record<string, string>;
}

/** Positioned reads from `fd` that fill `dst` or throw (a file that ends early was truncated under us). */
function readFromFd(fd: number, file: string): ReadAt {
  return (buf, pos, what) => {
    let off = 0;
    while (off < buf.length) {
      const n = fs.readSync(fd, buf, off, Math.min(buf.length - off, 1 << 30), pos + off);
      if (n === 0) throw new Error(`safetensors ${file}: ${what}: file ended after ${pos + off} bytes (truncated?)`);
      off += n;
    }
  };
}

/**
 * An open safetensors file: the header is parsed and checked up front, tensor data is read on demand.
 * Call close() when done (readSafetensors does it for you).
 */
export class SafetensorsReader extends CheckedSafetensors {
  private fd: number | null;

  constructor(file: string) {
    const { fd, size } = openRegularFile(file, 'safetensors file');
    let parsed: ReturnType<typeof readHeader>;
    try {
      parsed = readHeader(file, size, readFromFd(fd, file));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    super(file, parsed.infos, parsed.metadata);
    this.fd = fd;
  }

  protected readAt(): ReadAt | null {
    return this.fd === null ? null : readFromFd(this.fd, this.file);
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

/** How a tensor's data is written: as its bytes, or float32 converted to F16 in slices. */
function encodingOf(where: string, t: WriteTensor, fileDtype: 'F32' | 'F16'): { dtype: WriteDtype; convert: boolean } {
  const d = t.data;
  const dtype = t.dtype ?? fileDtype;
  const ok =
    d instanceof Float32Array
      ? dtype === 'F32' || dtype === 'F16'
      : d instanceof Uint16Array
        ? dtype === 'F16' || dtype === 'BF16'
        : d instanceof Int8Array && dtype === 'I8';
  if (!ok || (!(d instanceof Float32Array) && t.dtype === undefined)) {
    const kind = (d as { constructor?: { name?: string } } | null)?.constructor?.name ?? typeof d;
    throw new Error(`${where}: ${kind} data cannot be written as ${describe(dtype)}`);
  }
  return { dtype, convert: d instanceof Float32Array && dtype === 'F16' };
}

/**
 * Writes tensors (in the given order, contiguous), atomically: float32 data as F32 or F16 (the tensor's `dtype`,
 * else `opts.dtype`), F16 / BF16 bits and I8 values as given. The header is padded with spaces to a multiple of 8
 * bytes so every tensor starts 8-byte aligned in the file, as the reference writer does.
 */
export function writeSafetensors(file: string, tensors: readonly WriteTensor[], opts: WriteOptions = {}): void {
  const fileDtype = opts.dtype ?? 'F32';
  if (fileDtype !== 'F32' && fileDtype !== 'F16')
    throw new Error(`writeSafetensors ${file}: dtype must be F32 or F16, got ${describe(fileDtype)}`);
  const header: Record<string, unknown> = {};
  if (opts.metadata && Object.keys(opts.metadata).length > 0) {
    for (const [k, v] of Object.entries(opts.metadata)) {
      if (typeof v !== 'string')
        throw new Error(`writeSafetensors ${file}: metadata.${k} must be a string, got ${describe(v)}`);
    }
    header.__metadata__ = opts.metadata;
  }
  const convert: boolean[] = [];
  let offset = 0;
  for (const t of tensors) {
    const where = `writeSafetensors ${file}: tensor "${t.name}"`;
    if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__')
      throw new Error(`${where}: invalid name`);
    if (Object.prototype.hasOwnProperty.call(header, t.name)) throw new Error(`${where}: duplicate name`);
    const enc = encodingOf(where, t, fileDtype);
    let count = 1;
    t.shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new Error(`${where}: shape[${i}] must be a non-negative integer, got ${d}`);
      count *= d;
    });
    if (count !== t.data.length) {
      throw new Error(`${where}: shape ${describe(t.shape)} has ${count} elements but data has ${t.data.length}`);
    }
    const bytes = count * DTYPE_BYTES[enc.dtype];
    header[t.name] = { dtype: enc.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    convert.push(enc.convert);
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(hb.length));
  writeFileAtomicWith(file, (fd) => {
    writeAll(fd, lenBuf);
    writeAll(fd, hb);
    tensors.forEach((t, i) => {
      const d = t.data;
      if (!convert[i]) writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      else {
        // convert in slices so a huge tensor does not need a second full-size copy at once
        const step = 1 << 20;
        for (let j = 0; j < d.length; j += step) {
          const h = f32ToF16Array(d.subarray(j, Math.min(d.length, j + step)) as Float32Array);
          writeAll(fd, new Uint8Array(h.buffer));
        }
      }
    });
  });
}
