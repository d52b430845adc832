/**
 * The ref backend against independent float64 re-implementations: forwards are compared directly, every
 * backward kernel against central differences of L = Σ r·forward(inputs) with random r. Shapes and data are
 * random each run (the seed is printed on failure; SEED=… reproduces).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRefBackend } from '../src/kernels/ref.js';
import { added, assertClose, numericGrad, seededTest, toF64, type Forward64, type Rng } from './helpers/check.js';
import {
  attention64,
  crossEntropySum64,
  gelu64,
  layerNorm64,
  linear64,
  matmul64,
  rmsNorm64,
  rope64,
  swiglu64,
} from './helpers/oracle64.js';

const be = createRefBackend();

/** Check the analytic gradient of every input against central differences of f. */
function checkGrads(
  what: string,
  f: Forward64,
  inputs: Float32Array[],
  r: Float32Array,
  analytic: ArrayLike<number>[],
): void {
  const inputs64 = inputs.map(toF64);
  const r64 = toF64(r);
  analytic.forEach((grad, i) => assertClose(`${what} d${i}`, grad, numericGrad(f, inputs64, r64, i)));
}

/**
 * Run an accumulating backward twice: into zeros (the gradient, returned) and into noise, which must come out
 * as noise + gradient (the kernel adds, it does not overwrite).
 */
function accumulated(rng: Rng, sizes: number[], run: (grads: Float32Array[]) => void): Float32Array[] {
  const grads = sizes.map((n) => new Float32Array(n));
  run(grads);
  const noisy = sizes.map((n) => rng.f32(n, 0.5));
  const before = noisy.map((g) => g.slice());
  run(noisy);
  noisy.forEach((g, i) =>
    assertClose(
      `accumulate into grad ${i}`,
      added(g, before[i]),
      grads[i],
      2.5e-7,
      0,
      2.5e-7 * (1 + Math.max(...before[i].map(Math.abs))),
    ),
  );
  return grads;
}

// ---- gradient checks ---------------------------------------------------------------------------------------
seededTest('linear + gemm transposes + biasBackward: gradients', (rng) => {
  const [M, N, K] = [rng.int(1, 5), rng.int(1, 6), rng.int(1, 7)];
  const x = rng.f32(M * K),
    w = rng.f32(N * K),
    b = rng.f32(N),
    r = rng.f32(M * N);
  const y = new Float32Array(M * N);
  be.linear(M, N, K, x, w, b, y);
  assertClose('linear forward', y, linear64(M, N, K, toF64(x), toF64(w), toF64(b)), 1e-5, 1e-6);
  const [dx, dw, db] = accumulated(rng, [M * K, N * K, N], ([gx, gw, gb]) => {
    be.gemm(M, K, N, r, false, w, false, gx, true); // dx = dy·W
    be.gemm(N, K, M, r, true, x, false, gw, true); // dW += dyᵀ·x
    be.biasBackward(M, N, r, gb);
  });
  checkGrads('linear', ([x64, w64, b64]) => linear64(M, N, K, x64, w64, b64), [x, w, b], r, [dx, dw, db]);
  // y = x·W with W stored [K,N]: dx = dy·Wᵀ (transB), dW = xᵀ·dy (transA)
  const wKN = rng.f32(K * N);
  const [dx2, dw2] = accumulated(rng, [M * K, K * N], ([gx, gw]) => {
    be.gemm(M, K, N, r, false, wKN, true, gx, true);
    be.gemm(K, N, M, x, true, r, false, gw, true);
  });
  checkGrads('matmul', ([x64, w64]) => matmul64(M, N, K, x64, w64), [x, wKN], r, [dx2, dw2]);
});

seededTest('layerNorm: forward and gradients', (rng) => {
  // C ≥ 3: with C = 2 the two normalised values are ±1 and dx cancels down to O(eps), which float32 cannot resolve
  const [N, C, eps] = [rng.int(1, 4), rng.int(3, 9), 1e-5];
  const x = rng.f32(N * C),
    w = rng.f32(C),
    b = rng.f32(C),
    r = rng.f32(N * C);
  const out = new Float32Array(N * C),
    mean = new Float32Array(N),
    rstd = new Float32Array(N);
  be.layerNormForward(N, C, x, w, b, eps, out, mean, rstd);
  const f: Forward64 = ([x64, w64, b64]) => layerNorm64(N, C, x64, w64, b64, eps);
  assertClose('layerNorm forward', out, f([x, w, b].map(toF64)), 1e-5, 1e-6);
  const grads = accumulated(rng, [N * C, C, C], ([dx, dw, db]) =>
    be.layerNormBackward(N, C, r, x, w, mean, rstd, dx, dw, db),
  );
  checkGrads('layerNorm', f, [x, w, b], r, grads);
});

