// N-API glue for the native kernels: picks the instruction set at load time (cpuid, overridable downwards with
// RECYCLEGPT_SIMD or setSimd), owns the thread count and the RoPE angle table, and unwraps the typed arrays.
// Arguments are validated on the TS side (src/kernels/native.ts, same messages as the ref backend); the
// length checks here only keep a direct caller from reading or writing out of bounds.
#include <napi.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "kernels.h"
#include "pool.h"

namespace {

using rg::i64;
using rg::KernelTable;

const KernelTable* g_k = nullptr;
int g_threads = 1;

// ---- instruction-set selection --------------------------------------------------------------------------
bool cpu_has_avx512() {
#if defined(RG_X86) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}
bool cpu_has_avx2() {
#if defined(RG_X86) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

const KernelTable* table_for(const std::string& name) {
#if defined(RG_X86)
  if (name == "avx512" && cpu_has_avx512()) return rg::table_avx512();
  if (name == "avx2" && cpu_has_avx2()) return rg::table_avx2();
#endif
  if (name == "scalar") return rg::table_scalar();
  return nullptr;
}

std::vector<std::string> available() {
  std::vector<std::string> out;
  if (cpu_has_avx512()) out.push_back("avx512");
  if (cpu_has_avx2()) out.push_back("avx2");
  out.push_back("scalar");
  return out;
}

int default_threads() {
#if defined(__linux__)
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n > 256 ? 256 : n;
  }
#endif
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : (n > 256 ? 256 : static_cast<int>(n));
}

// ---- argument unwrapping -----------------------------------------------------------------------------------
struct Op {
  const Napi::CallbackInfo& info;
  const char* name;

  [[noreturn]] void fail(const std::string& msg) const {
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": " + msg);
  }
  i64 dim(size_t i) const {
    if (!info[i].IsNumber()) fail("argument " + std::to_string(i) + " must be a number");
    double v = info[i].As<Napi::Number>().DoubleValue();
    if (!(v >= 0 && v <= 9007199254740991.0) || v != floor(v)) fail("argument " + std::to_string(i) + " must be a non-negative integer");
    return static_cast<i64>(v);
  }
  double num(size_t i) const {
    if (!info[i].IsNumber()) fail("argument " + std::to_string(i) + " must be a number");
    return info[i].As<Napi::Number>().DoubleValue();
  }
  bool flag(size_t i) const { return info[i].ToBoolean().Value(); }
  float* f32(size_t i, i64 need, const char* what) const {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      fail(std::string(what) + " must be a Float32Array");
    Napi::Float32Array a = info[i].As<Napi::Float32Array>();
    if (static_cast<i64>(a.ElementLength()) < need) fail(std::string(what) + " is too short");
    return a.Data();
  }
  float* f32_or_null(size_t i, i64 need, const char* what) const {
    if (info[i].IsNull() || info[i].IsUndefined()) return nullptr;
    return f32(i, need, what);
  }
  const int32_t* i32(size_t i, i64 need, const char* what) const {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
      fail(std::string(what) + " must be an Int32Array");
    Napi::Int32Array a = info[i].As<Napi::Int32Array>();
    if (static_cast<i64>(a.ElementLength()) < need) fail(std::string(what) + " is too short");
    return a.Data();
  }
};

Napi::Value Undef(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// ---- backend controls ----------------------------------------------------------------------------------------
Napi::Value Simd(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), g_k->name); }

Napi::Value AvailableSimd(const Napi::CallbackInfo& info) {
  std::vector<std::string> av = available();
  Napi::Array arr = Napi::Array::New(info.Env(), av.size());
  for (size_t i = 0; i < av.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), av[i]));
  return arr;
}

Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  std::string name = info[0].ToString().Utf8Value();
  const KernelTable* t = table_for(name);
  if (!t) throw Napi::Error::New(info.Env(), "setSimd: \"" + name + "\" is not available on this CPU");
  g_k = t;
  return Undef(info);
}

Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), g_threads); }

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Op op{info, "setThreads"};
  i64 n = op.dim(0);
  if (n < 1 || n > 256) op.fail("n must be an integer 1..256");
  g_threads = static_cast<int>(n);
  return Undef(info);
}

