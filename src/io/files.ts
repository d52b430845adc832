/**
 * Reading the files of a model directory without trusting them: only regular files are opened (a FIFO named
 * config.json would block a read forever; a directory named model.safetensors fails with a bare EISDIR), sizes are
 * capped before anything is read, text must be valid UTF-8, and JSON goes through the strict parser (io/json.ts).
 * Symbolic links are followed on purpose: Hugging Face's cache is built of links into a blob store.
 */
import * as fs from 'node:fs';
import { parseJson, type JsonOptions, type JsonValue } from './json.js';

/** Largest JSON file read whole (tokenizer.json of a 256k vocabulary is ~20 MB). */
export const MAX_JSON_BYTES = 512 * 1024 * 1024;

/** Throws unless `file` (after links) is a regular file; returns its size. `what` names it in errors. */
export function regularFileSize(file: string, what = 'file'): number {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`${file}: ${what} not found`);
    throw new Error(`${file}: cannot read ${what}: ${(e as Error).message}`);
  }
  if (!st.isFile()) throw new Error(`${file}: ${what} is ${kindOf(st)}, not a regular file`);
  return st.size;
}

function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}

/** Opens a regular file for reading; returns the descriptor and its size (checked on the open file too). */
export function openRegularFile(file: string, what = 'file'): { fd: number; size: number } {
  regularFileSize(file, what);
  // O_NONBLOCK: if the path was swapped for a FIFO after the check, open does not wait for a writer.
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    throw new Error(`${file}: ${what} is ${kindOf(st)}, not a regular file`);
  }
  return { fd, size: st.size };
}

/** The whole of a regular file of at most `maxBytes` bytes, decoded as strict UTF-8. */
export function readTextFile(file: string, what = 'file', maxBytes = MAX_JSON_BYTES): string {
  const { fd, size } = openRegularFile(file, what);
  let buf: Buffer;
  try {
    if (size > maxBytes) throw new Error(`${file}: ${what} is ${size} bytes, more than the ${maxBytes}-byte limit`);
    buf = Buffer.alloc(size);
    let off = 0;
    while (off < size) {
      const n = fs.readSync(fd, buf, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== size) throw new Error(`${file}: ${what} shrank while it was read (${off} of ${size} bytes)`);
  } finally {
    fs.closeSync(fd);
  }
  try {
    // ignoreBOM keeps a byte-order mark in the text, so the JSON parser can name it instead of hiding it.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    throw new Error(`${file}: ${what} is not valid UTF-8 text`);
  }
}

/** A regular file read as text and parsed as strict JSON (errors name the file). */
export function readJsonFile(file: string, what = 'file', opts: JsonOptions = {}): JsonValue {
  return parseJson(readTextFile(file, what), file, opts);
}
