/**
 * Crash-safe writes (ARCHITECTURE.md §7): data goes to a temporary file in the same folder, is flushed, then renamed
 * over the target, so a reader sees either the old file or the complete new one, never half of it.
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

/**
 * The marker that makes a staging folder provably ours. It is the first thing written into `DIR.tmp-ID`, names the
 * target and the exact `DIR.old-ID` the swap will use, and says whether the contents are complete (fsynced).
 * Recovery touches only folders whose marker parses and matches their own name, so a user's `DIR.tmp-mine` or
 * `DIR.old-backup` is never deleted or renamed. It is removed from DIR once the swap is finished.
 */
export const SWAP_MARKER = '.recyclegpt-swap.json';
const SWAP_FORMAT = 'recyclegpt-dir-swap';

interface SwapMarker {
  format: typeof SWAP_FORMAT;
  version: 1;
  /** Base name of the directory being replaced. */
  target: string;
  /** Base name of the folder the previous version is renamed to during the swap. */
  old: string;
  /** True once the staging folder's contents are complete and on disk. */
  complete: boolean;
  /** Milliseconds since the epoch when the swap began (the newest complete one wins if several are left). */
  created: number;
}

/** The marker file `file` when it is well-formed, else null (missing, unreadable, not ours). */
function parseSwapMarker(file: string): SwapMarker | null {
  let v: unknown;
  try {
    v = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null; // no marker (or not a folder, or unreadable): not provably ours
  }
  if (typeof v !== 'object' || v === null) return null;
  const m = v as Partial<SwapMarker>;
  const ok =
    m.format === SWAP_FORMAT &&
    m.version === 1 &&
    typeof m.target === 'string' &&
    typeof m.old === 'string' &&
    typeof m.complete === 'boolean' &&
    typeof m.created === 'number' &&
    Number.isFinite(m.created);
  return ok ? (m as SwapMarker) : null;
}

/** The marker in `folder` (named `BASE.tmp-ID`) when it was written for that exact folder, else null. */
function readSwapMarker(folder: string, base: string, id: string): SwapMarker | null {
  const m = parseSwapMarker(path.join(folder, SWAP_MARKER));
  return m !== null && m.target === base && m.old === `${base}.old-${id}` ? m : null;
}

function writeSwapMarker(folder: string, m: SwapMarker): void {
  writeFileAtomic(path.join(folder, SWAP_MARKER), `${JSON.stringify(m)}\n`);
}

/**
 * One replacement of directory `dir`, as separate steps so each crash point can be reproduced (tests call them one
 * by one and stop, as a kill would). In order: {@link DirSwap.begin} creates `DIR.tmp-ID` with an incomplete
 * marker; the caller fills `tmp`; {@link seal} fsyncs it and marks it complete; {@link moveOldAway} renames DIR
 * to `DIR.old-ID`; {@link moveNewIn} renames the staging folder to DIR; {@link finish} removes the old folder and
 * then the marker. {@link recoverReplacedDir} completes or undoes a swap stopped between any two of these.
 */
export class DirSwap {
  readonly parent: string;
  readonly base: string;
  readonly tmp: string;
  readonly old: string;
  private marker: SwapMarker;
  private hadOld = false;

  private constructor(readonly target: string) {
    this.parent = path.dirname(target);
    this.base = path.basename(target);
    const id = tmpSuffix();
    this.tmp = path.join(this.parent, `${this.base}.tmp-${id}`);
    this.old = path.join(this.parent, `${this.base}.old-${id}`);
    this.marker = {
      format: SWAP_FORMAT,
      version: 1,
      target: this.base,
      old: path.basename(this.old),
      complete: false,
      created: Date.now(),
    };
  }

  /** Creates the staging folder (exclusively: never one that exists) with an incomplete marker. */
  static begin(dir: string): DirSwap {
    const swap = new DirSwap(path.resolve(dir));
    fs.mkdirSync(swap.parent, { recursive: true });
    fs.mkdirSync(swap.tmp); // throws EEXIST rather than adopt someone else's folder
    try {
      writeSwapMarker(swap.tmp, swap.marker);
    } catch (err) {
      fs.rmSync(swap.tmp, { recursive: true, force: true });
      throw err;
    }
    return swap;
  }

  /** The contents are complete: flush them, then mark the staging folder complete. */
  seal(): void {
    fsyncTree(this.tmp);
    this.marker = { ...this.marker, complete: true };
    writeSwapMarker(this.tmp, this.marker);
  }

  /** Renames the current DIR (if any) to `DIR.old-ID`. */
  moveOldAway(): void {
    if (!this.marker.complete) {
      throw new Error(`DirSwap: ${this.tmp} is not sealed; refusing to move ${this.target} away`);
    }
    this.hadOld = fs.existsSync(this.target);
    if (this.hadOld) fs.renameSync(this.target, this.old);
  }

  /** Renames the staging folder to DIR; on failure the previous DIR is put back. */
  moveNewIn(): void {
    try {
      fs.renameSync(this.tmp, this.target);
    } catch (err) {
      if (this.hadOld) fs.renameSync(this.old, this.target);
      throw err;
    }
    fsyncDir(this.parent);
  }

