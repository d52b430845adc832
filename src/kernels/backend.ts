/**
 * The kernel set every backend implements. The TS side (tensor, nn, model, generate) owns all model logic and
 * calls only these. Backends: "ref" (plain TypeScript, the oracle), "native" (C++ N-API addon), later "wasm".
 *
 * Conventions (all backends):
 * - Arrays are dense row-major Float32Array (ids: Int32Array). Pass `subarray` views for offsets.
 * - Shape letters: B batch, T time, C channels, H query heads, G (Hkv) key/value heads, D head dim, V vocab,
 *   M rows, N output features, K input features.
 * - "accumulate" outputs (all gradients of inputs and parameters in backward kernels, marked `+=`) add into
 *   the destination; everything else overwrites.
 * - Linear weights are stored [N, K] (out, in), as torch.nn.Linear and Llama. GPT-2's Conv1D [in, out] weights
 *   are transposed once at import.
 * - Row independence: for the norms, activations, `rope` and `attentionDecode`, the result for one row is
 *   bit-identical whatever the number of rows M in the call; for `linear` it is bit-identical for every M ≤ 8
 *   (the decode path: same accumulation order, threads split over N, never over K; native and wasm keep it up to
 *   24 rows on 16- and 8-bit weights, 12 on f32, taking larger M in groups of 8). Verified decoding depends on it
 *   (ARCHITECTURE.md §1.3): its 2-row full calls must reproduce standard decoding's 1-row calls exactly. Above
 *   that (prefill, training) `linear` may use a blocked GEMM whose rows agree with 1-row calls only to float32
 *   rounding; every decoding mode runs the same prefill, so their outputs still agree exactly.
 * - Reductions are deterministic for a given thread count.
 * - Kernels validate their sizes and throw an Error naming the kernel and the sizes that disagree.
 */
export type F32 = Float32Array;

/**
 * How a model file's weight is stored. f32: a Float32Array. f16 / bf16: a Uint16Array of IEEE half / bfloat16 bits,
 * converted to float32 in registers as the kernel reads them (the conversion is exact, so a row's result does not
 * depend on the storage of equal values). q8_0: int8 quants with one float16 scale per block of 32 along K
 * (kernels/quant.ts; ggml's Q8_0 values); a kernel computes with the dequantized weights d·q, exact in float32.
 */
export type WeightDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';

/**
 * What kernels read: the model files' dtypes, plus q4_0 (4-bit quants d·(q − 8) with one float16 scale per block of
 * 32 along K, packed two a byte: kernels/quant.ts; ggml's Q4_0), which only copies made in memory take (the module's
 * cheaper draft head). Writers of model files (safetensors, GGUF export, `quantize`) refuse q4_0 by name.
 */
export type KernelWeightDtype = WeightDtype | 'q4_0' | PanelDtype;

/**
 * f16 / bf16 values in the layout of the native outer-product kernel (native/kernels.h, kernels/panels.ts): a matrix
 * [N, K] as ceil(N/32) panels of 32 rows, each stored column by column, [K][32], the last zero-padded. Copies a
 * backend makes for its products (Backend.prepareLinear), never in model files. `q8_0_panels`: q8_0's quants in the
 * same layout and its scales as [ceil(N/32)][K/32][32] (the module's cheaper copy, model/module-dtype.ts).
 */
export type PanelDtype = 'f16_panels' | 'bf16_panels' | 'q8_0_panels';

/** A weight handle: its storage dtype and the elements, row-major [N, K] for a matrix (panels: see PanelDtype). */
export type Weight =
  | { readonly dtype: 'f32'; readonly data: Float32Array }
  | { readonly dtype: 'f16' | 'bf16'; readonly data: Uint16Array }
  | { readonly dtype: 'f16_panels' | 'bf16_panels'; readonly data: Uint16Array }
  | { readonly dtype: 'q8_0'; readonly data: Int8Array; readonly scales: Uint16Array }
  | { readonly dtype: 'q8_0_panels'; readonly data: Int8Array; readonly scales: Uint16Array }
  | { readonly dtype: 'q4_0'; readonly data: Uint8Array; readonly scales: Uint16Array };

/** A weight stored row by row (every dtype but the panels). */
export type RowMajorWeight = Exclude<Weight, { readonly dtype: PanelDtype }>;

