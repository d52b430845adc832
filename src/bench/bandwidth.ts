/**
 * Memory read bandwidth, measured in the same process as the decode benchmark (machines are noisy;
 * ARCHITECTURE.md §9): the native addon's streaming-read probe when the backend is native (the module's when it is
 * wasm), else the backend's sumSquares over a 512 MB array (on the ref backend that measures the JS loop, not DRAM;
 * the method says so).
 */
import type { Backend } from '../kernels/backend.js';
import type { NativeBackend } from '../kernels/native.js';
import type { WasmBackend } from '../kernels/wasm.js';

export interface Bandwidth {
  /** GB/s (1e9 bytes per second): the median or the best of the passes (`stat`). */
  gbs: number;
  method: string;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b),
    m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * `over` (native backend): read the first `bytes` of this array in place, typically a model's weight storage, instead
 * of a buffer of the probe's own (which would be resident beside the weights: 256 MB of llama-1b int8's peak).
 */
export function measureReadBandwidth(
  backend: Backend,
  bytes = 512 * 2 ** 20,
  repeats = 5,
  stat: 'median' | 'best' = 'median',
  over?: ArrayBufferView,
): Bandwidth {
  const threads = backend.threads();
  const pick = (secs: number[]): number => (stat === 'best' ? Math.min(...secs) : median(secs));
  const how = `${stat} of ${repeats} passes`;
  if (backend.name === 'native' && 'addon' in backend && over && over.byteLength >= bytes) {
    const view = new Uint8Array(over.buffer, over.byteOffset, bytes);
    const secs = (backend as NativeBackend).addon.readBandwidthOf(view, threads, repeats);
    return {
      gbs: (bytes - (bytes % 64)) / pick(secs) / 1e9, // whole 64-byte blocks are read
      method: `native readBandwidthOf the model's weights, ${bytes >> 20} MB in place, ${how}, ${threads} thread(s)`,
    };
  }
  if (backend.name === 'native' && 'addon' in backend) {
    const secs = (backend as NativeBackend).addon.readBandwidth(bytes, threads, repeats);
    return {
      gbs: bytes / pick(secs) / 1e9,
      method: `native readBandwidth, ${bytes >> 20} MB, ${how}, ${threads} thread(s)`,
    };
  }
  if (backend.name === 'wasm' && 'readBandwidth' in backend) {
    const secs = (backend as WasmBackend).readBandwidth(bytes, repeats);
    return { gbs: bytes / pick(secs) / 1e9, method: `wasm readBandwidth, ${bytes >> 20} MB, ${how}, 1 thread` };
  }
  const n = bytes / 4,
    x = new Float32Array(n).fill(1); // fill touches every page (untouched pages read as one zero page)
  const secs: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    backend.sumSquares(n, x);
    secs.push((performance.now() - t0) / 1000);
  }
  const note = backend.name === 'ref' ? ' (ref backend: bounded by the JS loop, not by DRAM)' : '';
  return {
    gbs: bytes / pick(secs) / 1e9,
    method: `${backend.name} sumSquares, ${bytes >> 20} MB, ${how}, ${threads} thread(s)${note}`,
  };
}

export { median };
