/**
 * The head product of a module call in each draft-head dtype: `linear` over gpt2-small's LM head [50257, 768] stored
 * as f32, q8_0 and q4_0, at M = 1 and 2 rows, 2 and 1 threads, on the native backend (its best SIMD path) or the
 * wasm one (weights in its memory, as a loaded model's). Calls are interleaved dtype by dtype in each round so that a
 * burst of load from another process hits all of them alike; medians (and ranges) over rounds, and each dtype's time
 * over q8_0's in the same run. Not a test: run it with the machine quiet.
 *
 *   node --import tsx bench/matvec-dtypes.ts [native|wasm] [--rounds N]
 */
import { createNativeBackend } from '../src/kernels/native.js';
import { createNodeWasmBackend } from '../src/kernels/wasm-node.js';
import { quantizeQ4, quantizeQ8 } from '../src/kernels/quant.js';
import type { Allocator, Backend, Weight } from '../src/kernels/backend.js';

const N = 50257,
  K = 768;
const args = process.argv.slice(2);
const which = args.find((a) => a === 'native' || a === 'wasm') ?? 'native';
const ri = args.indexOf('--rounds');
const rounds = ri >= 0 ? Number(args[ri + 1]) : which === 'native' ? 15 : 7;

function rand(n: number, scale: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * scale;
  return a;
}

/** The head in every dtype, in memory from `alloc`, and its bytes as stored. */
function heads(alloc: Allocator): { name: string; w: Weight; bytes: number }[] {
  const w = rand(N * K, 0.1);
  const f32 = alloc.f32(N * K);
  f32.set(w);
  const q8 = quantizeQ8(w, N, K, { data: alloc.i8(N * K), scales: alloc.u16((N * K) / 32) });
  const q4 = quantizeQ4(w, N, K, { data: alloc.u8((N * K) / 2), scales: alloc.u16((N * K) / 32) });
  return [
    { name: 'f32', w: { dtype: 'f32', data: f32 }, bytes: f32.byteLength },
    { name: 'q8_0', w: { dtype: 'q8_0', ...q8 }, bytes: q8.data.byteLength + q8.scales.byteLength },
    { name: 'q4_0', w: { dtype: 'q4_0', ...q4 }, bytes: q4.data.byteLength + q4.scales.byteLength },
  ];
}

const median = (a: number[]): number => [...a].sort((p, q) => p - q)[a.length >> 1]!;

function run(be: Backend, label: string): void {
  const hs = heads(be.alloc);
  const x = be.alloc.f32(2 * K),
    y = be.alloc.f32(2 * N);
  x.set(rand(2 * K, 1));
  const reps = label === 'native' ? 5 : 2;
  for (const threads of [2, 1]) {
    be.setThreads(threads);
    for (const M of [1, 2]) {
      const ms = new Map<string, number[]>(hs.map((h) => [h.name, []]));
      for (let r = 0; r < rounds; r++) {
        for (const h of hs) {
          be.linear(M, N, K, x, h.w, null, y); // warm
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < reps; i++) be.linear(M, N, K, x, h.w, null, y);
          ms.get(h.name)!.push(Number(process.hrtime.bigint() - t0) / 1e6 / reps);
        }
      }
      const q8 = median(ms.get('q8_0')!);
      for (const h of hs) {
        const t = ms.get(h.name)!,
          m = median(t);
        const range = `${Math.min(...t).toFixed(3)}-${Math.max(...t).toFixed(3)}`;
        const gbs = (h.bytes / m / 1e6).toFixed(1);
        console.log(
          `${label} ${threads}t M=${M} ${h.name.padEnd(5)} ${m.toFixed(3)} ms (${range})  ` +
            `${(h.bytes / 1e6).toFixed(1)} MB  ${gbs} GB/s  time/q8_0 ${(m / q8).toFixed(2)}`,
        );
      }
    }
  }
}

if (which === 'native') {
  const be = createNativeBackend();
  console.log(`native, SIMD ${be.simd}, ${rounds} rounds`);
  run(be, 'native');
} else {
  const be = createNodeWasmBackend({ memoryBytes: 1024 * 2 ** 20, threads: 2 });
  console.log(`wasm, ${rounds} rounds`);
  run(be, 'wasm');
  be.close();
}
