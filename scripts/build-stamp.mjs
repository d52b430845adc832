// Build stamps: a build step records a digest of its inputs next to its outputs, and skips itself when the digest
// is unchanged and the outputs are there. `npx recyclegpt` in a clone re-runs the package's install scripts (npm
// links the clone into its npx cache and runs `install` and `prepare` there), so without this every first call
// from a new clone path would wait a minute for a rebuild of what `npm install` has just built.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every regular file under `dir` whose name passes `keep`, sorted (deterministic digests). */
export function filesUnder(dir, keep = () => true) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(p, keep));
    else if (entry.isFile() && keep(entry.name)) out.push(p);
  }
  return out.sort();
}

/** SHA-256 over the files' paths (relative to `root`) and contents, plus `extra` (tool versions, ABI). */
export function inputsDigest(root, files, extra) {
  const h = createHash('sha256');
  h.update(JSON.stringify(extra));
  for (const f of files) {
    h.update(`\0${relative(root, f)}\0${statSync(f).size}\0`);
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

/** True when `stampFile` records `digest` and every output exists. */
export function upToDate(stampFile, digest, outputs) {
  if (!outputs.every((o) => existsSync(o)) || !existsSync(stampFile)) return false;
  try {
    return JSON.parse(readFileSync(stampFile, 'utf8')).digest === digest;
  } catch {
    return false;
  }
}

export function writeStamp(stampFile, digest) {
  writeFileSync(stampFile, `${JSON.stringify({ digest, written: new Date().toISOString() })}\n`);
}

/** The environment variables through which node-gyp's generated build picks its compiler, linker and flags. */
const COMPILER_VARS = ['CC', 'CXX', 'LINK', 'CPPFLAGS', 'CFLAGS', 'CXXFLAGS', 'LDFLAGS'];

/** `command --version` (command may carry arguments, as in CXX="ccache g++"), or why it could not be run. */
function toolVersion(command, env) {
  const [cmd, ...args] = command.split(/\s+/).filter(Boolean);
  const r = spawnSync(cmd, [...args, '--version'], { encoding: 'utf8', env, timeout: 30_000 });
  if (r.error) return `unavailable: ${r.error.code ?? r.error.message}`;
  return `${r.stdout}`.trim() || `status ${r.status}`;
}

/**
 * What identifies the C/C++ toolchain of a native build, for a stamp's `extra`: the compiler and flag variables
 * set in `env` and the `--version` of the C++ compiler (CXX, else make's default: g++; clang++ on macOS) and of
 * LINK when set. Changing the compiler, upgrading it in place, or changing CXXFLAGS changes the digest.
 */
export function compilerIdentity(env = process.env) {
  const vars = Object.fromEntries(COMPILER_VARS.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]));
  const cxx = env.CXX?.trim() || (process.platform === 'darwin' ? 'clang++' : 'g++');
  const versions = { cxx: toolVersion(cxx, env) };
  if (env.LINK?.trim()) versions.link = toolVersion(env.LINK, env);
  return { vars, versions };
}