  /** Removes the previous version, then the marker (in this order, so the old folder stays provably ours). */
  finish(): void {
    fs.rmSync(this.old, { recursive: true, force: true });
    fs.rmSync(path.join(this.target, SWAP_MARKER), { force: true });
    fsyncDir(this.target);
  }

  /** Gives up before {@link moveNewIn}: DIR is put back if it was moved, the staging folder removed. */
  abort(): void {
    if (this.hadOld && !fs.existsSync(this.target) && fs.existsSync(this.old)) fs.renameSync(this.old, this.target);
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

function runSwap(swap: DirSwap): void {
  try {
    swap.seal();
    swap.moveOldAway();
    swap.moveNewIn();
  } catch (err) {
    swap.abort();
    throw err;
  }
  swap.finish();
}

/**
 * Replaces directory `dir` as a whole: `fill` writes the new contents into a fresh staging folder
 * (`DIR.tmp-ID`, same parent so the rename is atomic); then the old folder is renamed away, the new one renamed in,
 * and the old one removed (see {@link DirSwap}). If `fill` throws, `dir` is untouched and the staging folder is
 * removed. An earlier interrupted swap of `dir` is recovered first.
 */
export function replaceDirAtomic(dir: string, fill: (tmpDir: string) => void): void {
  recoverReplacedDir(dir);
  const swap = DirSwap.begin(dir);
  try {
    fill(swap.tmp);
  } catch (err) {
    swap.abort();
    throw err;
  }
  runSwap(swap);
}

/** As {@link replaceDirAtomic}, for an asynchronous `fill`. */
export async function replaceDirAtomicAsync(dir: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  recoverReplacedDir(dir);
  const swap = DirSwap.begin(dir);
  try {
    await fill(swap.tmp);
  } catch (err) {
    swap.abort();
    throw err;
  }
  runSwap(swap);
}

interface Staging {
  tmp: string;
  old: string;
  marker: SwapMarker;
}

/**
 * Completes or undoes an interrupted {@link replaceDirAtomic} of `dir`, touching only folders that carry our marker
 * (a `DIR.tmp-ID` whose marker names `dir` and `DIR.old-ID`, and the `DIR.old-ID` it names):
 *  - DIR missing, a complete staging folder: the swap is finished (renamed in, its old folder removed);
 *  - DIR missing, only an incomplete one: its old folder (if any) is renamed back, the staging folder removed;
 *  - DIR present: leftover staging folders and the old folders they name are removed, and a marker left inside DIR
 *    (a crash after the last rename) has its old folder and then itself removed.
 * Anything else next to DIR is left alone. Returns true when DIR was put back (restored or rolled forward).
 */
export function recoverReplacedDir(dir: string): boolean {
  const abs = path.resolve(dir);
  const parent = path.dirname(abs);
  const base = path.basename(abs);
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return false; // no parent folder: nothing was ever staged there
  }
  const stagings: Staging[] = [];
  const prefix = `${base}.tmp-`;
  for (const name of names) {
    if (!name.startsWith(prefix) || name.length === prefix.length) continue;
    const tmp = path.join(parent, name);
    const marker = readSwapMarker(tmp, base, name.slice(prefix.length));
    if (marker) stagings.push({ tmp, old: path.join(parent, marker.old), marker });
  }
  // newest first: if several complete ones were left, the newest is the latest checkpoint
  stagings.sort((a, b) => b.marker.created - a.marker.created);

  let restored = false;
  if (!fs.existsSync(abs)) {
    const complete = stagings.find((s) => s.marker.complete);
    const moved = stagings.find((s) => fs.existsSync(s.old));
    if (complete) {
      fs.renameSync(complete.tmp, abs); // roll forward: the new contents were complete and flushed
      fsyncDir(parent);
      fs.rmSync(complete.old, { recursive: true, force: true });
      restored = true;
    } else if (moved) {
      fs.renameSync(moved.old, abs); // roll back: put the previous version where it was
      fsyncDir(parent);
      restored = true;
    }
  }
  for (const s of stagings) {
    if (!fs.existsSync(s.tmp)) continue; // the one rolled forward
    fs.rmSync(s.old, { recursive: true, force: true });
    fs.rmSync(s.tmp, { recursive: true, force: true });
  }
  // a crash after the last rename leaves the marker in DIR, naming the old folder still to remove
  if (fs.existsSync(abs)) {
    const own = path.join(abs, SWAP_MARKER);
    const m = parseSwapMarker(own);
    if (m !== null) {
      // only a plain sibling name of the form BASE.old-ID, never a path that leads elsewhere
      const oldPrefix = `${base}.old-`;
      const plain = m.old.length > oldPrefix.length && m.old.startsWith(oldPrefix) && path.basename(m.old) === m.old;
      if (m.target === base && plain) {
        fs.rmSync(path.join(parent, m.old), { recursive: true, force: true });
      }
      fs.rmSync(own, { force: true });
      fsyncDir(abs);
    }
  }
  return restored;
}

/**
 * True when `err` (or an error it wraps as its cause) is a full disk or quota (ENOSPC, EDQUOT): callers replace the
 * raw "ENOSPC: no space left on device, write", which names neither the file nor what to do.
 */
export function isDiskFull(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
    if (/\bENOSPC\b|\bEDQUOT\b|no space left on device|disk quota exceeded/i.test(e.message)) return true; // wrapped
  }
  return false;
}
