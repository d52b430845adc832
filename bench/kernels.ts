/**
 * Kernel benchmark of the native backend (ARCHITECTURE.md §6, §9): DRAM read bandwidth and the FMA peak (independent
 * FMA chains in registers, the addon's fmaPeak probe) measured in the same run, fp32 GEMM 256×768×3072 against that
 * peak and training-step shapes, the 50257×768 matvec (M = 1) against the bandwidth and the M = 2 product's time over
 * it, the matvec for every other weight dtype the backend reads (backend.weightDtypes, at run time), a few training
 * kernels — at 1 and 2 threads, medians over repeats (the machine is shared and noisy: compare ratios inside one
 * run). Measurements of one thread count are interleaved round by round so that a burst of load from another
 * process hits all of them alike.
 *
 *   npm run bench:kernels [-- --json] [-- --quick]
 *
 * With --json the last line of stdout is one JSON object:
 *   {simd, bandwidth_gbs: {"1", "2"}, fma_peak_gflops: {"1", "2"}, gemm_gflops: {"1", "2"},
 *    gemm_fraction_of_peak: {"1", "2"}, matvec_gbs: {"1", "2"}, matvec_fraction_of_bw, m2_over_m1: {"1", "2"},
 *    matvec_dtype_gbs: {dtype: {"1", "2"}}, cores_used: {"1", "2"}, shapes: {name: {"1", "2"} GFLOP/s or GB/s}}
 * fma_peak_gflops is all threads together; gemm_fraction_of_peak is the median over rounds of (the GEMM's GFLOP/s ÷
 * the FMA peak probed just before it in the same round), at that thread count.
 * matvec_dtype_gbs counts the bytes of the weight as stored (f16 / bf16: 2 per value; q8_0: 1 + 2/32; q4_0:
 * 1/2 + 2/32).
 * cores_used (process CPU time / wall time while measuring) tells whether the second core was actually free.
 */
import { createNativeBackend, type NativeBackend } from '../src/kernels/native.js';
import type { KernelWeightDtype, StoredWeight, Weight } from '../src/kernels/backend.js';
import { f32ToBf16Bits, f32ToF16Array } from '../src/kernels/half.js';
import { quantizeQ4, quantizeQ8 } from '../src/kernels/quant.js';
import { toPanels } from '../src/kernels/panels.js';
import { heapAllocator } from '../src/kernels/backend.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const ROUNDS = quick ? 5 : 15;
const THREADS = [1, 2] as const;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function rand(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    a[i] = ((s >>> 8) / 16777216 - 0.5) * scale;
  }
  return a;
}

/** w [N, K] stored as `dtype` (a handle the backend's linear reads), and its size in bytes. */
function weightAs(dtype: KernelWeightDtype, w: Float32Array, N: number, K: number): { weight: Weight; bytes: number } {
  switch (dtype) {
    case 'f32':
      return { weight: { dtype, data: w }, bytes: w.length * 4 };
    case 'f16':
      return { weight: { dtype, data: f32ToF16Array(w) }, bytes: w.length * 2 };
    case 'bf16':
      return {
        weight: { dtype, data: new Uint16Array(w.length).map((_, i) => f32ToBf16Bits(w[i])) },
        bytes: w.length * 2,
      };
    case 'q8_0': {
      const q = quantizeQ8(w, N, K);
      return { weight: { dtype, data: q.data, scales: q.scales }, bytes: q.data.length + q.scales.length * 2 };
    }
    case 'q4_0': {
      const q = quantizeQ4(w, N, K);
      return { weight: { dtype, data: q.data, scales: q.scales }, bytes: q.data.length + q.scales.length * 2 };
    }
    case 'f16_panels':
    case 'bf16_panels': {
      const half = dtype === 'f16_panels' ? f32ToF16Array(w) : w.map(f32ToBf16Bits);
      const rows: StoredWeight = { dtype: dtype === 'f16_panels' ? 'f16' : 'bf16', data: new Uint16Array(half) };
      return { weight: toPanels(rows, N, K, heapAllocator), bytes: w.length * 2 };
    }
    case 'q8_0_panels': {
      const q = quantizeQ8(w, N, K);
      const rows: StoredWeight = { dtype: 'q8_0', data: q.data, scales: q.scales };
      return { weight: toPanels(rows, N, K, heapAllocator), bytes: q.data.length + q.scales.length * 2 };
    }
  }
}