// ---- matrix products -----------------------------------------------------------------------------------------
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Op op{info, "gemm"};
  i64 M = op.dim(0), N = op.dim(1), K = op.dim(2);
  const float* a = op.f32(3, M * K, "a");
  bool ta = op.flag(4);
  const float* b = op.f32(5, K * N, "b");
  bool tb = op.flag(6);
  float* c = op.f32(7, M * N, "c");
  g_k->gemm(g_threads, M, N, K, a, ta, b, tb, c, op.flag(8));
  return Undef(info);
}

Napi::Value Linear(const Napi::CallbackInfo& info) {
  Op op{info, "linear"};
  i64 M = op.dim(0), N = op.dim(1), K = op.dim(2);
  const float* x = op.f32(3, M * K, "x");
  const float* w = op.f32(4, N * K, "w");
  const float* bias = op.f32_or_null(5, N, "bias");
  float* y = op.f32(6, M * N, "y");
  g_k->linear(g_threads, M, N, K, x, w, bias, y);
  return Undef(info);
}

Napi::Value BiasBackward(const Napi::CallbackInfo& info) {
  Op op{info, "biasBackward"};
  i64 M = op.dim(0), N = op.dim(1);
  g_k->bias_backward(g_threads, M, N, op.f32(2, M * N, "dy"), op.f32(3, N, "db"));
  return Undef(info);
}

// ---- embedding -------------------------------------------------------------------------------------------------
void check_ids(const Op& op, const int32_t* ids, i64 T, i64 V) {
  for (i64 t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= V) op.fail("ids[" + std::to_string(t) + "] is outside [0, V)");
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Op op{info, "embeddingForward"};
  i64 T = op.dim(0), C = op.dim(1), V = op.dim(2);
  const int32_t* ids = op.i32(3, T, "ids");
  check_ids(op, ids, T, V);
  g_k->embedding_forward(g_threads, T, C, ids, op.f32(4, V * C, "table"), op.f32(5, T * C, "out"));
  return Undef(info);
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Op op{info, "embeddingBackward"};
  i64 T = op.dim(0), C = op.dim(1), V = op.dim(2);
  const int32_t* ids = op.i32(3, T, "ids");
  check_ids(op, ids, T, V);
  g_k->embedding_backward(g_threads, T, C, ids, op.f32(4, T * C, "dout"), op.f32(5, V * C, "dtable"));
  return Undef(info);
}

// ---- norms -------------------------------------------------------------------------------------------------------
Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  Op op{info, "layerNormForward"};
  i64 N = op.dim(0), C = op.dim(1);
  g_k->layernorm_forward(g_threads, N, C, op.f32(2, N * C, "x"), op.f32(3, C, "w"), op.f32(4, C, "b"),
                         static_cast<float>(op.num(5)), op.f32(6, N * C, "out"), op.f32(7, N, "mean"),
                         op.f32(8, N, "rstd"));
  return Undef(info);
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  Op op{info, "layerNormBackward"};
  i64 N = op.dim(0), C = op.dim(1);
  g_k->layernorm_backward(g_threads, N, C, op.f32(2, N * C, "dout"), op.f32(3, N * C, "x"), op.f32(4, C, "w"),
                          op.f32(5, N, "mean"), op.f32(6, N, "rstd"), op.f32(7, N * C, "dx"), op.f32(8, C, "dw"),
                          op.f32(9, C, "db"));
  return Undef(info);
}

Napi::Value RmsNormForward(const Napi::CallbackInfo& info) {
  Op op{info, "rmsNormForward"};
  i64 N = op.dim(0), C = op.dim(1);
  g_k->rmsnorm_forward(g_threads, N, C, op.f32(2, N * C, "x"), op.f32(3, C, "w"), static_cast<float>(op.num(4)),
                       op.f32(5, N * C, "out"), op.f32(6, N, "rstd"));
  return Undef(info);
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  Op op{info, "rmsNormBackward"};
  i64 N = op.dim(0), C = op.dim(1);
  g_k->rmsnorm_backward(g_threads, N, C, op.f32(2, N * C, "dout"), op.f32(3, N * C, "x"), op.f32(4, C, "w"),
                        op.f32(5, N, "rstd"), op.f32(6, N * C, "dx"), op.f32(7, C, "dw"));
  return Undef(info);
}

