/**
 * The threaded wasm kernels (native/wasm/recyclegpt-kernels-threads.wasm: a shared memory, workers on
 * worker_threads, native/wasm/threads.cc's pool) give the one-thread kernels' results bit for bit at 1, 2 and 3
 * threads: every kernel on random odd shapes large enough that the kernels split them across threads, outputs and
 * return values compared bitwise with recyclegpt-kernels.wasm's; workers really take shares; a worker that runs out
 * of memory makes the call fail with the kernels' message instead of hanging it; verified greedy == standard greedy
 * on the shipped model at 2 threads, token for token the same as at 1 thread.
 * Seeds are fresh each run and printed on failure (SEED=… reproduces).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RecycleGPT } from '../src/index.js';
import type { Backend, Weight } from '../src/kernels/backend.js';
import { createBackend } from '../src/kernels/index.js';
import { f32ToBf16Bits } from '../src/kernels/half.js';
import { quantizeQ8 } from '../src/kernels/quant.js';
import { createNodeWasmBackend } from '../src/kernels/wasm-node.js';
import { Rng, seededTest } from './helpers/check.js';
import { assertBitwise } from './helpers/native.js';
import { copyInto, type KernelArg } from './helpers/backend-copy.js';

const single = createNodeWasmBackend({ memoryBytes: 1024 * 2 ** 20, threaded: false });
const threaded = createNodeWasmBackend({ memoryBytes: 1024 * 2 ** 20, threads: 3 });
const THREADS = [1, 2, 3] as const;

type Arg = KernelArg;
interface Case {
  what: string;
  args: Arg[];
  /** indices of the arrays the kernel writes */
  outs: number[];
  call: (be: Backend, a: Arg[]) => unknown;
}

function weightOf(dtype: 'f32' | 'bf16' | 'q8_0', w: Float32Array, N: number, K: number): Weight {
  if (dtype === 'f32') return { dtype, data: w };
  if (dtype === 'q8_0') {
    const q = { dtype, data: new Int8Array(N * K), scales: new Uint16Array((N * K) / 32) } as const;
    quantizeQ8(w, N, K, q);
    return q;
  }
  return { dtype, data: Uint16Array.from(w, f32ToBf16Bits) };
}