/** A weight of a model file's dtype (every dtype but q4_0): what `Weights`, loaders and writers hold. */
export type StoredWeight = Extract<Weight, { readonly dtype: WeightDtype }>;

/** What `linear` and `embeddingForward` take as weights: a handle, or a bare Float32Array, which is f32. */
export type WeightArg = F32 | Weight;

/**
 * Where the engine's large buffers come from: weights, KV caches, inference scratch, the training arena and
 * parameter store. A backend hands out memory its kernels read best (a native one may align it; a WASM one keeps
 * it inside its own linear memory, so kernels need no copies). Arrays come zeroed.
 */
export interface Allocator {
  f32(n: number): Float32Array;
  u16(n: number): Uint16Array;
  i32(n: number): Int32Array;
  i8(n: number): Int8Array;
  u8(n: number): Uint8Array;
}

/** Plain JavaScript typed arrays. */
export const heapAllocator: Allocator = {
  f32: (n) => new Float32Array(n),
  u16: (n) => new Uint16Array(n),
  i32: (n) => new Int32Array(n),
  i8: (n) => new Int8Array(n),
  u8: (n) => new Uint8Array(n),
};

export interface Backend {
  readonly name: 'ref' | 'native' | 'wasm';
  /** Threads used by parallel kernels (the caller's thread counts as one). */
  threads(): number;
  setThreads(n: number): void;
  /** Weight dtypes that `linear` and `embeddingForward` read as stored (others must be converted at load). */
  readonly weightDtypes: readonly KernelWeightDtype[];
  /** Memory for the engine's buffers (see Allocator). */
  readonly alloc: Allocator;
  /**
   * A matrix `w` [N, K] as this backend's `linear` reads it fastest on few rows: a copy in another layout (native:
   * f16 / bf16 as panels, kernels/panels.ts), or `w` itself. The same products, to rounding: a copy's sums may be
   * ordered differently, identically for every M. Absent: `w` as stored.
   */
  prepareLinear?(w: StoredWeight, N: number, K: number): Weight;

  // ---- matrix products ----------------------------------------------------------------------------------
  /**
   * C[M,N] (= or +=) op(A) · op(B).
   * A is [M,K], or [K,M] when transA; B is [K,N], or [N,K] when transB.
   */
  gemm(
    M: number,
    N: number,
    K: number,
    a: F32,
    transA: boolean,
    b: F32,
    transB: boolean,
    c: F32,
    accumulate: boolean,
  ): void;
  /**
   * y[M,N] = x[M,K] · W[N,K]ᵀ + bias[N] (bias may be null). For small M (≤ 8; see the row independence above) W is
   * streamed from memory once for all M rows (the decode path); any M is accepted (training uses it as the forward
   * GEMM). W in any dtype of `weightDtypes`.
   */
  linear(M: number, N: number, K: number, x: F32, w: WeightArg, bias: F32 | null, y: F32): void;
  /** db[N] += Σ_m dy[m, :] (bias gradient of `linear`). */
  biasBackward(M: number, N: number, dy: F32, db: F32): void;

  // ---- embedding ------------------------------------------------------------------------------------------
  /** out[T,C] = table[ids[t], :] (table in any dtype of `weightDtypes`). Throws if an id is outside [0, V). */
  embeddingForward(T: number, C: number, V: number, ids: Int32Array, table: WeightArg, out: F32): void;
  /** dtable[ids[t], :] += dout[t, :]. */
  embeddingBackward(T: number, C: number, V: number, ids: Int32Array, dout: F32, dtable: F32): void;

  // ---- norms (N rows of C) ------------------------------------------------------------------------------
  /** out = (x − mean)·rstd·w + b; writes mean[N], rstd[N] for backward. */
  layerNormForward(N: number, C: number, x: F32, w: F32, b: F32, eps: number, out: F32, mean: F32, rstd: F32): void;
  /** dx += …, dw += …, db += … */
  layerNormBackward(
    N: number,
    C: number,
    dout: F32,
    x: F32,
    w: F32,
    mean: F32,
    rstd: F32,
    dx: F32,
    dw: F32,
    db: F32,
  ): void;
  /** out = x·rstd·w with rstd = 1/sqrt(mean(x²) + eps); writes rstd[N]. */
  rmsNormForward(N: number, C: number, x: F32, w: F32, eps: number, out: F32, rstd: F32): void;
  /** dx += …, dw += … */
  rmsNormBackward(N: number, C: number, dout: F32, x: F32, w: F32, rstd: F32, dx: F32, dw: F32): void;