seededTest('rmsNorm: forward and gradients', (rng) => {
  const [N, C, eps] = [rng.int(1, 4), rng.int(2, 9), 1e-6]; // C = 1 is ill-conditioned (dx = O(eps))
  const x = rng.f32(N * C),
    w = rng.f32(C),
    r = rng.f32(N * C);
  const out = new Float32Array(N * C),
    rstd = new Float32Array(N);
  be.rmsNormForward(N, C, x, w, eps, out, rstd);
  const f: Forward64 = ([x64, w64]) => rmsNorm64(N, C, x64, w64, eps);
  assertClose('rmsNorm forward', out, f([x, w].map(toF64)), 1e-5, 1e-6);
  const grads = accumulated(rng, [N * C, C], ([dx, dw]) => be.rmsNormBackward(N, C, r, x, w, rstd, dx, dw));
  checkGrads('rmsNorm', f, [x, w], r, grads);
});

seededTest('gelu and swiglu: forward and gradients', (rng) => {
  const n = rng.int(1, 33);
  const x = rng.f32(n, 2),
    up = rng.f32(n),
    r = rng.f32(n);
  const out = new Float32Array(n);
  be.geluForward(n, x, out);
  assertClose('gelu forward', out, gelu64(toF64(x)), 1e-5, 1e-6);
  const inPlace = x.slice();
  be.geluForward(n, inPlace, inPlace);
  assert.deepEqual(inPlace, out, 'gelu out aliasing x');
  checkGrads(
    'gelu',
    ([x64]) => gelu64(x64),
    [x],
    r,
    accumulated(rng, [n], ([dx]) => be.geluBackward(n, x, r, dx)),
  );
  be.swigluForward(n, x, up, out);
  assertClose('swiglu forward', out, swiglu64(toF64(x), toF64(up)), 1e-5, 1e-6);
  const grads = accumulated(rng, [n, n], ([dg, du]) => be.swigluBackward(n, x, up, r, dg, du));
  checkGrads('swiglu', ([g64, u64]) => swiglu64(g64, u64), [x, up], r, grads);
});

seededTest('rope: forward matches the formula, inverse is its gradient and undoes it', (rng) => {
  const [R, H, D, theta] = [rng.int(1, 5), rng.int(1, 3), 2 * rng.int(1, 4), 10000];
  const pos = rng.ints(R, 0, 50),
    x = rng.f32(R * H * D),
    r = rng.f32(R * H * D);
  const fwd = x.slice();
  be.rope(R, H, D, fwd, pos, theta, false);
  assertClose('rope forward', fwd, rope64(R, H, D, toF64(x), pos, theta, 1), 1e-5, 1e-6);
  const back = fwd.slice();
  be.rope(R, H, D, back, pos, theta, true);
  assertClose('rope inverse(forward(x))', back, x, 1e-5, 1e-6);
  const dx = r.slice();
  be.rope(R, H, D, dx, pos, theta, true);
  checkGrads('rope', ([x64]) => rope64(R, H, D, x64, pos, theta, 1), [x], r, [dx]);
});

seededTest('attention (G < H, causal): forward, probs and gradients', (rng) => {
  const G = rng.int(2, 3); // G ≥ 2 so that a wrong head → kv-head mapping shows
  const [B, T, H, D] = [rng.int(1, 2), rng.int(1, 5), G * rng.int(2, 3), rng.int(1, 5)];
  const q = rng.f32(B * T * H * D),
    k = rng.f32(B * T * G * D),
    v = rng.f32(B * T * G * D),
    r = rng.f32(B * T * H * D);
  const out = new Float32Array(B * T * H * D),
    probs = new Float32Array(B * H * T * T).fill(NaN);
  be.attentionForward(B, T, H, G, D, q, k, v, out, probs);
  const f: Forward64 = ([q64, k64, v64]) => attention64(B, T, H, G, D, q64, k64, v64);
  assertClose('attention forward', out, f([q, k, v].map(toF64)), 1e-5, 1e-6);
  for (let row = 0; row < B * H * T; row++) {
    const t = row % T;
    const p = probs.subarray(row * T, row * T + T);
    assert.ok(
      p.slice(t + 1).every((x) => x === 0),
      `probs row ${row}: upper triangle must be zero`,
    );
    assert.ok(Math.abs(p.reduce((s, x) => s + x, 0) - 1) < 1e-5, `probs row ${row} sums to 1`);
  }
  const size = B * T * G * D;
  const grads = accumulated(rng, [B * T * H * D, size, size], ([dq, dk, dv]) =>
    be.attentionBackward(B, T, H, G, D, q, k, v, probs, r, dq, dk, dv),
  );
  checkGrads('attention', f, [q, k, v], r, grads);
});

