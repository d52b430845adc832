/** Test arguments copied into a backend's own memory (wasm kernels read them in place, as a loaded model's arrays). */
import type { Backend, Weight } from '../../src/kernels/backend.js';

export type KernelArg = number | boolean | null | Float32Array | Int32Array | Weight;

/** A copy of `a` in `be`'s memory (typed arrays and weight handles; other values as they are). */
export function copyInto(be: Backend, a: KernelArg): KernelArg {
  if (a instanceof Float32Array) {
    const c = be.alloc.f32(a.length);
    c.set(a);
    return c;
  }
  if (a instanceof Int32Array) {
    const c = be.alloc.i32(a.length);
    c.set(a);
    return c;
  }
  if (a === null || typeof a !== 'object') return a;
  if (a.dtype === 'f32') return { dtype: 'f32', data: copyInto(be, a.data) as Float32Array };
  if (a.dtype === 'q8_0' || a.dtype === 'q8_0_panels') {
    const data = be.alloc.i8(a.data.length),
      scales = be.alloc.u16(a.scales.length);
    data.set(a.data);
    scales.set(a.scales);
    return { dtype: a.dtype, data, scales };
  }
  if (a.dtype === 'q4_0') {
    const data = be.alloc.u8(a.data.length),
      scales = be.alloc.u16(a.scales.length);
    data.set(a.data);
    scales.set(a.scales);
    return { dtype: 'q4_0', data, scales };
  }
  const data = be.alloc.u16(a.data.length);
  data.set(a.data);
  return { dtype: a.dtype, data };
}