function seconds(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

/** One benchmarked case: `run` does one call; `amount` is FLOPs (unit GFLOP/s) or bytes (unit GB/s). */
interface Case {
  name: string;
  unit: 'GFLOP/s' | 'GB/s';
  amount: number;
  run: () => void;
}

function cases(be: NativeBackend): Case[] {
  const out: Case[] = [];
  const gemm = (name: string, M: number, N: number, K: number, tA: boolean, tB: boolean): void => {
    const a = rand(M * K),
      b = rand(K * N),
      c = new Float32Array(M * N);
    out.push({ name, unit: 'GFLOP/s', amount: 2 * M * N * K, run: () => be.gemm(M, N, K, a, tA, b, tB, c, false) });
  };
  const linear = (name: string, M: number, N: number, K: number): void => {
    const x = rand(M * K),
      w = rand(N * K),
      bias = rand(N),
      y = new Float32Array(M * N);
    out.push({ name, unit: 'GFLOP/s', amount: 2 * M * N * K, run: () => be.linear(M, N, K, x, w, bias, y) });
  };
  gemm('gemm 256x768x3072', 256, 3072, 768, false, false);
  linear('linear 1024x2304x768 (qkv fwd)', 1024, 2304, 768);
  linear('linear 1024x768x3072 (proj fwd)', 1024, 768, 3072);
  gemm('gemm NN 1024x768x3072 (dx)', 1024, 768, 3072, false, false);
  gemm('gemm TN 3072x768x1024 (dW)', 3072, 768, 1024, true, false);
  linear('linear 2048x8192x512 (lm head)', 2048, 8192, 512);

  // The decode matvec: W [50257, 768] (154 MB) streamed once per call.
  const N = 50257,
    K = 768;
  const w = rand(N * K),
    x = rand(2 * K),
    y = new Float32Array(2 * N);
  out.push({
    name: 'matvec 50257x768 M=1',
    unit: 'GB/s',
    amount: N * K * 4,
    run: () => be.linear(1, N, K, x, w, null, y),
  });
  out.push({
    name: 'matvec 50257x768 M=2',
    unit: 'GB/s',
    amount: N * K * 4,
    run: () => be.linear(2, N, K, x, w, null, y),
  });
  // The same matvec for every other weight dtype this backend reads (as stored: bytes of the stored weight).
  for (const dtype of be.weightDtypes) {
    if (dtype === 'f32') continue;
    const { weight, bytes } = weightAs(dtype, w, N, K);
    out.push({
      name: `matvec 50257x768 M=1 ${dtype}`,
      unit: 'GB/s',
      amount: bytes,
      run: () => be.linear(1, N, K, x, weight, null, y),
    });
  }

  // Training kernels (gpt2-small-like step, B=4, T=256, H=12, D=64; CE over 1024 rows × 8192).
  const B = 4,
    T = 256,
    H = 12,
    D = 64;
  const q = rand(B * T * H * D),
    k = rand(B * T * H * D),
    v = rand(B * T * H * D),
    o = new Float32Array(B * T * H * D);
  const probs = new Float32Array(B * H * T * T),
    dq = new Float32Array(q.length),
    dk = new Float32Array(q.length),
    dv = new Float32Array(q.length);
  const attnFlops = 2 * 2 * B * H * ((T * (T + 1)) / 2) * D;
  out.push({
    name: 'attentionForward B4 T256 H12 D64',
    unit: 'GFLOP/s',
    amount: attnFlops,
    run: () => be.attentionForward(B, T, H, H, D, q, k, v, o, probs),
  });
  out.push({
    name: 'attentionBackward B4 T256 H12 D64',
    unit: 'GFLOP/s',
    amount: 2 * attnFlops,
    run: () => be.attentionBackward(B, T, H, H, D, q, k, v, probs, o, dq, dk, dv),
  });
  const NV = 1024,
    V = 8192;
  const logits = rand(NV * V, 8),
    targets = new Int32Array(NV).map((_, i) => (i * 7919) % V),
    losses = new Float32Array(NV),
    dl = new Float32Array(NV * V);
  out.push({
    name: 'crossEntropy fwd+bwd 1024x8192',
    unit: 'GB/s',
    amount: 3 * NV * V * 4,
    run: () => {
      be.crossEntropyForward(NV, V, logits, targets, losses);
      be.crossEntropyBackward(NV, V, logits, targets, 1 / NV, dl);
    },
  });
  return out;
}

function main(): void {
  const be = createNativeBackend();
  const log = (s: string): void => {
    if (!json) console.log(s);
    else process.stderr.write(s + '\n');
  };
  log(`native kernels, simd=${be.simd}, ${ROUNDS} rounds, medians`);
  const all = cases(be);
  const result: Record<string, Record<string, number>> = {};
  const bandwidth: Record<string, number> = {};
  const peak: Record<string, number> = {};
  // CPU time of this process over wall time while measuring: ~2 at 2 threads when the second core was free,
  // ~1 when another process held it (then 2-thread figures say nothing about scaling).
  const coresUsed: Record<string, number> = {};
  // GEMM / FMA peak per round: the probe runs just before the GEMM (the first case), so each round's ratio compares
  // them under the same conditions; the fraction reported is the median of these paired ratios.
  const gemmName = 'gemm 256x768x3072';
  const gemmIndex = all.findIndex((c) => c.name === gemmName);
  const pairedFraction: Record<string, number> = {};
  for (const th of THREADS) {
    be.setThreads(th);
    for (const c of all) c.run(); // warm-up (page faults, pool start)
    const times = all.map((): number[] => []);
    const bw: number[] = [];
    const fma: number[] = [];
    const cpu0 = process.cpuUsage();
    const wall0 = performance.now();
    for (let r = 0; r < ROUNDS; r++) {
      bw.push(...be.addon.readBandwidth(512 * 2 ** 20, th, 1).map((s) => (512 * 2 ** 20) / s / 1e9));
      fma.push(be.addon.fmaPeak(th, 0.02));
      all.forEach((c, i) => times[i].push(seconds(c.run)));
    }
    const cpu = process.cpuUsage(cpu0);
    coresUsed[th] = (cpu.user + cpu.system) / 1000 / (performance.now() - wall0);
    bandwidth[th] = median(bw);
    peak[th] = median(fma);
    const gemmCase = all[gemmIndex];
    pairedFraction[th] = median(times[gemmIndex].map((t, r) => gemmCase.amount / t / 1e9 / fma[r]));
    be.addon.readBandwidth(0, 1, 0);
    all.forEach((c, i) => {
      (result[c.name] ??= {})[th] = c.amount / median(times[i]) / 1e9;
      (result[`${c.name} ms`] ??= {})[th] = median(times[i]) * 1e3;
    });
  }

  const per = (name: string): Record<string, number> => ({ '1': result[name][1], '2': result[name][2] });
  const m1 = 'matvec 50257x768 M=1',
    m2 = 'matvec 50257x768 M=2';
  const m2OverM1 = {
    '1': result[`${m2} ms`][1] / result[`${m1} ms`][1],
    '2': result[`${m2} ms`][2] / result[`${m1} ms`][2],
  };
  const fraction = { '1': result[m1][1] / bandwidth[1], '2': result[m1][2] / bandwidth[2] };
  const g = gemmName;
  const gemmFraction = { '1': pairedFraction[1], '2': pairedFraction[2] };

  const row = (name: string, a: string, b: string): string => `${name.padEnd(40)}${a.padStart(12)}${b.padStart(12)}`;
  log(row('', '1 thread', '2 threads'));
  log(row('DRAM read bandwidth 512 MB (GB/s)', bandwidth[1].toFixed(1), bandwidth[2].toFixed(1)));
  log(row('FMA peak, all threads (GFLOP/s)', peak[1].toFixed(1), peak[2].toFixed(1)));
  for (const c of all) {
    const ms = result[`${c.name} ms`];
    log(row(`${c.name} (${c.unit})`, `${result[c.name][1].toFixed(1)}`, `${result[c.name][2].toFixed(1)}`));
    log(row('    ms', ms[1].toFixed(3), ms[2].toFixed(3)));
  }
  log(row('gemm 256x768x3072 / FMA peak', gemmFraction[1].toFixed(3), gemmFraction[2].toFixed(3)));
  log(row('matvec M=1 / bandwidth', fraction[1].toFixed(3), fraction[2].toFixed(3)));
  log(row('matvec time M=2 / M=1', m2OverM1[1].toFixed(3), m2OverM1[2].toFixed(3)));
  log(row('gemm scaling 2 threads / 1', '', (result[g][2] / result[g][1]).toFixed(2)));
  log(row('cores used while measuring (cpu/wall)', coresUsed[1].toFixed(2), coresUsed[2].toFixed(2)));

  if (json) {
    const shapes: Record<string, Record<string, number>> = {};
    for (const c of all) shapes[`${c.name} (${c.unit})`] = per(c.name);
    const round = (o: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Math.round(v * 1000) / 1000]));
    console.log(
      JSON.stringify({
        simd: be.simd,
        bandwidth_gbs: round({ '1': bandwidth[1], '2': bandwidth[2] }),
        fma_peak_gflops: round({ '1': peak[1], '2': peak[2] }),
        gemm_gflops: round(per(g)),
        gemm_fraction_of_peak: round(gemmFraction),
        matvec_gbs: round(per(m1)),
        matvec_fraction_of_bw: round(fraction),
        m2_over_m1: round(m2OverM1),
        matvec_dtype_gbs: Object.fromEntries(
          be.weightDtypes.filter((d) => d !== 'f32').map((d) => [d, round(per(`${m1} ${d}`))]),
        ),
        cores_used: round({ '1': coresUsed[1], '2': coresUsed[2] }),
        shapes: Object.fromEntries(Object.entries(shapes).map(([k, v]) => [k, round(v)])),
      }),
    );
  }
}

main();