seededTest('embedding: forward gathers rows, backward scatters (repeated ids add up)', (rng) => {
  const [T, C, V] = [rng.int(1, 8), rng.int(1, 5), rng.int(2, 4)];
  const ids = rng.ints(T, 0, V - 1),
    table = rng.f32(V * C),
    r = rng.f32(T * C);
  const out = new Float32Array(T * C);
  be.embeddingForward(T, C, V, ids, table, out);
  const f: Forward64 = ([t64]) => {
    const o = new Float64Array(T * C);
    for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) o[t * C + c] = t64[ids[t] * C + c];
    return o;
  };
  assert.deepEqual(Array.from(out), Array.from(f([toF64(table)])));
  checkGrads(
    'embedding',
    f,
    [table],
    r,
    accumulated(rng, [V * C], ([dt]) => be.embeddingBackward(T, C, V, ids, r, dt)),
  );
});

seededTest('crossEntropy: losses, ignored rows, gradient of scale·Σ loss', (rng) => {
  const [N, V] = [rng.int(2, 6), rng.int(1, 9)];
  const logits = rng.f32(N * V, 3),
    targets = rng.ints(N, 0, V - 1);
  targets[rng.int(0, N - 1)] = -1;
  const losses = new Float32Array(N).fill(NaN);
  const total = be.crossEntropyForward(N, V, logits, targets, losses);
  assertClose('crossEntropy sum', [total], [crossEntropySum64(N, V, toF64(logits), targets)], 1e-6, 0);
  assertClose('crossEntropy losses sum', [losses.reduce((s, x) => s + x, 0)], [total], 1e-5, 0);
  targets.forEach((t, n) => t === -1 && assert.equal(losses[n], 0, `ignored row ${n} has loss 0`));
  const scale = 1 / N;
  const [dl] = accumulated(rng, [N * V], ([g]) => be.crossEntropyBackward(N, V, logits, targets, scale, g));
  targets.forEach(
    (t, n) =>
      t === -1 &&
      assert.ok(
        dl.subarray(n * V, n * V + V).every((x) => x === 0),
        'ignored row gets no gradient',
      ),
  );
  checkGrads(
    'crossEntropy',
    ([l64]) => new Float64Array([crossEntropySum64(N, V, l64, targets)]),
    [logits],
    new Float32Array([scale]),
    [dl],
  );
});

test('the gradient check can fail: a 1% error in one element or a missing term is caught', () => {
  const x = new Float32Array([0.3, -1.2, 2.0, 0.7]),
    r = new Float32Array([1, -0.5, 0.25, 2]);
  const dx = new Float32Array(4);
  be.geluBackward(4, x, r, dx);
  const f: Forward64 = ([x64]) => gelu64(x64);
  checkGrads('gelu (correct)', f, [x], r, [dx]);
  const oneOff = dx.slice();
  oneOff[2] *= 1.01;
  assert.throws(() => checkGrads('gelu (1% off)', f, [x], r, [oneOff]), /gelu \(1% off\) d0\[2\]/);
  // the gradient without the x·(1 − tanh²)·… term
  const missingTerm = x.map((v, i) => r[i] * 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))));
  assert.throws(() => checkGrads('gelu (missing term)', f, [x], r, [missingTerm]));
});

// ---- products, decode, row independence ---------------------------------------------------------------------
seededTest('gemm equals a naive triple loop for all four transpose combinations, = and +=', (rng) => {
  const [M, N, K] = [rng.int(1, 7), rng.int(1, 7), rng.int(1, 9)];
  for (const transA of [false, true])
    for (const transB of [false, true])
      for (const accumulate of [false, true]) {
        const a = rng.f32(M * K),
          b = rng.f32(K * N),
          c0 = rng.f32(M * N);
        const c = c0.slice();
        be.gemm(M, N, K, a, transA, b, transB, c, accumulate);
        const expected = new Float64Array(M * N);
        for (let i = 0; i < M; i++)
          for (let j = 0; j < N; j++) {
            let s = accumulate ? c0[i * N + j] : 0;
            for (let p = 0; p < K; p++)
              s += (transA ? a[p * M + i] : a[i * K + p]) * (transB ? b[j * K + p] : b[p * N + j]);
            expected[i * N + j] = s;
          }
        assertClose(`gemm transA=${transA} transB=${transB} accumulate=${accumulate}`, c, expected, 1e-6, 1e-7);
      }
});