// ---- activations ---------------------------------------------------------------------------------------------------
Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  Op op{info, "geluForward"};
  i64 n = op.dim(0);
  g_k->gelu_forward(g_threads, n, op.f32(1, n, "x"), op.f32(2, n, "out"));
  return Undef(info);
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  Op op{info, "geluBackward"};
  i64 n = op.dim(0);
  g_k->gelu_backward(g_threads, n, op.f32(1, n, "x"), op.f32(2, n, "dout"), op.f32(3, n, "dx"));
  return Undef(info);
}

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Op op{info, "swigluForward"};
  i64 n = op.dim(0);
  g_k->swiglu_forward(g_threads, n, op.f32(1, n, "gate"), op.f32(2, n, "up"), op.f32(3, n, "out"));
  return Undef(info);
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Op op{info, "swigluBackward"};
  i64 n = op.dim(0);
  g_k->swiglu_backward(g_threads, n, op.f32(1, n, "gate"), op.f32(2, n, "up"), op.f32(3, n, "dout"),
                       op.f32(4, n, "dgate"), op.f32(5, n, "dup"));
  return Undef(info);
}

// ---- RoPE: cos/sin of pos·theta^(−2i/D) in float64, rounded to float32, cached per (theta, D) ------------------
struct RopeTable {
  double theta = 0;
  i64 D = 0;
  i64 rows = 0;  // positions 0..rows-1
  std::vector<float> cosv, sinv;
};
std::mutex g_rope_mu;
RopeTable g_rope;
constexpr i64 kRopeCacheMax = 1 << 20;  // positions cached; others are computed per call

void rope_fill(double theta, i64 D, double pos, float* c, float* s) {
  const i64 half = D / 2;
  for (i64 i = 0; i < half; ++i) {
    double angle = pos * pow(theta, static_cast<double>(-2 * i) / static_cast<double>(D));
    c[i] = static_cast<float>(cos(angle));
    s[i] = static_cast<float>(sin(angle));
  }
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  Op op{info, "rope"};
  i64 R = op.dim(0), H = op.dim(1), D = op.dim(2);
  if (D % 2 != 0) op.fail("D must be even");
  float* x = op.f32(3, R * H * D, "x");
  const int32_t* pos = op.i32(4, R, "pos");
  double theta = op.num(5);
  bool inverse = op.flag(6);
  const i64 half = D / 2;
  if (R == 0 || H == 0 || D == 0) return Undef(info);
  i64 maxPos = 0;
  bool cacheable = true;
  for (i64 r = 0; r < R; ++r) {
    if (pos[r] < 0 || pos[r] >= kRopeCacheMax) cacheable = false;
    else if (pos[r] > maxPos) maxPos = pos[r];
  }
  std::lock_guard<std::mutex> lk(g_rope_mu);
  if (!cacheable) {  // unusual positions: a table with one row per call row
    std::vector<float> c(static_cast<size_t>(R * half)), s(static_cast<size_t>(R * half));
    std::vector<int32_t> idx(static_cast<size_t>(R));
    for (i64 r = 0; r < R; ++r) {
      rope_fill(theta, D, pos[r], &c[r * half], &s[r * half]);
      idx[r] = static_cast<int32_t>(r);
    }
    g_k->rope(g_threads, R, H, D, x, idx.data(), c.data(), s.data(), inverse);
    return Undef(info);
  }
  RopeTable& t = g_rope;
  if (t.theta != theta || t.D != D) {
    t.theta = theta, t.D = D, t.rows = 0;
    t.cosv.clear(), t.sinv.clear();
  }
  if (maxPos >= t.rows) {
    i64 rows = maxPos + 1 > 2 * t.rows ? maxPos + 1 : 2 * t.rows;
    if (rows > kRopeCacheMax) rows = kRopeCacheMax;
    t.cosv.resize(static_cast<size_t>(rows * half));
    t.sinv.resize(static_cast<size_t>(rows * half));
    for (i64 p = t.rows; p < rows; ++p) rope_fill(theta, D, static_cast<double>(p), &t.cosv[p * half], &t.sinv[p * half]);
    t.rows = rows;
  }
  g_k->rope(g_threads, R, H, D, x, pos, t.cosv.data(), t.sinv.data(), inverse);
  return Undef(info);
}