  // ---- activations (n elements) -------------------------------------------------------------------------
  /** GELU, tanh approximation (GPT-2 "gelu_new"). out may alias x. */
  geluForward(n: number, x: F32, out: F32): void;
  /** dx += gelu'(x)·dout */
  geluBackward(n: number, x: F32, dout: F32, dx: F32): void;
  /** out = silu(gate)·up (Llama MLP). */
  swigluForward(n: number, gate: F32, up: F32, out: F32): void;
  /** dgate += …, dup += … */
  swigluBackward(n: number, gate: F32, up: F32, dout: F32, dgate: F32, dup: F32): void;

  // ---- rotary embedding ---------------------------------------------------------------------------------
  /**
   * In place on x[R, H, D] (R rows, H heads): rotate-half RoPE (HF Llama), pair (i, i + D/2) rotated by
   * pos[r]·theta^(−2i/D). `inverse` rotates by the negative angle, which is the backward of the forward.
   */
  rope(R: number, H: number, D: number, x: F32, pos: Int32Array, theta: number, inverse: boolean): void;

  // ---- attention ----------------------------------------------------------------------------------------
  /**
   * Causal self-attention for training. q[B,T,H,D], k,v[B,T,G,D] (G divides H; head h reads kv head
   * h / (H/G)), out[B,T,H,D], probs[B,H,T,T] (softmax weights saved for backward; upper triangle zero).
   * Scale 1/sqrt(D).
   */
  attentionForward(
    B: number,
    T: number,
    H: number,
    G: number,
    D: number,
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    probs: F32,
  ): void;
  /** dq += …, dk += …, dv += … */
  attentionBackward(
    B: number,
    T: number,
    H: number,
    G: number,
    D: number,
    q: F32,
    k: F32,
    v: F32,
    probs: F32,
    dout: F32,
    dq: F32,
    dk: F32,
    dv: F32,
  ): void;
  /**
   * Attention of M new query rows over a KV cache (decode). q[M,H,D]; kCache, vCache [maxT, G, D] already hold
   * the keys/values of positions 0 .. pos0+M−1; query row i sits at position pos0+i and attends to 0..pos0+i.
   * out[M,H,D].
   */
  attentionDecode(
    M: number,
    H: number,
    G: number,
    D: number,
    q: F32,
    kCache: F32,
    vCache: F32,
    pos0: number,
    out: F32,
  ): void;

  // ---- loss ---------------------------------------------------------------------------------------------
  /**
   * Softmax cross-entropy per row: losses[n] = logsumexp(logits[n]) − logits[n, targets[n]]; a target of −1
   * means "ignore" (loss 0). Returns the sum of the losses over the non-ignored rows.
   */
  crossEntropyForward(N: number, V: number, logits: F32, targets: Int32Array, losses: F32): number;
  /** dlogits[n] += scale·(softmax(logits[n]) − onehot(targets[n])); ignored rows get nothing. */
  crossEntropyBackward(N: number, V: number, logits: F32, targets: Int32Array, scale: number, dlogits: F32): void;

  // ---- optimizer and elementwise ----------------------------------------------------------------------
  /**
   * AdamW (decoupled weight decay, bias-corrected), in place over n parameters:
   * m = b1·m + (1−b1)·g; v = b2·v + (1−b2)·g²; p −= lr·( (m/(1−b1^t)) / (sqrt(v/(1−b2^t)) + eps) + wd·p ).
   * `step` t starts at 1.
   */
  adamw(
    n: number,
    param: F32,
    grad: F32,
    m: F32,
    v: F32,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;
  /** out = a + b (out may alias a or b). */
  add(n: number, a: F32, b: F32, out: F32): void;
  /** y += alpha·x */
  axpy(n: number, alpha: number, x: F32, y: F32): void;
  /** x *= alpha */
  scale(n: number, x: F32, alpha: number): void;
  /** Σ x² accumulated in float64. */
  sumSquares(n: number, x: F32): number;
}