seededTest('attentionDecode equals the last rows of attentionForward bit for bit', (rng) => {
  const G = rng.int(1, 3);
  // (the mapping of heads to kv heads is checked against the oracle in the attention gradient test)
  const [T, H, D] = [rng.int(2, 9), G * rng.int(1, 3), rng.int(1, 6)];
  const q = rng.f32(T * H * D),
    k = rng.f32(T * G * D),
    v = rng.f32(T * G * D);
  const out = new Float32Array(T * H * D);
  be.attentionForward(1, T, H, G, D, q, k, v, out, new Float32Array(H * T * T));
  const maxT = T + 3; // the cache is longer than the filled part; the tail must not be read
  const kCache = new Float32Array(maxT * G * D).fill(NaN),
    vCache = new Float32Array(maxT * G * D).fill(NaN);
  kCache.set(k);
  vCache.set(v);
  for (const M of [1, Math.min(2, T), T]) {
    const pos0 = T - M;
    const dec = new Float32Array(M * H * D);
    be.attentionDecode(M, H, G, D, q.subarray(pos0 * H * D), kCache, vCache, pos0, dec);
    assert.deepEqual(dec, out.subarray(pos0 * H * D), `M=${M} pos0=${pos0}`);
  }
});

seededTest('row independence: linear, norms and rope give each row the same bits alone as in a batch', (rng) => {
  const [M, N, K] = [rng.int(2, 6), rng.int(1, 9), rng.int(1, 17)];
  const x = rng.f32(M * K),
    w = rng.f32(N * K),
    b = rng.f32(N);
  for (const bias of [b, null]) {
    const all = new Float32Array(M * N);
    be.linear(M, N, K, x, w, bias, all);
    for (let m = 0; m < M; m++) {
      const one = new Float32Array(N);
      be.linear(1, N, K, x.subarray(m * K, m * K + K), w, bias, one);
      assert.deepEqual(one, all.subarray(m * N, m * N + N), `linear row ${m} bias=${bias !== null}`);
    }
  }
  const normW = rng.f32(K),
    normB = rng.f32(K),
    pos = rng.ints(M, 0, 99);
  const ln = new Float32Array(M * K),
    rms = new Float32Array(M * K),
    roped = x.slice();
  be.layerNormForward(M, K, x, normW, normB, 1e-5, ln, new Float32Array(M), new Float32Array(M));
  be.rmsNormForward(M, K, x, normW, 1e-5, rms, new Float32Array(M));
  const evenK = K - (K % 2);
  be.rope(M, 1, evenK, roped, pos, 10000, false);
  for (let m = 0; m < M; m++) {
    const row = x.slice(m * K, m * K + K),
      one = new Float32Array(K);
    be.layerNormForward(1, K, row, normW, normB, 1e-5, one, new Float32Array(1), new Float32Array(1));
    assert.deepEqual(one, ln.subarray(m * K, m * K + K), `layerNorm row ${m}`);
    be.rmsNormForward(1, K, row, normW, 1e-5, one, new Float32Array(1));
    assert.deepEqual(one, rms.subarray(m * K, m * K + K), `rmsNorm row ${m}`);
    const r1 = x.slice(m * evenK, m * evenK + evenK);
    be.rope(1, 1, evenK, r1, pos.subarray(m, m + 1), 10000, false);
    assert.deepEqual(r1, roped.subarray(m * evenK, m * evenK + evenK), `rope row ${m}`);
  }
});

seededTest('adamw one step and the elementwise kernels match their formulas', (rng) => {
  const n = rng.int(1, 20);
  const p = rng.f32(n),
    g = rng.f32(n),
    m = rng.f32(n, 0.1),
    v = rng.f32(n, 0.1).map(Math.abs);
  const [lr, b1, b2, eps, wd, step] = [1e-2, 0.9, 0.95, 1e-8, 0.1, rng.int(1, 5)];
  const expected = Array.from(p, (pi, i) => {
    const mi = b1 * m[i] + (1 - b1) * g[i],
      vi = b2 * v[i] + (1 - b2) * g[i] ** 2;
    return pi - lr * (mi / (1 - b1 ** step) / (Math.sqrt(vi / (1 - b2 ** step)) + eps) + wd * pi);
  });
  be.adamw(n, p, g, m, v, lr, b1, b2, eps, wd, step);
  assertClose('adamw param', p, expected, 1e-5, 1e-6);
  const a = rng.f32(n),
    y = rng.f32(n),
    out = new Float32Array(n);
  be.add(n, a, y, out);
  assertClose(
    'add',
    out,
    Array.from(a, (x, i) => x + y[i]),
    1e-6,
    0,
  );
  const y0 = y.slice();
  be.axpy(n, 0.5, a, y);
  assertClose(
    'axpy',
    y,
    Array.from(a, (x, i) => y0[i] + 0.5 * x),
    1e-6,
    1e-7,
  );
  be.scale(n, y0, -2);
  assertClose(
    'scale',
    y0,
    Array.from(y, (_, i) => y0[i]),
    0,
    0,
  );
  assertClose('sumSquares', [be.sumSquares(n, a)], [a.reduce((s, x) => s + x * x, 0)], 1e-12, 0);
});