/** Every kernel, at shapes whose work the kernels split across 3 threads (odd sizes, ragged last chunks). */
function cases(rng: Rng): Case[] {
  const f = (n: number): Float32Array => new Float32Array(n);
  const out: Case[] = [];
  const odd = (lo: number, hi: number): number => rng.int(lo, hi) | 1;
  // products
  {
    const [M, N, K] = [odd(101, 161), odd(211, 301), odd(251, 351)];
    for (const tA of [false, true])
      for (const tB of [false, true])
        out.push({
          what: `gemm ${M}x${N}x${K} tA=${tA} tB=${tB}`,
          args: [rng.uniform(M * K), rng.uniform(K * N), rng.uniform(M * N)],
          outs: [2],
          call: (be, a) =>
            be.gemm(M, N, K, a[0] as Float32Array, tA, a[1] as Float32Array, tB, a[2] as Float32Array, tA),
        });
  }
  for (const dtype of ['f32', 'bf16', 'q8_0'] as const)
    for (const M of [1, 2, rng.int(3, 8), rng.int(9, 40), rng.int(100, 140)]) {
      const N = odd(601, 1201),
        K = 32 * rng.int(9, 16) + (dtype === 'q8_0' ? 0 : rng.int(1, 31));
      out.push({
        what: `linear ${dtype} ${M}x${N}x${K}`,
        args: [rng.uniform(M * K), weightOf(dtype, rng.uniform(N * K), N, K), rng.uniform(N), f(M * N)],
        outs: [3],
        call: (be, a) =>
          be.linear(M, N, K, a[0] as Float32Array, a[1] as Weight, a[2] as Float32Array, a[3] as Float32Array),
      });
    }
  // embeddings and reductions over rows
  {
    const T = odd(501, 601),
      C = odd(701, 801),
      V = rng.int(50, 90),
      ids = rng.ints(T, 0, V - 1);
    for (const dtype of ['f32', 'bf16', 'q8_0'] as const) {
      const Cq = dtype === 'q8_0' ? 32 * 23 : C;
      out.push({
        what: `embeddingForward ${dtype} T=${T} C=${Cq}`,
        args: [ids, weightOf(dtype, rng.uniform(V * Cq), V, Cq), f(T * Cq)],
        outs: [2],
        call: (be, a) => be.embeddingForward(T, Cq, V, a[0] as Int32Array, a[1] as Weight, a[2] as Float32Array),
      });
    }
    out.push({
      what: `embeddingBackward T=${T} C=${C}`,
      args: [ids, rng.uniform(T * C), rng.uniform(V * C)],
      outs: [2],
      call: (be, a) => be.embeddingBackward(T, C, V, a[0] as Int32Array, a[1] as Float32Array, a[2] as Float32Array),
    });
    out.push({
      what: `biasBackward ${T}x${C}`,
      args: [rng.uniform(T * C), rng.uniform(C)],
      outs: [1],
      call: (be, a) => be.biasBackward(T, C, a[0] as Float32Array, a[1] as Float32Array),
    });
  }
  // norms
  {
    const N = odd(101, 201),
      C = odd(701, 801),
      x = rng.uniform(N * C, 2),
      w = rng.uniform(C),
      b = rng.uniform(C),
      mean = f(N),
      rstd = f(N),
      rrms = f(N);
    single.layerNormForward(N, C, x, w, b, 1e-5, f(N * C), mean, rstd);
    single.rmsNormForward(N, C, x, w, 1e-5, f(N * C), rrms);
    out.push({
      what: `layerNormForward ${N}x${C}`,
      args: [x, w, b, f(N * C), f(N), f(N)],
      outs: [3, 4, 5],
      call: (be, a) => {
        const [xx, ww, bb, o, mu, rs] = a as Float32Array[];
        be.layerNormForward(N, C, xx!, ww!, bb!, 1e-5, o!, mu!, rs!);
      },
    });
    out.push({
      what: `layerNormBackward ${N}x${C}`,
      args: [rng.uniform(N * C), x, w, mean, rstd, rng.uniform(N * C), rng.uniform(C), rng.uniform(C)],
      outs: [5, 6, 7],
      call: (be, a) => {
        const [d, xx, ww, mu, rs, dx, dw, db] = a as Float32Array[];
        be.layerNormBackward(N, C, d!, xx!, ww!, mu!, rs!, dx!, dw!, db!);
      },
    });
    out.push({
      what: `rmsNormForward ${N}x${C}`,
      args: [x, w, f(N * C), f(N)],
      outs: [2, 3],
      call: (be, a) => {
        const [xx, ww, o, rs] = a as Float32Array[];
        be.rmsNormForward(N, C, xx!, ww!, 1e-5, o!, rs!);
      },
    });
    out.push({
      what: `rmsNormBackward ${N}x${C}`,
      args: [rng.uniform(N * C), x, w, rrms, rng.uniform(N * C), rng.uniform(C)],
      outs: [4, 5],
      call: (be, a) => {
        const [d, xx, ww, rs, dx, dw] = a as Float32Array[];
        be.rmsNormBackward(N, C, d!, xx!, ww!, rs!, dx!, dw!);
      },
    });
  }
  // elementwise, optimizer, sums
  {
    const n = rng.int(300_001, 400_001),
      x = rng.uniform(n, 4),
      y = rng.uniform(n, 3);
    out.push(
      {
        what: `geluForward ${n}`,
        args: [x, f(n)],
        outs: [1],
        call: (be, a) => be.geluForward(n, a[0] as Float32Array, a[1] as Float32Array),
      },
      {
        what: `geluBackward ${n}`,
        args: [x, rng.uniform(n), rng.uniform(n)],
        outs: [2],
        call: (be, a) => be.geluBackward(n, a[0] as Float32Array, a[1] as Float32Array, a[2] as Float32Array),
      },
      {
        what: `swigluForward ${n}`,
        args: [x, y, f(n)],
        outs: [2],
        call: (be, a) => be.swigluForward(n, a[0] as Float32Array, a[1] as Float32Array, a[2] as Float32Array),
      },
      {
        what: `swigluBackward ${n}`,
        args: [x, y, rng.uniform(n), rng.uniform(n), rng.uniform(n)],
        outs: [3, 4],
        call: (be, a) => {
          const [g, u, d, dg, du] = a as Float32Array[];
          be.swigluBackward(n, g!, u!, d!, dg!, du!);
        },
      },
      {
        what: `adamw ${n}`,
        args: [rng.uniform(n), rng.uniform(n, 0.1), rng.uniform(n, 0.01), rng.uniform(n, 1e-4).map(Math.abs)],
        outs: [0, 2, 3],
        call: (be, a) => {
          const [p, g, m, v] = a as Float32Array[];
          be.adamw(n, p!, g!, m!, v!, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7);
        },
      },
      {
        what: `add ${n}`,
        args: [x, y, f(n)],
        outs: [2],
        call: (be, a) => be.add(n, a[0] as Float32Array, a[1] as Float32Array, a[2] as Float32Array),
      },
      {
        what: `axpy ${n}`,
        args: [x, rng.uniform(n)],
        outs: [1],
        call: (be, a) => be.axpy(n, 0.37, a[0] as Float32Array, a[1] as Float32Array),
      },
      {
        what: `scale ${n}`,
        args: [rng.uniform(n)],
        outs: [0],
        call: (be, a) => be.scale(n, a[0] as Float32Array, -1.7),
      },
      { what: `sumSquares ${n}`, args: [x], outs: [], call: (be, a) => be.sumSquares(n, a[0] as Float32Array) },
    );
  }
  // rope, attention, cross-entropy
  {
    const R = odd(201, 301),
      H = 5,
      D = 2 * rng.int(20, 40),
      pos = rng.ints(R, 0, 3000);
    for (const inverse of [false, true])
      out.push({
        what: `rope R=${R} D=${D} inverse=${inverse}`,
        args: [rng.uniform(R * H * D), pos],
        outs: [0],
        call: (be, a) => be.rope(R, H, D, a[0] as Float32Array, a[1] as Int32Array, 10000, inverse),
      });
    const B = 2,
      T = odd(51, 81),
      G = 2,
      Ha = 4,
      Da = odd(31, 65);
    const q = rng.uniform(B * T * Ha * Da),
      k = rng.uniform(B * T * G * Da),
      v = rng.uniform(B * T * G * Da),
      probs = f(B * Ha * T * T);
    single.attentionForward(B, T, Ha, G, Da, q, k, v, f(q.length), probs);
    out.push({
      what: `attentionForward T=${T} D=${Da}`,
      args: [q, k, v, f(q.length), f(B * Ha * T * T)],
      outs: [3, 4],
      call: (be, a) => {
        const [qq, kk, vv, o, p] = a as Float32Array[];
        be.attentionForward(B, T, Ha, G, Da, qq!, kk!, vv!, o!, p!);
      },
    });
    out.push({
      what: `attentionBackward T=${T} D=${Da}`,
      args: [
        q,
        k,
        v,
        probs,
        rng.uniform(q.length),
        rng.uniform(q.length),
        rng.uniform(k.length),
        rng.uniform(v.length),
      ],
      outs: [5, 6, 7],
      call: (be, a) => {
        const [qq, kk, vv, p, d, dq, dk, dv] = a as Float32Array[];
        be.attentionBackward(B, T, Ha, G, Da, qq!, kk!, vv!, p!, d!, dq!, dk!, dv!);
      },
    });
    for (const M of [1, rng.int(2, 8)]) {
      const Gd = 3,
        Hd = 6,
        Dd = 64,
        pos0 = rng.int(300, 700),
        len = pos0 + M;
      out.push({
        what: `attentionDecode M=${M} pos0=${pos0}`,
        args: [rng.uniform(M * Hd * Dd), rng.uniform(len * Gd * Dd), rng.uniform(len * Gd * Dd), f(M * Hd * Dd)],
        outs: [3],
        call: (be, a) => {
          const [qq, kk, vv, o] = a as Float32Array[];
          be.attentionDecode(M, Hd, Gd, Dd, qq!, kk!, vv!, pos0, o!);
        },
      });
    }
    const N = odd(31, 61),
      V = odd(3001, 5001),
      logits = rng.uniform(N * V, 8),
      targets = rng.ints(N, -1, V - 1);
    out.push({
      what: `crossEntropyForward ${N}x${V}`,
      args: [logits, targets, f(N)],
      outs: [2],
      call: (be, a) => be.crossEntropyForward(N, V, a[0] as Float32Array, a[1] as Int32Array, a[2] as Float32Array),
    });
    out.push({
      what: `crossEntropyBackward ${N}x${V}`,
      args: [logits, targets, rng.uniform(N * V, 0.01)],
      outs: [2],
      call: (be, a) =>
        be.crossEntropyBackward(N, V, a[0] as Float32Array, a[1] as Int32Array, 1 / N, a[2] as Float32Array),
    });
  }
  return out;
}

