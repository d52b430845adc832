/**
 * Crash-safe writes (DESIGN §7): data goes to a temporary file in the same folder, is flushed, then renamed over
 * the target, so a reader sees either the old file or the complete new one, never half of it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

function tmpSuffix(): string {
  return `${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** fsync a directory so a rename inside it is durable; some platforms cannot open directories, which is fine. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Windows and some filesystems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes all of `buf` at the current position of `fd` (writeSync may write less than asked). */
export function writeAll(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    off += fs.writeSync(fd, buf, off, Math.min(buf.length - off, 1 << 30));
  }
}

/**
 * Creates `file` atomically by letting `write` fill an open temporary file descriptor in the same folder.
 * On any error the temporary file is removed and the previous `file` (if any) is untouched.
 */
export function writeFileAtomicWith(file: string, write: (fd: number) => void): void {
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.tmp-${tmpSuffix()}`);
  const fd = fs.openSync(tmp, 'wx', 0o644);
  let ok = false;
  try {
    write(fd);
    fs.fsyncSync(fd);
    ok = true;
  } finally {
    fs.closeSync(fd);
    if (!ok) fs.rmSync(tmp, { force: true });
  }
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new Error(`writeFileAtomic: cannot rename ${tmp} to ${file}: ${(err as Error).message}`);
  }
  fsyncDir(dir);
}

/** Writes `data` (text as UTF-8, or bytes, or a sequence of byte chunks) to `file` atomically. */
export function writeFileAtomic(file: string, data: string | Uint8Array | Iterable<Uint8Array>): void {
  writeFileAtomicWith(file, (fd) => {
    if (typeof data === 'string') writeAll(fd, Buffer.from(data, 'utf8'));
    else if (data instanceof Uint8Array) writeAll(fd, data);
    else for (const chunk of data) writeAll(fd, chunk);
  });
}

/** fsyncs every regular file below `dir` and every directory itself (deepest first). */
function fsyncTree(dir: string): void {
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) fsyncTree(p);
    else if (ent.isFile()) {
      const fd = fs.openSync(p, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
  }
  fsyncDir(dir);
}

function stagingDirs(dir: string): { tmp: string; old: string } {
  const s = tmpSuffix();
  return { tmp: `${dir}.tmp-${s}`, old: `${dir}.old-${s}` };
}

function swapIn(dir: string, tmp: string, old: string): void {
  fsyncTree(tmp);
  const hadOld = fs.existsSync(dir);
  if (hadOld) fs.renameSync(dir, old);
  try {
    fs.renameSync(tmp, dir);
  } catch (err) {
    if (hadOld) fs.renameSync(old, dir); // put the previous version back
    throw err;
  }
  fsyncDir(path.dirname(dir));
  if (hadOld) fs.rmSync(old, { recursive: true, force: true });
}

/**
 * Replaces directory `dir` as a whole: `fill` writes the new contents into a fresh staging folder
 * (`DIR.tmp-XXXX`, same parent so the rename is atomic); then the old folder is renamed away, the new one renamed in,
 * and the old one removed. If `fill` throws, `dir` is untouched. A crash between the two renames leaves `DIR.old-XXXX`,
 * which {@link recoverReplacedDir} restores.
 */
export function replaceDirAtomic(dir: string, fill: (tmpDir: string) => void): void {
  const abs = path.resolve(dir);
  const { tmp, old } = stagingDirs(abs);
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fill(tmp);
    swapIn(abs, tmp, old);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** As {@link replaceDirAtomic}, for an asynchronous `fill`. */
export async function replaceDirAtomicAsync(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const abs = path.resolve(dir);
  const { tmp, old } = stagingDirs(abs);
  fs.mkdirSync(tmp, { recursive: true });
  try {
    await fill(tmp);
    swapIn(abs, tmp, old);
  } catch (err) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Cleans up after an interrupted {@link replaceDirAtomic}: if `dir` is missing but a `DIR.old-*` exists, the newest
 * one is renamed back; leftover `DIR.tmp-*` staging folders (never complete by construction) are removed.
 * Returns true when something was restored.
 */
export function recoverReplacedDir(dir: string): boolean {
  const abs = path.resolve(dir);
  const parent = path.dirname(abs);
  const base = path.basename(abs);
  if (!fs.existsSync(parent)) return false;
  const olds: Array<{ p: string; mtime: number }> = [];
  for (const name of fs.readdirSync(parent)) {
    const p = path.join(parent, name);
    if (name.startsWith(`${base}.tmp-`)) fs.rmSync(p, { recursive: true, force: true });
    else if (name.startsWith(`${base}.old-`)) olds.push({ p, mtime: fs.statSync(p).mtimeMs });
  }
  let restored = false;
  olds.sort((a, b) => b.mtime - a.mtime);
  if (!fs.existsSync(abs) && olds.length > 0) {
    fs.renameSync(olds[0].p, abs);
    olds.shift();
    restored = true;
  }
  for (const o of olds) fs.rmSync(o.p, { recursive: true, force: true });
  return restored;
}