// ---- argument errors --------------------------------------------------------------------------------------
test('wrong sizes and bad arguments throw an Error naming the kernel', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const i = (...xs: number[]): Int32Array => Int32Array.from(xs);
  const cases: [string, () => unknown][] = [
    ['gemm', () => be.gemm(2, 3, 4, f(7), false, f(12), false, f(6), false)],
    ['gemm', () => be.gemm(2, 3, -1, f(8), false, f(12), false, f(6), false)],
    ['linear', () => be.linear(2, 3, 4, f(8), f(12), f(2), f(6))],
    ['biasBackward', () => be.biasBackward(2, 3, f(6), f(2))],
    ['embeddingForward', () => be.embeddingForward(2, 3, 4, i(0, 4), f(12), f(6))],
    ['embeddingBackward', () => be.embeddingBackward(2, 3, 4, i(0, -1), f(6), f(12))],
    ['layerNormForward', () => be.layerNormForward(2, 3, f(6), f(3), f(3), 1e-5, f(6), f(1), f(2))],
    ['layerNormBackward', () => be.layerNormBackward(2, 3, f(6), f(6), f(3), f(2), f(2), f(6), f(2), f(3))],
    ['rmsNormForward', () => be.rmsNormForward(2, 3, f(5), f(3), 1e-5, f(6), f(2))],
    ['rmsNormBackward', () => be.rmsNormBackward(2, 3, f(6), f(6), f(3), f(2), f(5), f(3))],
    ['geluForward', () => be.geluForward(4, f(4), f(3))],
    ['geluBackward', () => be.geluBackward(4, f(4), f(3), f(4))],
    ['swigluForward', () => be.swigluForward(4, f(4), f(3), f(4))],
    ['swigluBackward', () => be.swigluBackward(4, f(4), f(4), f(4), f(4), f(3))],
    ['rope', () => be.rope(2, 1, 3, f(6), i(0, 1), 10000, false)],
    ['rope', () => be.rope(2, 1, 4, f(8), i(0), 10000, false)],
    ['attentionForward', () => be.attentionForward(1, 2, 3, 2, 4, f(24), f(16), f(16), f(24), f(12))],
    ['attentionForward', () => be.attentionForward(1, 2, 4, 2, 4, f(32), f(16), f(16), f(32), f(15))],
    [
      'attentionBackward',
      () => be.attentionBackward(1, 2, 4, 2, 4, f(32), f(16), f(16), f(16), f(32), f(32), f(16), f(15)),
    ],
    ['attentionDecode', () => be.attentionDecode(2, 4, 2, 4, f(32), f(24), f(32), 2, f(32))],
    ['crossEntropyForward', () => be.crossEntropyForward(2, 3, f(6), i(0, 3), f(2))],
    ['crossEntropyBackward', () => be.crossEntropyBackward(2, 3, f(6), i(0, -2), 1, f(6))],
    ['adamw', () => be.adamw(3, f(3), f(3), f(3), f(2), 1e-3, 0.9, 0.999, 1e-8, 0, 1)],
    ['adamw', () => be.adamw(3, f(3), f(3), f(3), f(3), 1e-3, 0.9, 0.999, 1e-8, 0, 0)],
    ['add', () => be.add(3, f(3), f(2), f(3))],
    ['axpy', () => be.axpy(3, 1, f(3), f(2))],
    ['scale', () => be.scale(3, f(2), 2)],
    ['sumSquares', () => be.sumSquares(3, f(2))],
    ['setThreads', () => be.setThreads(0)],
  ];
  for (const [op, call] of cases) {
    assert.throws(
      call,
      (err: unknown) => err instanceof Error && err.message.startsWith(`${op}:`) && /\d/.test(err.message),
      `${op} should throw naming itself`,
    );
  }
  be.setThreads(2);
  assert.equal(be.threads(), 1);
});
