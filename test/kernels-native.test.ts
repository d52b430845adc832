/**
 * The native backend against the ref backend (the oracle): every kernel on random inputs of many shapes
 * (odd sizes, block edges), for every SIMD path this CPU has (switched in-process with setSimd; one child
 * process checks RECYCLEGPT_SIMD) at 1 and 2 threads; bitwise row independence of linear (M = 1..8) and
 * attentionDecode; determinism across thread counts; argument errors identical to ref's.
 * Seeds are fresh each run and printed on failure (SEED=… reproduces). Fails if the addon is not built,
 * unless RECYCLEGPT_BACKEND=ref.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRefBackend } from '../src/kernels/ref.js';
import type { SimdPath } from '../src/kernels/native.js';
import type { Backend } from '../src/kernels/backend.js';
import {
  assertBitwise,
  assertClose,
  eachConfig,
  native,
  nativeSkip,
  prodTol,
  SMALL_M_ROWS,
  seededNative,
  assertRowsAsAlone,
} from './helpers/native.js';

const ref = createRefBackend();
const seeded = seededNative;
const ODD = [1, 2, 3, 7, 16, 17, 31, 33, 64, 65, 100] as const;

// ---- matrix products ----------------------------------------------------------------------------------------------
seeded('gemm: all transposes, accumulate, odd sizes and block edges vs ref', (rng, be) => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [0, 3, 4],
    [3, 0, 4],
    [2, 3, 0],
    [rng.pick(ODD), rng.pick(ODD), rng.pick(ODD)],
    [rng.pick(ODD), rng.pick(ODD), rng.pick(ODD)],
    [15, 33, 257],
    [29, 65, 300],
    [rng.int(250, 270), rng.int(30, 70), rng.int(250, 530)],
    [3, rng.int(3070, 3110), 5],
    [64, 96, 767],
  ];
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = rng.uniform(M * K),
          b = rng.uniform(K * N),
          c0 = rng.uniform(M * N);
        for (const accumulate of [false, true]) {
          const want = c0.slice();
          ref.gemm(M, N, K, a, transA, b, transB, want, accumulate);
          let first: Float32Array | null = null;
          eachConfig(be, (cfg) => {
            const got = c0.slice();
            be.gemm(M, N, K, a, transA, b, transB, got, accumulate);
            const what = `gemm ${M}x${N}x${K} tA=${transA} tB=${transB} acc=${accumulate} ${cfg}`;
            assertClose(got, want, prodTol(K), what);
            if (cfg.endsWith('/1t')) first = got;
            else if (first) assertBitwise(got, first, `${what}: 2 threads vs 1`);
          });
        }
      }
    }
  }
});

seeded('linear: small-M and GEMM paths, with and without bias, vs ref', (rng, be) => {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 17, 767],
    [2, 33, 768],
    [3, 65, 17],
    [8, 100, 31],
    [5, 7, 1],
  ];
  shapes.push(
    [rng.int(1, 8), rng.int(1, 300), rng.int(1, 800)],
    [9, 40, 64],
    [rng.int(9, 70), rng.int(1, 200), rng.int(1, 300)],
  );
  for (const [M, N, K] of shapes) {
    const x = rng.uniform(M * K),
      w = rng.uniform(N * K),
      bias = rng.uniform(N);
    for (const b of [null, bias]) {
      const want = new Float32Array(M * N);
      ref.linear(M, N, K, x, w, b, want);
      eachConfig(be, (cfg) => {
        const got = new Float32Array(M * N).fill(NaN);
        be.linear(M, N, K, x, w, b, got);
        assertClose(got, want, prodTol(K), `linear ${M}x${N}x${K} bias=${b !== null} ${cfg}`);
      });
    }
  }
});

seeded(
  'linear: a row is bit-identical whatever M (on the small-M path), the threads and the alignment of W',
  (rng, be) => {
    // f32 W: rows 1..linearSmallMaxRows/2 (at least 8) take the small-M product, in groups of 8 past 8 rows
    const rows = Math.max(8, SMALL_M_ROWS >> 1);
    for (let trial = 0; trial < 3; trial++) {
      const N = rng.pick([1, 3, 17, 64, rng.int(1, 400)]),
        K = rng.pick([1, 15, 16, 17, 32, 33, 767, 768, rng.int(1, 1000)]);
      const x = rng.uniform(rows * K),
        w = rng.uniform(N * K),
        bias = rng.uniform(N);
      const simd0 = be.simd;
      for (const simd of be.availableSimd()) {
        be.setSimd(simd);
        const alone = assertRowsAsAlone(be, rng, {
          ...{ rows, N, K, x, w, bias, threads: [1, 2] },
          setThreads: (n) => be.setThreads(n),
          what: (th, M, m) => `linear ${simd} ${th}t N=${N} K=${K}: row ${m} of M=${M} vs alone`,
        });
        // the same rows from a W copy at another alignment (the AVX-512 path streams misaligned W differently)
        be.setThreads(1);
        const off = rng.int(1, 15);
        const wShifted = new Float32Array(N * K + 16);
        wShifted.set(w, off);
        for (const M of [2, 5, 8]) {
          const yShifted = new Float32Array(M * N);
          be.linear(M, N, K, x, wShifted.subarray(off, off + N * K), bias, yShifted);
          for (let m = 0; m < M; m++)
            assertBitwise(
              yShifted.subarray(m * N, (m + 1) * N),
              alone[m]!,
              `linear ${simd} N=${N} K=${K} M=${M}: W at offset ${off} floats, row ${m}`,
            );
        }
      }
      be.setSimd(simd0);
    }
  },
);

seeded('biasBackward, embedding forward/backward vs ref', (rng, be) => {
  const M = rng.pick(ODD),
    N = rng.pick([1, 17, 100, 767]);
  const dy = rng.uniform(M * N),
    db0 = rng.uniform(N);
  const wantDb = db0.slice();
  ref.biasBackward(M, N, dy, wantDb);
  const T = rng.pick(ODD),
    C = rng.pick([1, 3, 16, 17, 48, 100]),
    V = rng.int(1, 20);
  const ids = rng.ints(T, 0, V - 1),
    table = rng.uniform(V * C),
    dout = rng.uniform(T * C),
    dt0 = rng.uniform(V * C);
  const wantE = new Float32Array(T * C),
    wantDt = dt0.slice();
  ref.embeddingForward(T, C, V, ids, table, wantE);
  ref.embeddingBackward(T, C, V, ids, dout, wantDt);
  eachConfig(be, (cfg) => {
    const db = db0.slice();
    be.biasBackward(M, N, dy, db);
    assertClose(db, wantDb, prodTol(M), `biasBackward ${cfg}`);
    const e = new Float32Array(T * C);
    be.embeddingForward(T, C, V, ids, table, e);
    assertBitwise(e, wantE, `embeddingForward ${cfg}`);
    const dt = dt0.slice();
    be.embeddingBackward(T, C, V, ids, dout, dt);
    assertClose(dt, wantDt, prodTol(T), `embeddingBackward ${cfg}`);
  });
});

// ---- norms, activations, rope ---------------------------------------------------------------------------------------
seeded('layerNorm and rmsNorm forward/backward vs ref, rows independent', (rng, be) => {
  for (const C of [1, 3, 17, rng.pick([64, 100, 767, 768])]) {
    const N = rng.pick(ODD),
      eps = 1e-5;
    const x = rng.uniform(N * C, 2),
      w = rng.uniform(C),
      b = rng.uniform(C),
      dout = rng.uniform(N * C);
    const dx0 = rng.uniform(N * C),
      dw0 = rng.uniform(C),
      db0 = rng.uniform(C);
    const out = new Float32Array(N * C),
      mean = new Float32Array(N),
      rstd = new Float32Array(N);
    ref.layerNormForward(N, C, x, w, b, eps, out, mean, rstd);
    const [dx, dw, db] = [dx0.slice(), dw0.slice(), db0.slice()];
    ref.layerNormBackward(N, C, dout, x, w, mean, rstd, dx, dw, db);
    const rOut = new Float32Array(N * C),
      rRstd = new Float32Array(N);
    ref.rmsNormForward(N, C, x, w, eps, rOut, rRstd);
    const [rdx, rdw] = [dx0.slice(), dw0.slice()];
    ref.rmsNormBackward(N, C, dout, x, w, rRstd, rdx, rdw);
    eachConfig(be, (cfg) => {
      const o = new Float32Array(N * C),
        mu = new Float32Array(N),
        rs = new Float32Array(N);
      be.layerNormForward(N, C, x, w, b, eps, o, mu, rs);
      assertClose(o, out, prodTol(C), `layerNormForward C=${C} ${cfg}`);
      assertClose(mu, mean, prodTol(C), `layerNorm mean ${cfg}`);
      assertClose(rs, rstd, prodTol(C), `layerNorm rstd ${cfg}`);
      const [gx, gw, gb] = [dx0.slice(), dw0.slice(), db0.slice()];
      be.layerNormBackward(N, C, dout, x, w, mean, rstd, gx, gw, gb);
      assertClose(gx, dx, prodTol(C), `layerNormBackward dx C=${C} ${cfg}`);
      assertClose(gw, dw, prodTol(N), `layerNormBackward dw ${cfg}`);
      assertClose(gb, db, prodTol(N), `layerNormBackward db ${cfg}`);
      const ro = new Float32Array(N * C),
        rr = new Float32Array(N);
      be.rmsNormForward(N, C, x, w, eps, ro, rr);
      assertClose(ro, rOut, prodTol(C), `rmsNormForward C=${C} ${cfg}`);
      assertClose(rr, rRstd, prodTol(C), `rmsNorm rstd ${cfg}`);
      const [hx, hw] = [dx0.slice(), dw0.slice()];
      be.rmsNormBackward(N, C, dout, x, w, rRstd, hx, hw);
      assertClose(hx, rdx, prodTol(C), `rmsNormBackward dx ${cfg}`);
      assertClose(hw, rdw, prodTol(N), `rmsNormBackward dw ${cfg}`);
      // row independence: the last row alone
      const r = N - 1;
      const o1 = new Float32Array(C),
        m1 = new Float32Array(1),
        s1 = new Float32Array(1);
      be.layerNormForward(1, C, x.subarray(r * C), w, b, eps, o1, m1, s1);
      assertBitwise(o1, o.subarray(r * C, (r + 1) * C), `layerNormForward row alone ${cfg}`);
      be.rmsNormForward(1, C, x.subarray(r * C), w, eps, o1, s1);
      assertBitwise(o1, ro.subarray(r * C, (r + 1) * C), `rmsNormForward row alone ${cfg}`);
    });
  }
});

seeded('gelu, swiglu forward/backward vs ref', (rng, be) => {
  const n = rng.pick([1, 7, 16, 17, 1000, 70001]);
  const x = rng.uniform(n, 6),
    up = rng.uniform(n, 2),
    dout = rng.uniform(n),
    d0 = rng.uniform(n),
    u0 = rng.uniform(n);
  const g = new Float32Array(n),
    s = new Float32Array(n);
  ref.geluForward(n, x, g);
  ref.swigluForward(n, x, up, s);
  const gd = d0.slice();
  ref.geluBackward(n, x, dout, gd);
  const [sd, su] = [d0.slice(), u0.slice()];
  ref.swigluBackward(n, x, up, dout, sd, su);
  eachConfig(be, (cfg) => {
    const o = new Float32Array(n);
    be.geluForward(n, x, o);
    assertClose(o, g, 1e-5, `geluForward n=${n} ${cfg}`);
    const inPlace = x.slice();
    be.geluForward(n, inPlace, inPlace);
    assertBitwise(inPlace, o, `geluForward in place ${cfg}`);
    be.swigluForward(n, x, up, o);
    assertClose(o, s, 1e-5, `swigluForward ${cfg}`);
    const d = d0.slice();
    be.geluBackward(n, x, dout, d);
    assertClose(d, gd, 1e-5, `geluBackward ${cfg}`);
    const [a, b] = [d0.slice(), u0.slice()];
    be.swigluBackward(n, x, up, dout, a, b);
    assertClose(a, sd, 1e-5, `swigluBackward dgate ${cfg}`);
    assertClose(b, su, 1e-5, `swigluBackward dup ${cfg}`);
  });
});

seeded('rope forward and inverse vs ref (cached and uncached positions)', (rng, be) => {
  for (const D of [2, 6, 64, rng.pick([32, 34, 128])]) {
    const R = rng.pick(ODD),
      H = rng.int(1, 5),
      theta = rng.pick([10000, 500000]);
    const pos = rng.ints(R, 0, 5000);
    if (R > 1) pos[1] = -3; // ref accepts any position; native computes such rows outside its table
    const x = rng.uniform(R * H * D);
    for (const inverse of [false, true]) {
      const want = x.slice();
      ref.rope(R, H, D, want, pos, theta, inverse);
      eachConfig(be, (cfg) => {
        const got = x.slice();
        be.rope(R, H, D, got, pos, theta, inverse);
        assertClose(got, want, 1e-5, `rope D=${D} inverse=${inverse} ${cfg}`);
      });
    }
  }
});

// ---- attention ------------------------------------------------------------------------------------------------------
seeded('attentionForward and attentionBackward vs ref (grouped heads)', (rng, be) => {
  for (const [G, hpk] of [
    [1, 1],
    [2, 2],
    [1, 3],
  ]) {
    const B = rng.int(1, 2),
      T = rng.pick([1, 5, 17, 33, 64, 65, rng.int(66, 140)]),
      H = G * hpk,
      D = rng.pick([1, 8, 16, 17, 64]);
    const q = rng.uniform(B * T * H * D),
      k = rng.uniform(B * T * G * D),
      v = rng.uniform(B * T * G * D),
      dout = rng.uniform(B * T * H * D);
    const out = new Float32Array(B * T * H * D),
      probs = new Float32Array(B * H * T * T);
    ref.attentionForward(B, T, H, G, D, q, k, v, out, probs);
    const dq0 = rng.uniform(q.length),
      dk0 = rng.uniform(k.length),
      dv0 = rng.uniform(v.length);
    const [dq, dk, dv] = [dq0.slice(), dk0.slice(), dv0.slice()];
    ref.attentionBackward(B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv);
    eachConfig(be, (cfg) => {
      const what = `B=${B} T=${T} H=${H} G=${G} D=${D} ${cfg}`;
      const o = new Float32Array(out.length),
        p = new Float32Array(probs.length).fill(NaN);
      be.attentionForward(B, T, H, G, D, q, k, v, o, p);
      assertClose(o, out, prodTol(T * D), `attentionForward out ${what}`);
      assertClose(p, probs, prodTol(D), `attentionForward probs ${what}`);
      const [gq, gk, gv] = [dq0.slice(), dk0.slice(), dv0.slice()];
      be.attentionBackward(B, T, H, G, D, q, k, v, probs, dout, gq, gk, gv);
      assertClose(gq, dq, prodTol(T * D), `attentionBackward dq ${what}`);
      assertClose(gk, dk, prodTol(T * D * hpk), `attentionBackward dk ${what}`);
      assertClose(gv, dv, prodTol(T * hpk), `attentionBackward dv ${what}`);
    });
  }
});

seeded(
  'attentionDecode vs ref and vs the forward; rows bit-identical alone, in any M, at any thread count',
  (rng, be) => {
    for (const [G, hpk] of [
      [1, 1],
      [3, 1],
      [2, 2],
      [1, 4],
    ]) {
      const H = G * hpk,
        D = rng.pick([1, 16, 17, 64, 200]),
        M = rng.int(1, 8),
        pos0 = rng.pick([0, 1, 5, rng.int(0, 300)]);
      const len = pos0 + M;
      const q = rng.uniform(M * H * D),
        kc = rng.uniform(len * G * D),
        vc = rng.uniform(len * G * D);
      const want = new Float32Array(M * H * D);
      ref.attentionDecode(M, H, G, D, q, kc, vc, pos0, want);
      // the training forward over the whole sequence (B=1, T=len) with q placed at the last M positions
      const qAll = rng.uniform(len * H * D);
      qAll.set(q, pos0 * H * D);
      const simd0 = be.simd;
      eachConfig(be, (cfg) => {
        const what = `M=${M} H=${H} G=${G} D=${D} pos0=${pos0} ${cfg}`;
        const got = new Float32Array(M * H * D);
        be.attentionDecode(M, H, G, D, q, kc, vc, pos0, got);
        assertClose(got, want, prodTol(len * D), `attentionDecode ${what}`);
        for (let i = 0; i < M; i++) {
          const one = new Float32Array(H * D);
          be.attentionDecode(1, H, G, D, q.subarray(i * H * D), kc, vc, pos0 + i, one);
          assertBitwise(
            one,
            got.subarray(i * H * D, (i + 1) * H * D),
            `attentionDecode row ${i} alone vs in M=${M}, ${what}`,
          );
        }
        const out = new Float32Array(len * H * D),
          probs = new Float32Array(H * len * len);
        be.attentionForward(1, len, H, G, D, qAll, kc, vc, out, probs);
        assertClose(
          out.subarray(pos0 * H * D),
          got,
          prodTol(len * D),
          `attentionDecode vs attentionForward rows, ${what}`,
        );
      });
      be.setSimd(simd0);
    }
  },
);

// ---- loss, optimizer, elementwise -----------------------------------------------------------------------------------
seeded('crossEntropy forward/backward vs ref (ignored rows)', (rng, be) => {
  const N = rng.pick(ODD),
    V = rng.pick([1, 2, 17, 1000, 4099]);
  const logits = rng.uniform(N * V, 8),
    targets = rng.ints(N, -1, V - 1),
    scale = 1 / N;
  const losses = new Float32Array(N);
  const total = ref.crossEntropyForward(N, V, logits, targets, losses);
  const d0 = rng.uniform(N * V, 0.01);
  const dl = d0.slice();
  ref.crossEntropyBackward(N, V, logits, targets, scale, dl);
  eachConfig(be, (cfg) => {
    const l = new Float32Array(N).fill(NaN);
    const t = be.crossEntropyForward(N, V, logits, targets, l);
    assertClose(l, losses, prodTol(V), `crossEntropyForward losses V=${V} ${cfg}`);
    assertClose([t], [total], prodTol(V), `crossEntropyForward total ${cfg}`);
    const g = d0.slice();
    be.crossEntropyBackward(N, V, logits, targets, scale, g);
    assertClose(g, dl, prodTol(V), `crossEntropyBackward V=${V} ${cfg}`);
  });
});

seeded('adamw, add, axpy, scale, sumSquares vs ref', (rng, be) => {
  const n = rng.pick([1, 15, 17, 1000, 100003]);
  const p0 = rng.uniform(n),
    g = rng.uniform(n, 0.1),
    m0 = rng.uniform(n, 0.01),
    v0 = rng.uniform(n, 1e-4).map(Math.abs);
  const step = rng.int(1, 50);
  const [p, m, v] = [p0.slice(), m0.slice(), v0.slice()];
  ref.adamw(n, p, g, m, v, 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
  // 0.9·m + 0.1·g may cancel (seen at n = 1): m's error is held to the scale of its terms
  const momentTerms = 0.01;
  const sum = new Float32Array(n),
    y0 = rng.uniform(n),
    y = y0.slice(),
    sc = p0.slice();
  ref.add(n, p0, g, sum);
  ref.axpy(n, 0.37, g, y);
  ref.scale(n, sc, -1.7);
  const ss = ref.sumSquares(n, p0);
  let firstSs: number | null = null;
  eachConfig(be, (cfg) => {
    const [bp, bm, bv] = [p0.slice(), m0.slice(), v0.slice()];
    be.adamw(n, bp, g, bm, bv, 1e-3, 0.9, 0.95, 1e-8, 0.1, step);
    assertClose(bm, m, 1e-6, `adamw m ${cfg}`, momentTerms);
    assertClose(bv, v, 1e-6, `adamw v ${cfg}`);
    assertClose(bp, p, 1e-6, `adamw param ${cfg}`);
    const s = new Float32Array(n);
    be.add(n, p0, g, s);
    assertBitwise(s, sum, `add ${cfg}`);
    const alias = p0.slice();
    be.add(n, alias, g, alias);
    assertBitwise(alias, sum, `add in place ${cfg}`);
    const yy = y0.slice();
    be.axpy(n, 0.37, g, yy);
    assertClose(yy, y, 1e-6, `axpy ${cfg}`);
    const c = p0.slice();
    be.scale(n, c, -1.7);
    assertClose(c, sc, 1e-6, `scale ${cfg}`);
    const got = be.sumSquares(n, p0);
    assertClose([got], [ss], 1e-12, `sumSquares ${cfg}`);
    if (firstSs === null) firstSs = got;
    else if (cfg.startsWith(be.availableSimd()[0]))
      assert.equal(got, firstSs, `sumSquares ${cfg}: same value at every thread count`);
  });
});

// ---- argument errors and loading ------------------------------------------------------------------------------------
function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return '(no error)';
}

seeded('argument errors: same messages as ref', (_rng, be) => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const cases: [string, (b: Backend) => unknown][] = [
    ['gemm short c', (b) => b.gemm(2, 3, 4, f(8), false, f(12), false, f(5), false)],
    ['gemm negative', (b) => b.gemm(-1, 3, 4, f(8), false, f(12), false, f(5), false)],
    ['linear short w', (b) => b.linear(1, 3, 4, f(4), f(11), null, f(3))],
    ['linear short bias', (b) => b.linear(1, 3, 4, f(4), f(12), f(2), f(3))],
    ['embedding bad id', (b) => b.embeddingForward(2, 3, 4, Int32Array.from([1, 4]), f(12), f(6))],
    ['embedding backward bad id', (b) => b.embeddingBackward(2, 3, 4, Int32Array.from([-1, 0]), f(6), f(12))],
    ['layerNorm eps', (b) => b.layerNormForward(1, 2, f(2), f(2), f(2), 0, f(2), f(1), f(1))],
    ['layerNorm C=0', (b) => b.layerNormForward(1, 0, f(2), f(2), f(2), 1e-5, f(2), f(1), f(1))],
    ['rmsNorm backward short dx', (b) => b.rmsNormBackward(2, 2, f(4), f(4), f(2), f(2), f(3), f(2))],
    ['rope odd D', (b) => b.rope(1, 1, 3, f(3), Int32Array.from([0]), 10000, false)],
    ['rope theta', (b) => b.rope(1, 1, 2, f(2), Int32Array.from([0]), -1, false)],
    ['attention G', (b) => b.attentionForward(1, 2, 3, 2, 4, f(24), f(16), f(16), f(24), f(12))],
    ['attention D=0', (b) => b.attentionDecode(1, 2, 1, 0, f(0), f(0), f(0), 0, f(0))],
    ['attentionDecode short cache', (b) => b.attentionDecode(2, 2, 1, 4, f(16), f(11), f(12), 1, f(16))],
    ['crossEntropy target', (b) => b.crossEntropyForward(2, 3, f(6), Int32Array.from([0, 3]), f(2))],
    ['crossEntropy scale', (b) => b.crossEntropyBackward(1, 3, f(3), Int32Array.from([0]), NaN, f(3))],
    ['adamw beta', (b) => b.adamw(1, f(1), f(1), f(1), f(1), 1e-3, 1, 0.9, 1e-8, 0, 1)],
    ['adamw step', (b) => b.adamw(1, f(1), f(1), f(1), f(1), 1e-3, 0.9, 0.9, 1e-8, 0, 0)],
    ['axpy alpha', (b) => b.axpy(1, Infinity, f(1), f(1))],
    ['sumSquares short', (b) => b.sumSquares(3, f(2))],
    ['setThreads', (b) => b.setThreads(0)],
  ];
  for (const [name, call] of cases) {
    const want = errorOf(() => call(ref));
    assert.notEqual(want, '(no error)', `${name}: ref throws`);
    assert.equal(
      errorOf(() => call(be)),
      want,
      name,
    );
  }
  assert.throws(() => be.setSimd('avx9000' as SimdPath), /not available/);
});

test(
  'addon loads (fails when not built unless RECYCLEGPT_BACKEND=ref) and RECYCLEGPT_SIMD picks the path',
  { skip: nativeSkip },
  () => {
    const be = native();
    assert.equal(be.name, 'native');
    const paths = be.availableSimd();
    assert.ok(paths.includes('scalar'));
    assert.equal(be.simd, paths[0], 'the best path is the default');
    // RECYCLEGPT_SIMD is read by the process default (getBackend) only; createBackend takes { simd }.
    const indexTs = fileURLToPath(new URL('../src/kernels/index.ts', import.meta.url));
    const script =
      `import { getBackend } from ${JSON.stringify(indexTs)};` +
      'const b = getBackend(); console.log(JSON.stringify({ simd: b.simd }));';
    for (const want of [paths[paths.length - 2] ?? 'scalar', 'scalar']) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        env: { ...process.env, RECYCLEGPT_SIMD: want },
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.deepEqual(JSON.parse(lines[lines.length - 1]), { simd: want });
    }
  },
);

seeded(
  'setLinearSmallMaxRows / setPoolSpin: defaults, bounds; either path and any spin give the same rows as before',
  (rng, be) => {
    const a = be.addon;
    const rows0 = a.linearSmallMaxRows(),
      spin0 = a.poolSpin();
    assert.equal(rows0, SMALL_M_ROWS);
    assert.ok(Number.isInteger(spin0) && spin0 >= 0);
    assert.throws(() => a.setLinearSmallMaxRows(7), /^RangeError: setLinearSmallMaxRows: rows must be 8\.\.1024/);
    assert.throws(() => a.setLinearSmallMaxRows(1025), /setLinearSmallMaxRows: rows/);
    assert.throws(() => a.setPoolSpin(-1), /setPoolSpin: microseconds/);
    const M = 16,
      N = rng.int(1, 300),
      K = rng.int(1, 400);
    const x = rng.uniform(M * K),
      w = rng.uniform(N * K),
      bias = rng.uniform(N);
    const want = new Float32Array(M * N);
    ref.linear(M, N, K, x, w, bias, want);
    const th0 = be.threads();
    try {
      be.setThreads(2);
      const runs: Float32Array[] = [];
      for (const [rows, spin] of [
        [8, 0], // the GEMM; workers sleep as soon as a job ends
        [32, 0], // the small-M product in groups of 8
        [32, 5000],
      ] as const) {
        a.setLinearSmallMaxRows(rows);
        a.setPoolSpin(spin);
        const y = new Float32Array(M * N);
        for (let rep = 0; rep < 3; rep++) be.linear(M, N, K, x, w, bias, y);
        assertClose(y, want, prodTol(K), `linear ${M}x${N}x${K}, small-M up to ${rows} rows, spin ${spin} µs`);
        runs.push(y);
      }
      assertBitwise(runs[2]!, runs[1]!, 'the pool spin does not change results');
    } finally {
      a.setLinearSmallMaxRows(rows0);
      a.setPoolSpin(spin0);
      be.setThreads(th0);
    }
  },
);