test('the threaded kernels: a shared memory, workers started and running', async () => {
  assert.equal(threaded.threaded, true);
  assert.equal(single.threaded, false);
  assert.ok(threaded.memoryBytes > 0 && single.memoryBytes > 0);
  assert.equal(await threaded.ready(), 2, 'two workers beside the calling thread');
  assert.equal(threaded.threads(), 3);
  single.setThreads(3);
  assert.equal(single.threads(), 1, 'the one-thread kernels accept a count and stay on one thread');
  assert.throws(() => threaded.setThreads(0), /threads must be an integer 1\.\.256/);
});

seededTest('every kernel at 1, 2 and 3 threads equals the one-thread kernels bit for bit', (rng) => {
  const before = threaded.workerShares();
  for (const c of cases(rng)) {
    const want = c.args.map((a) => copyInto(single, a));
    const wantRet = c.call(single, want);
    for (const th of THREADS) {
      threaded.setThreads(th);
      const got = c.args.map((a) => copyInto(threaded, a));
      const ret = c.call(threaded, got);
      for (const i of c.outs)
        assertBitwise(got[i] as Float32Array, want[i] as Float32Array, `${c.what} at ${th} threads: argument ${i}`);
      if (typeof wantRet === 'number')
        assert.ok(Object.is(ret, wantRet), `${c.what} at ${th} threads: ${ret} vs ${wantRet}`);
    }
  }
  threaded.setThreads(3);
  assert.ok(threaded.workerShares() > before, 'the workers ran some of the shares');
});

