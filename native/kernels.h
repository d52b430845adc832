// The kernel table: one instance per instruction set (kernels_avx512.cc, kernels_avx2.cc, kernels_scalar.cc,
// all generated from kernels_impl.h). addon.cc picks one at load time with cpuid. Arguments arrive validated by
// addon.cc (types, each dimension in [0, 2^31-1], array lengths against overflow-checked products, ids, targets),
// and calls that write nothing never arrive; `nth` is the thread count for this call.
#pragma once
#include <stdint.h>

namespace rg {

typedef int64_t i64;

struct KernelTable {
  const char* name;
  int simd_width;  // floats per vector register

  // C[M,N] (= or +=) op(A)·op(B)
  void (*gemm)(int nth, i64 M, i64 N, i64 K, const float* a, bool transA, const float* b, bool transB, float* c,
               bool accumulate);
  // y[M,N] = x[M,K]·W[N,K]^T + bias (bias may be null)
  void (*linear)(int nth, i64 M, i64 N, i64 K, const float* x, const float* w, const float* bias, float* y);
  void (*bias_backward)(int nth, i64 M, i64 N, const float* dy, float* db);

  void (*embedding_forward)(int nth, i64 T, i64 C, const int32_t* ids, const float* table, float* out);
  void (*embedding_backward)(int nth, i64 T, i64 C, const int32_t* ids, const float* dout, float* dtable);

  void (*layernorm_forward)(int nth, i64 N, i64 C, const float* x, const float* w, const float* b, float eps,
                            float* out, float* mean, float* rstd);
  void (*layernorm_backward)(int nth, i64 N, i64 C, const float* dout, const float* x, const float* w,
                             const float* mean, const float* rstd, float* dx, float* dw, float* db);
  void (*rmsnorm_forward)(int nth, i64 N, i64 C, const float* x, const float* w, float eps, float* out, float* rstd);
  void (*rmsnorm_backward)(int nth, i64 N, i64 C, const float* dout, const float* x, const float* w,
                           const float* rstd, float* dx, float* dw);

  void (*gelu_forward)(int nth, i64 n, const float* x, float* out);
  void (*gelu_backward)(int nth, i64 n, const float* x, const float* dout, float* dx);
  void (*swiglu_forward)(int nth, i64 n, const float* gate, const float* up, float* out);
  void (*swiglu_backward)(int nth, i64 n, const float* gate, const float* up, const float* dout, float* dgate,
                          float* dup);

  // x[R,H,D] rotated in place; cosTab/sinTab hold [maxPos+1, D/2] float32 values (built by addon.cc).
  void (*rope)(int nth, i64 R, i64 H, i64 D, float* x, const int32_t* pos, const float* cosTab,
               const float* sinTab, bool inverse);

  void (*attention_forward)(int nth, i64 B, i64 T, i64 H, i64 G, i64 D, const float* q, const float* k,
                            const float* v, float* out, float* probs);
  void (*attention_backward)(int nth, i64 B, i64 T, i64 H, i64 G, i64 D, const float* q, const float* k,
                             const float* v, const float* probs, const float* dout, float* dq, float* dk,
                             float* dv);
  void (*attention_decode)(int nth, i64 M, i64 H, i64 G, i64 D, const float* q, const float* kCache,
                           const float* vCache, i64 pos0, float* out);

  double (*cross_entropy_forward)(int nth, i64 N, i64 V, const float* logits, const int32_t* targets,
                                  float* losses);
  void (*cross_entropy_backward)(int nth, i64 N, i64 V, const float* logits, const int32_t* targets, float scale,
                                 float* dlogits);

  // bc1 = 1 − beta1^t, bc2 = 1 − beta2^t (computed in double by the caller)
  void (*adamw)(int nth, i64 n, float* param, const float* grad, float* m, float* v, float lr, float beta1,
                float beta2, float eps, float wd, float bc1, float bc2);
  void (*add)(int nth, i64 n, const float* a, const float* b, float* out);
  void (*axpy)(int nth, i64 n, float alpha, const float* x, float* y);
  void (*scale)(int nth, i64 n, float* x, float alpha);
  double (*sum_squares)(int nth, i64 n, const float* x);

  // Streaming read of n floats (the bandwidth benchmark): returns their sum so the read is not elided.
  double (*read_sum)(int nth, i64 n, const float* x);
};

const KernelTable* table_scalar();
#if defined(RG_X86)
const KernelTable* table_avx2();
const KernelTable* table_avx512();
#endif

}  // namespace rg
