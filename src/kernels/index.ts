/**
 * Backend selection. `getBackend()` returns the process-wide backend: "native" when the addon is built and
 * loads, else "ref" with one warning on stderr. Override with RECYCLEGPT_BACKEND=ref|native; the thread count
 * comes from RECYCLEGPT_THREADS (default: all cores, at most 2 on this class of machine is typical).
 */
import type { Backend } from './backend.js';
import { createRefBackend } from './ref.js';
import { tryLoadNativeBackend } from './native.js';

export type { Backend, F32 } from './backend.js';

let current: Backend | null = null;

export function getBackend(): Backend {
  if (current) return current;
  const want = process.env.RECYCLEGPT_BACKEND;
  if (want !== undefined && want !== 'ref' && want !== 'native') {
    throw new Error(`RECYCLEGPT_BACKEND must be "ref" or "native", got "${want}"`);
  }
  let backend: Backend | null = null;
  if (want !== 'ref') {
    const loaded = tryLoadNativeBackend();
    if (loaded.backend) backend = loaded.backend;
    else if (want === 'native')
      throw new Error(`RECYCLEGPT_BACKEND=native but the addon did not load: ${loaded.error}`);
    else
      process.stderr.write(`recyclegpt: native kernels unavailable (${loaded.error}); using the slow "ref" backend\n`);
  }
  backend ??= createRefBackend();
  const threadsEnv = process.env.RECYCLEGPT_THREADS;
  if (threadsEnv !== undefined) {
    const n = Number(threadsEnv);
    if (!Number.isInteger(n) || n < 1 || n > 256)
      throw new Error(`RECYCLEGPT_THREADS must be an integer 1..256, got "${threadsEnv}"`);
    backend.setThreads(n);
  }
  current = backend;
  return backend;
}

/** Replace the process-wide backend (tests, benchmarks). */
export function setBackend(b: Backend): void {
  current = b;
}