seededTest(
  'linear rows are bit-identical for every M <= 8 at 2 and 3 threads (the verified-decoding contract)',
  (rng) => {
    for (const th of [2, 3]) {
      threaded.setThreads(th);
      for (const dtype of ['f32', 'bf16', 'q8_0'] as const) {
        const N = rng.int(700, 1300),
          K = 32 * rng.int(8, 14),
          M = rng.int(2, 8);
        const x = copyInto(threaded, rng.uniform(M * K)) as Float32Array;
        const w = copyInto(threaded, weightOf(dtype, rng.uniform(N * K), N, K)) as Weight;
        const all = threaded.alloc.f32(M * N);
        threaded.linear(M, N, K, x, w, null, all);
        for (let m = 0; m < M; m++) {
          const one = threaded.alloc.f32(N);
          threaded.linear(1, N, K, x.subarray(m * K, (m + 1) * K), w, null, one);
          assertBitwise(all.subarray(m * N, (m + 1) * N), one, `${dtype} ${th} threads: row ${m} of M=${M}`);
        }
      }
    }
    threaded.setThreads(3);
  },
);

test('a worker that runs out of memory fails the call with the kernels message (no hang)', async () => {
  // bf16 linear with M > 24 (past the small-M path) dequantizes chunks of W rows into each thread's own scratch. The
  // calling thread's scratch grows first (one thread), then the memory is filled: only a worker can run out, once it
  // takes a share.
  const be = createNodeWasmBackend({ memoryBytes: 32 * 2 ** 20, threads: 2 });
  assert.equal(await be.ready(), 1);
  const [M, N, K] = [32, 2048, 1024];
  const x = be.alloc.f32(M * K),
    w = { dtype: 'bf16' as const, data: be.alloc.u16(N * K) },
    y = be.alloc.f32(M * N);
  be.setThreads(1);
  be.linear(M, N, K, x, w, null, y);
  be.alloc.f32(Math.floor((be.memoryBytes - be.usedBytes()) / 4) - 16 * 1024);
  be.setThreads(2);
  let error: Error | null = null;
  for (let i = 0; i < 200 && !error; i++) {
    try {
      be.linear(M, N, K, x, w, null, y);
    } catch (err) {
      error = err as Error;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(error, 'a worker took a share and ran out of memory');
  assert.match(error.message, /wasm backend: linear: .*out of memory allocating/);
  be.close();
  assert.equal(be.threads(), 1);
  assert.equal(be.workers(), 0);
  // closed: the calling thread runs every share (its scratch grew above), none goes to a worker
  const shares = be.workerShares();
  be.linear(M, N, K, x, w, null, y);
  assert.equal(be.workerShares(), shares);
});

const dir = join(fileURLToPath(new URL('..', import.meta.url)), 'models', 'recycle-small');
const PROMPTS = ['Once upon a time', 'The old man said that'];

test('shipped model on 2 wasm threads: verified greedy == standard greedy, the same tokens as 1 thread', async () => {
  const two = createBackend({ kind: 'wasm', threads: 2 });
  assert.equal(two.threads(), 2);
  const one = createNodeWasmBackend({ threaded: false });
  const m2 = await RecycleGPT.load(dir, { backend: two });
  const m1 = await RecycleGPT.load(dir, { backend: one });
  const shares = (two as ReturnType<typeof createNodeWasmBackend>).workerShares();
  for (const prompt of PROMPTS) {
    const standard = await m2.generate(prompt, { mode: 'standard', max_new_tokens: 48, do_sample: false });
    const verified = await m2.generate(prompt, { mode: 'verified', max_new_tokens: 48, do_sample: false });
    assert.deepEqual(verified.ids, standard.ids, `verified vs standard at 2 threads on ${JSON.stringify(prompt)}`);
    const recycle2 = await m2.generate(prompt, { mode: 'recycle', max_new_tokens: 48, do_sample: false });
    const standard1 = await m1.generate(prompt, { mode: 'standard', max_new_tokens: 48, do_sample: false });
    const recycle1 = await m1.generate(prompt, { mode: 'recycle', max_new_tokens: 48, do_sample: false });
    assert.deepEqual(standard.ids, standard1.ids, '2 threads vs 1: standard');
    assert.deepEqual(recycle2.ids, recycle1.ids, '2 threads vs 1: recycle');
  }
  assert.ok((two as ReturnType<typeof createNodeWasmBackend>).workerShares() > shares, 'the worker took part');
});