// ---- attention -------------------------------------------------------------------------------------------------------
Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Op op{info, "attentionForward"};
  i64 B = op.dim(0), T = op.dim(1), H = op.dim(2), G = op.dim(3), D = op.dim(4);
  if (G == 0 || H % G != 0) op.fail("H must be a multiple of G");
  g_k->attention_forward(g_threads, B, T, H, G, D, op.f32(5, B * T * H * D, "q"), op.f32(6, B * T * G * D, "k"),
                         op.f32(7, B * T * G * D, "v"), op.f32(8, B * T * H * D, "out"),
                         op.f32(9, B * H * T * T, "probs"));
  return Undef(info);
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Op op{info, "attentionBackward"};
  i64 B = op.dim(0), T = op.dim(1), H = op.dim(2), G = op.dim(3), D = op.dim(4);
  if (G == 0 || H % G != 0) op.fail("H must be a multiple of G");
  const i64 nq = B * T * H * D, nk = B * T * G * D;
  g_k->attention_backward(g_threads, B, T, H, G, D, op.f32(5, nq, "q"), op.f32(6, nk, "k"), op.f32(7, nk, "v"),
                          op.f32(8, B * H * T * T, "probs"), op.f32(9, nq, "dout"), op.f32(10, nq, "dq"),
                          op.f32(11, nk, "dk"), op.f32(12, nk, "dv"));
  return Undef(info);
}

Napi::Value AttentionDecode(const Napi::CallbackInfo& info) {
  Op op{info, "attentionDecode"};
  i64 M = op.dim(0), H = op.dim(1), G = op.dim(2), D = op.dim(3);
  if (G == 0 || H % G != 0) op.fail("H must be a multiple of G");
  i64 pos0 = op.dim(7);
  const i64 len = pos0 + M;
  g_k->attention_decode(g_threads, M, H, G, D, op.f32(4, M * H * D, "q"), op.f32(5, len * G * D, "kCache"),
                        op.f32(6, len * G * D, "vCache"), pos0, op.f32(8, M * H * D, "out"));
  return Undef(info);
}

// ---- loss ---------------------------------------------------------------------------------------------------------------
void check_targets(const Op& op, const int32_t* tg, i64 N, i64 V) {
  for (i64 n = 0; n < N; ++n)
    if (tg[n] != -1 && (tg[n] < 0 || tg[n] >= V)) op.fail("targets[" + std::to_string(n) + "] is outside [0, V)");
}

Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info) {
  Op op{info, "crossEntropyForward"};
  i64 N = op.dim(0), V = op.dim(1);
  const float* logits = op.f32(2, N * V, "logits");
  const int32_t* tg = op.i32(3, N, "targets");
  check_targets(op, tg, N, V);
  double s = g_k->cross_entropy_forward(g_threads, N, V, logits, tg, op.f32(4, N, "losses"));
  return Napi::Number::New(info.Env(), s);
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info) {
  Op op{info, "crossEntropyBackward"};
  i64 N = op.dim(0), V = op.dim(1);
  const float* logits = op.f32(2, N * V, "logits");
  const int32_t* tg = op.i32(3, N, "targets");
  check_targets(op, tg, N, V);
  float scale = static_cast<float>(op.num(4));
  g_k->cross_entropy_backward(g_threads, N, V, logits, tg, scale, op.f32(5, N * V, "dlogits"));
  return Undef(info);
}

// ---- optimizer and elementwise ------------------------------------------------------------------------------------------
Napi::Value AdamW(const Napi::CallbackInfo& info) {
  Op op{info, "adamw"};
  i64 n = op.dim(0);
  double lr = op.num(5), b1 = op.num(6), b2 = op.num(7), eps = op.num(8), wd = op.num(9), step = op.num(10);
  double bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
  g_k->adamw(g_threads, n, op.f32(1, n, "param"), op.f32(2, n, "grad"), op.f32(3, n, "m"), op.f32(4, n, "v"),
             static_cast<float>(lr), static_cast<float>(b1), static_cast<float>(b2), static_cast<float>(eps),
             static_cast<float>(wd), static_cast<float>(bc1), static_cast<float>(bc2));
  return Undef(info);
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  Op op{info, "add"};
  i64 n = op.dim(0);
  g_k->add(g_threads, n, op.f32(1, n, "a"), op.f32(2, n, "b"), op.f32(3, n, "out"));
  return Undef(info);
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Op op{info, "axpy"};
  i64 n = op.dim(0);
  g_k->axpy(g_threads, n, static_cast<float>(op.num(1)), op.f32(2, n, "x"), op.f32(3, n, "y"));
  return Undef(info);
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Op op{info, "scale"};
  i64 n = op.dim(0);
  g_k->scale(g_threads, n, op.f32(1, n, "x"), static_cast<float>(op.num(2)));
  return Undef(info);
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Op op{info, "sumSquares"};
  i64 n = op.dim(0);
  return Napi::Number::New(info.Env(), g_k->sum_squares(g_threads, n, op.f32(1, n, "x")));
}

// ---- benchmark helper (not part of the Backend interface) ---------------------------------------------------------------
volatile double g_sink = 0;

// readBandwidth(bytes, threads, repeats) -> seconds of each streaming read of a `bytes` buffer. The buffer
// is kept between calls of the same size (a benchmark interleaves calls), and freed by readBandwidth(0, 1, 0).
float* g_bw_buf = nullptr;
i64 g_bw_n = 0;

Napi::Value ReadBandwidth(const Napi::CallbackInfo& info) {
  Op op{info, "readBandwidth"};
  i64 bytes = op.dim(0), nth = op.dim(1), reps = op.dim(2);
  if (nth < 1 || nth > 256) op.fail("threads must be 1..256");
  const i64 n = bytes / 4;
  if (n != g_bw_n) {
    free(g_bw_buf);
    g_bw_buf = nullptr, g_bw_n = 0;
    if (n == 0) return Napi::Array::New(info.Env(), 0);
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, static_cast<size_t>(n) * 4) != 0) op.fail("cannot allocate the buffer");
    g_bw_buf = static_cast<float*>(mem), g_bw_n = n;
    for (i64 i = 0; i < n; ++i) g_bw_buf[i] = static_cast<float>(i & 1023) * 1e-3f;  // touch every page
  }
  Napi::Array out = Napi::Array::New(info.Env(), static_cast<size_t>(reps));
  for (i64 r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    g_sink = g_sink + g_k->read_sum(static_cast<int>(nth), n, g_bw_buf);
    auto t1 = std::chrono::steady_clock::now();
    out.Set(static_cast<uint32_t>(r), Napi::Number::New(info.Env(), std::chrono::duration<double>(t1 - t0).count()));
  }
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Best instruction set the CPU has; RECYCLEGPT_SIMD may ask for a lower one (tests use it).
  std::vector<std::string> av = available();
  g_k = table_for(av.front());
  const char* want = getenv("RECYCLEGPT_SIMD");
  if (want && *want) {
    const KernelTable* t = table_for(want);
    if (!t) throw Napi::Error::New(env, std::string("RECYCLEGPT_SIMD=") + want + " is not available on this CPU (have: " + av.front() + ")");
    g_k = t;
  }
  g_threads = default_threads();

  struct Fn {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  const Fn fns[] = {
      {"simd", Simd}, {"availableSimd", AvailableSimd}, {"setSimd", SetSimd},
      {"threads", Threads}, {"setThreads", SetThreads},
      {"gemm", Gemm}, {"linear", Linear}, {"biasBackward", BiasBackward},
      {"embeddingForward", EmbeddingForward}, {"embeddingBackward", EmbeddingBackward},
      {"layerNormForward", LayerNormForward}, {"layerNormBackward", LayerNormBackward},
      {"rmsNormForward", RmsNormForward}, {"rmsNormBackward", RmsNormBackward},
      {"geluForward", GeluForward}, {"geluBackward", GeluBackward},
      {"swigluForward", SwigluForward}, {"swigluBackward", SwigluBackward},
      {"rope", Rope},
      {"attentionForward", AttentionForward}, {"attentionBackward", AttentionBackward},
      {"attentionDecode", AttentionDecode},
      {"crossEntropyForward", CrossEntropyForward}, {"crossEntropyBackward", CrossEntropyBackward},
      {"adamw", AdamW}, {"add", Add}, {"axpy", Axpy}, {"scale", Scale}, {"sumSquares", SumSquares},
      {"readBandwidth", ReadBandwidth},
  };
  for (const Fn& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
  return exports;
}

}  // namespace

NODE_API_MODULE(recyclegpt_native, Init)
