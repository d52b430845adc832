// N-API glue for the native kernels: picks the instruction set at load time (cpuid, overridable downwards with
// RECYCLEGPT_SIMD or setSimd), owns the thread count and the RoPE angle table, and unwraps the typed arrays.
// The addon is reachable from JS (`backend.addon`), so it checks its own arguments before touching memory (the
// Args helper and the entry table kEntries below), whatever src/kernels/validate.ts has already checked.
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

// ---- argument checks -------------------------------------------------------------------------------------------
// Every entry point reads its arguments through Args, in the order of the Backend signature: each dimension an
// integer in [0, kMaxDim], each array of the right type and at least as long as the product (overflow-checked)
// of the dimensions its kernel reads or writes; then ids and targets in range. The argument count is checked
// once, by Dispatch, from the entry table. Only then are the kernels called, so they index with products that
// cannot wrap, and scratch they allocate is bounded by the caller's arrays (attentionDecode's scores, which are
// not, have their own limit). Messages match src/kernels/checks.ts where the TS layer checks the same thing.
// The cost is a few compares per argument: the decode path makes ~100 calls a token.

// Largest dimension accepted (MAX_DIM in src/kernels/checks.ts): kernels index in int64, but thread, chunk and
// tail counts pass through int, and no real tensor has an extent near it.
constexpr i64 kMaxDim = 2147483647;

// A dimension and its name (for messages); converts to its value.
struct Dim {
  i64 v;
  const char* name;
  operator i64() const { return v; }
};

const char* describe(const Napi::Value& v) {
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_int8_array: return "Int8Array";
      case napi_uint8_array: return "Uint8Array";
      case napi_uint8_clamped_array: return "Uint8ClampedArray";
      case napi_int16_array: return "Int16Array";
      case napi_uint16_array: return "Uint16Array";
      case napi_int32_array: return "Int32Array";
      case napi_uint32_array: return "Uint32Array";
      case napi_float32_array: return "Float32Array";
      case napi_float64_array: return "Float64Array";
      case napi_bigint64_array: return "BigInt64Array";
      case napi_biguint64_array: return "BigUint64Array";
      default: return "object";
    }
  }
  if (v.IsDataView()) return "DataView";
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_function: return "function";
    case napi_bigint: return "bigint";
    default: return "object";
  }
}

// Π shape as uint64; false when it does not fit (a zero anywhere makes it 0, whatever the others).
bool product(std::initializer_list<Dim> shape, uint64_t* out) {
  uint64_t p = 1;
  bool over = false;
  for (const Dim& d : shape) {
    if (d.v == 0) {
      *out = 0;
      return true;
    }
    over |= __builtin_mul_overflow(p, static_cast<uint64_t>(d.v), &p);
  }
  *out = p;
  return !over;
}

class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  [[noreturn]] void type_error(const std::string& msg) const {
    throw Napi::TypeError::New(info_.Env(), std::string(op_) + ": " + msg);
  }
  [[noreturn]] void range_error(const std::string& msg) const {
    throw Napi::RangeError::New(info_.Env(), std::string(op_) + ": " + msg);
  }

  Dim dim(size_t i, const char* name, i64 max = kMaxDim) const {
    const Napi::Value v = info_[i];
    if (v.IsNumber()) {
      const double d = v.As<Napi::Number>().DoubleValue();
      if (d >= 0 && d <= static_cast<double>(max) && d == floor(d)) return Dim{static_cast<i64>(d), name};
    }
    const std::string msg = std::string(name) + " must be an integer in [0, " + std::to_string(max) + "], got ";
    if (!v.IsNumber()) type_error(msg + describe(v));
    range_error(msg + v.ToString().Utf8Value());
  }
  double num(size_t i, const char* name) const {
    const Napi::Value v = info_[i];
    if (!v.IsNumber()) type_error(std::string(name) + " must be a number, got " + describe(v));
    return v.As<Napi::Number>().DoubleValue();
  }
  bool flag(size_t i) const { return info_[i].ToBoolean().Value(); }

  float* f32(size_t i, const char* name, std::initializer_list<Dim> shape) const {
    return array<float>(i, name, napi_float32_array, "a Float32Array", shape);
  }
  const float* f32_or_null(size_t i, const char* name, std::initializer_list<Dim> shape) const {
    if (info_[i].IsNull() || info_[i].IsUndefined()) return nullptr;
    return array<float>(i, name, napi_float32_array, "a Float32Array or null", shape);
  }
  const int32_t* i32(size_t i, const char* name, std::initializer_list<Dim> shape) const {
    return array<int32_t>(i, name, napi_int32_array, "an Int32Array", shape);
  }

 private:
  template <class E>
  E* array(size_t i, const char* name, napi_typedarray_type type, const char* want,
           std::initializer_list<Dim> shape) const {
    const Napi::Value v = info_[i];
    napi_typedarray_type got = napi_int8_array;
    size_t len = 0;
    void* data = nullptr;
    if (!v.IsTypedArray() || napi_get_typedarray_info(info_.Env(), v, &got, &len, &data, nullptr, nullptr) != napi_ok ||
        got != type)
      type_error(std::string("argument ") + name + " must be " + want + ", got " + describe(v));
    uint64_t need = 0;
    const bool fits = product(shape, &need);
    if (!fits || need > len) {
      std::string dims;
      for (const Dim& d : shape) dims += std::string(dims.empty() ? "" : ",") + d.name + "=" + std::to_string(d.v);
      range_error(std::string(name) + " has " + std::to_string(len) + " elements but " + name + "[" + dims +
                  "] needs " + (fits ? std::to_string(need) : "more than 18446744073709551615"));
    }
    return static_cast<E*>(data);  // may be null for an empty array: kernels never read it then
  }

  const Napi::CallbackInfo& info_;
  const char* op_;
};

Napi::Value Undef(const Napi::CallbackInfo& info) { return info.Env().Undefined(); }

// ---- backend controls ----------------------------------------------------------------------------------------
Napi::Value Simd(const Napi::CallbackInfo& info, const Args&) { return Napi::String::New(info.Env(), g_k->name); }

Napi::Value AvailableSimd(const Napi::CallbackInfo& info, const Args&) {
  std::vector<std::string> av = available();
  Napi::Array arr = Napi::Array::New(info.Env(), av.size());
  for (size_t i = 0; i < av.size(); ++i) arr.Set(static_cast<uint32_t>(i), Napi::String::New(info.Env(), av[i]));
  return arr;
}

Napi::Value SetSimd(const Napi::CallbackInfo& info, const Args& a) {
  if (!info[0].IsString()) a.type_error(std::string("name must be a string, got ") + describe(info[0]));
  std::string name = info[0].As<Napi::String>().Utf8Value();
  const KernelTable* t = table_for(name);
  if (!t) throw Napi::Error::New(info.Env(), "setSimd: \"" + name + "\" is not available on this CPU");
  g_k = t;
  return Undef(info);
}

Napi::Value Threads(const Napi::CallbackInfo& info, const Args&) { return Napi::Number::New(info.Env(), g_threads); }

Napi::Value SetThreads(const Napi::CallbackInfo& info, const Args& a) {
  const double n = a.num(0, "n");
  if (!(n >= 1 && n <= 256 && n == floor(n)))
    a.range_error("n must be an integer 1..256, got " + info[0].ToString().Utf8Value());
  g_threads = static_cast<int>(n);
  return Undef(info);
}

// ---- matrix products -----------------------------------------------------------------------------------------
// A call that writes nothing is not handed to its kernel (as in validate.ts's emptyWhen): with a zero dimension
// the length checks no longer bound the others, and a kernel looping over them would spin for nothing.
Napi::Value Gemm(const Napi::CallbackInfo& info, const Args& a) {
  const Dim M = a.dim(0, "M"), N = a.dim(1, "N"), K = a.dim(2, "K");
  const float* x = a.f32(3, "a", {M, K});
  const bool ta = a.flag(4);
  const float* y = a.f32(5, "b", {K, N});
  const bool tb = a.flag(6);
  float* c = a.f32(7, "c", {M, N});
  if (M == 0 || N == 0) return Undef(info);
  g_k->gemm(g_threads, M, N, K, x, ta, y, tb, c, a.flag(8));
  return Undef(info);
}

Napi::Value Linear(const Napi::CallbackInfo& info, const Args& a) {
  const Dim M = a.dim(0, "M"), N = a.dim(1, "N"), K = a.dim(2, "K");
  const float* x = a.f32(3, "x", {M, K});
  const float* w = a.f32(4, "w", {N, K});
  const float* bias = a.f32_or_null(5, "bias", {N});
  float* y = a.f32(6, "y", {M, N});
  if (M == 0 || N == 0) return Undef(info);
  g_k->linear(g_threads, M, N, K, x, w, bias, y);
  return Undef(info);
}

Napi::Value BiasBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim M = a.dim(0, "M"), N = a.dim(1, "N");
  const float* dy = a.f32(2, "dy", {M, N});
  g_k->bias_backward(g_threads, M, N, dy, a.f32(3, "db", {N}));
  return Undef(info);
}

// ---- embedding -------------------------------------------------------------------------------------------------
void check_ids(const Args& a, const int32_t* ids, i64 T, i64 V) {
  for (i64 t = 0; t < T; ++t)
    if (ids[t] < 0 || ids[t] >= V)
      a.range_error("ids[" + std::to_string(t) + "] = " + std::to_string(ids[t]) + " is outside [0, V=" +
                    std::to_string(V) + ")");
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim T = a.dim(0, "T"), C = a.dim(1, "C"), V = a.dim(2, "V");
  const int32_t* ids = a.i32(3, "ids", {T});
  const float* table = a.f32(4, "table", {V, C});
  float* out = a.f32(5, "out", {T, C});
  check_ids(a, ids, T, V);
  if (T == 0 || C == 0) return Undef(info);
  g_k->embedding_forward(g_threads, T, C, ids, table, out);
  return Undef(info);
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim T = a.dim(0, "T"), C = a.dim(1, "C"), V = a.dim(2, "V");
  const int32_t* ids = a.i32(3, "ids", {T});
  const float* dout = a.f32(4, "dout", {T, C});
  float* dtable = a.f32(5, "dtable", {V, C});
  check_ids(a, ids, T, V);
  if (T == 0 || C == 0) return Undef(info);
  g_k->embedding_backward(g_threads, T, C, ids, dout, dtable);
  return Undef(info);
}

// ---- norms -------------------------------------------------------------------------------------------------------
// A norm over zero channels divides by C: refused when there are rows (checkChannels in checks.ts).
void check_channels(const Args& a, i64 N, i64 C) {
  if (N > 0 && C == 0) a.range_error("C must be at least 1 when N=" + std::to_string(N) + " > 0");
}

Napi::Value LayerNormForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim N = a.dim(0, "N"), C = a.dim(1, "C");
  check_channels(a, N, C);
  const float *x = a.f32(2, "x", {N, C}), *w = a.f32(3, "w", {C}), *b = a.f32(4, "b", {C});
  const float eps = static_cast<float>(a.num(5, "eps"));
  float *out = a.f32(6, "out", {N, C}), *mean = a.f32(7, "mean", {N}), *rstd = a.f32(8, "rstd", {N});
  if (N == 0) return Undef(info);
  g_k->layernorm_forward(g_threads, N, C, x, w, b, eps, out, mean, rstd);
  return Undef(info);
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim N = a.dim(0, "N"), C = a.dim(1, "C");
  check_channels(a, N, C);
  const float *dout = a.f32(2, "dout", {N, C}), *x = a.f32(3, "x", {N, C}), *w = a.f32(4, "w", {C});
  const float *mean = a.f32(5, "mean", {N}), *rstd = a.f32(6, "rstd", {N});
  float *dx = a.f32(7, "dx", {N, C}), *dw = a.f32(8, "dw", {C}), *db = a.f32(9, "db", {C});
  if (C == 0) return Undef(info);
  g_k->layernorm_backward(g_threads, N, C, dout, x, w, mean, rstd, dx, dw, db);
  return Undef(info);
}

Napi::Value RmsNormForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim N = a.dim(0, "N"), C = a.dim(1, "C");
  check_channels(a, N, C);
  const float *x = a.f32(2, "x", {N, C}), *w = a.f32(3, "w", {C});
  const float eps = static_cast<float>(a.num(4, "eps"));
  float *out = a.f32(5, "out", {N, C}), *rstd = a.f32(6, "rstd", {N});
  if (N == 0) return Undef(info);
  g_k->rmsnorm_forward(g_threads, N, C, x, w, eps, out, rstd);
  return Undef(info);
}

Napi::Value RmsNormBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim N = a.dim(0, "N"), C = a.dim(1, "C");
  check_channels(a, N, C);
  const float *dout = a.f32(2, "dout", {N, C}), *x = a.f32(3, "x", {N, C}), *w = a.f32(4, "w", {C});
  const float* rstd = a.f32(5, "rstd", {N});
  float *dx = a.f32(6, "dx", {N, C}), *dw = a.f32(7, "dw", {C});
  if (C == 0) return Undef(info);
  g_k->rmsnorm_backward(g_threads, N, C, dout, x, w, rstd, dx, dw);
  return Undef(info);
}

// ---- activations ---------------------------------------------------------------------------------------------------
Napi::Value GeluForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  const float* x = a.f32(1, "x", {n});
  g_k->gelu_forward(g_threads, n, x, a.f32(2, "out", {n}));
  return Undef(info);
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  const float *x = a.f32(1, "x", {n}), *dout = a.f32(2, "dout", {n});
  g_k->gelu_backward(g_threads, n, x, dout, a.f32(3, "dx", {n}));
  return Undef(info);
}

Napi::Value SwigluForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  const float *gate = a.f32(1, "gate", {n}), *up = a.f32(2, "up", {n});
  g_k->swiglu_forward(g_threads, n, gate, up, a.f32(3, "out", {n}));
  return Undef(info);
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  const float *gate = a.f32(1, "gate", {n}), *up = a.f32(2, "up", {n}), *dout = a.f32(3, "dout", {n});
  float* dgate = a.f32(4, "dgate", {n});
  g_k->swiglu_backward(g_threads, n, gate, up, dout, dgate, a.f32(5, "dup", {n}));
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
constexpr i64 kRopeCacheMax = 1 << 20;       // positions cached; others are computed per call
constexpr i64 kRopeCacheFloats = 1 << 26;    // and at most this many floats per table (256 MB)

void rope_fill(double theta, i64 D, double pos, float* c, float* s) {
  const i64 half = D / 2;
  for (i64 i = 0; i < half; ++i) {
    double angle = pos * pow(theta, static_cast<double>(-2 * i) / static_cast<double>(D));
    c[i] = static_cast<float>(cos(angle));
    s[i] = static_cast<float>(sin(angle));
  }
}

Napi::Value Rope(const Napi::CallbackInfo& info, const Args& a) {
  const Dim R = a.dim(0, "R"), H = a.dim(1, "H"), D = a.dim(2, "D");
  if (D % 2 != 0) {
    const std::string d = std::to_string(D.v);
    a.range_error("D=" + d + " must be even: " + d + " is not a multiple of 2");
  }
  float* x = a.f32(3, "x", {R, H, D});
  const int32_t* pos = a.i32(4, "pos", {R});
  const double theta = a.num(5, "theta");
  const bool inverse = a.flag(6);
  const i64 half = D / 2;
  if (R == 0 || H == 0 || D == 0) return Undef(info);
  i64 maxPos = 0;
  bool cacheable = true;
  for (i64 r = 0; r < R; ++r) {
    if (pos[r] < 0 || pos[r] >= kRopeCacheMax) cacheable = false;
    else if (pos[r] > maxPos) maxPos = pos[r];
  }
  // The cached table is bounded too (x bounds half, not positions × half); beyond it, per-call rows.
  if ((maxPos + 1) * half > kRopeCacheFloats) cacheable = false;
  std::lock_guard<std::mutex> lk(g_rope_mu);
  if (!cacheable) {  // unusual positions: a table with one row per call row (R·half ≤ the size of x)
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
    if (rows * half > kRopeCacheFloats) rows = maxPos + 1;
    t.cosv.resize(static_cast<size_t>(rows * half));
    t.sinv.resize(static_cast<size_t>(rows * half));
    for (i64 p = t.rows; p < rows; ++p) rope_fill(theta, D, static_cast<double>(p), &t.cosv[p * half], &t.sinv[p * half]);
    t.rows = rows;
  }
  g_k->rope(g_threads, R, H, D, x, pos, t.cosv.data(), t.sinv.data(), inverse);
  return Undef(info);
}

// ---- attention -------------------------------------------------------------------------------------------------------
// G divides H (head h reads kv head h / (H/G)) and D ≥ 1 (scale 1/sqrt(D)): checkAttentionHeads in checks.ts.
void check_heads(const Args& a, i64 H, i64 G, i64 D) {
  if (G == 0 || H % G != 0)
    a.range_error("H=" + std::to_string(H) + " must be a multiple of G=" + std::to_string(G) + ": " +
                  std::to_string(H) + " is not a multiple of " + std::to_string(G));
  if (D == 0) a.range_error("D must be at least 1");
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim B = a.dim(0, "B"), T = a.dim(1, "T"), H = a.dim(2, "H"), G = a.dim(3, "G"), D = a.dim(4, "D");
  check_heads(a, H, G, D);
  const float *q = a.f32(5, "q", {B, T, H, D}), *k = a.f32(6, "k", {B, T, G, D}), *v = a.f32(7, "v", {B, T, G, D});
  float *out = a.f32(8, "out", {B, T, H, D}), *probs = a.f32(9, "probs", {B, H, T, T});
  if (B == 0 || T == 0 || H == 0) return Undef(info);
  g_k->attention_forward(g_threads, B, T, H, G, D, q, k, v, out, probs);
  return Undef(info);
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim B = a.dim(0, "B"), T = a.dim(1, "T"), H = a.dim(2, "H"), G = a.dim(3, "G"), D = a.dim(4, "D");
  check_heads(a, H, G, D);
  const float *q = a.f32(5, "q", {B, T, H, D}), *k = a.f32(6, "k", {B, T, G, D}), *v = a.f32(7, "v", {B, T, G, D});
  const float *probs = a.f32(8, "probs", {B, H, T, T}), *dout = a.f32(9, "dout", {B, T, H, D});
  float *dq = a.f32(10, "dq", {B, T, H, D}), *dk = a.f32(11, "dk", {B, T, G, D}), *dv = a.f32(12, "dv", {B, T, G, D});
  if (B == 0 || T == 0 || H == 0) return Undef(info);
  g_k->attention_backward(g_threads, B, T, H, G, D, q, k, v, probs, dout, dq, dk, dv);
  return Undef(info);
}

// attention_decode keeps the scores of all query rows of its heads, M·H·(pos0+M) floats over all threads, which
// the arrays do not bound (D = 1 and a long cache): refused above this, instead of aborting when malloc fails.
// 2^32 floats (16 GiB) is 32 times a 32-head prefill of 8192 tokens.
constexpr uint64_t kMaxDecodeScores = uint64_t{1} << 32;

Napi::Value AttentionDecode(const Napi::CallbackInfo& info, const Args& a) {
  const Dim M = a.dim(0, "M"), H = a.dim(1, "H"), G = a.dim(2, "G"), D = a.dim(3, "D"), pos0 = a.dim(7, "pos0");
  check_heads(a, H, G, D);
  const Dim len{pos0 + M, "pos0+M"};  // < 2^32: no overflow
  const float* q = a.f32(4, "q", {M, H, D});
  const float *kc = a.f32(5, "kCache", {len, G, D}), *vc = a.f32(6, "vCache", {len, G, D});
  float* out = a.f32(8, "out", {M, H, D});
  if (M == 0 || H == 0) return Undef(info);
  uint64_t scores = 0;
  if (!product({M, H, len}, &scores) || scores > kMaxDecodeScores)
    a.range_error("M*H*(pos0+M) = " + std::to_string(M.v) + "*" + std::to_string(H.v) + "*" + std::to_string(len.v) +
                  " attention scores exceed the kernel's scratch limit of " + std::to_string(kMaxDecodeScores));
  g_k->attention_decode(g_threads, M, H, G, D, q, kc, vc, pos0, out);
  return Undef(info);
}

// ---- loss ---------------------------------------------------------------------------------------------------------------
void check_targets(const Args& a, const int32_t* tg, i64 N, i64 V) {
  for (i64 n = 0; n < N; ++n)
    if (tg[n] != -1 && (tg[n] < 0 || tg[n] >= V))
      a.range_error("targets[" + std::to_string(n) + "] = " + std::to_string(tg[n]) + " is outside [0, V=" +
                    std::to_string(V) + ") and is not -1 (ignore)");
}

Napi::Value CrossEntropyForward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim N = a.dim(0, "N"), V = a.dim(1, "V");
  const float* logits = a.f32(2, "logits", {N, V});
  const int32_t* tg = a.i32(3, "targets", {N});
  float* losses = a.f32(4, "losses", {N});
  check_targets(a, tg, N, V);
  return Napi::Number::New(info.Env(), g_k->cross_entropy_forward(g_threads, N, V, logits, tg, losses));
}

Napi::Value CrossEntropyBackward(const Napi::CallbackInfo& info, const Args& a) {
  const Dim N = a.dim(0, "N"), V = a.dim(1, "V");
  const float* logits = a.f32(2, "logits", {N, V});
  const int32_t* tg = a.i32(3, "targets", {N});
  const float scale = static_cast<float>(a.num(4, "scale"));
  float* dlogits = a.f32(5, "dlogits", {N, V});
  check_targets(a, tg, N, V);
  g_k->cross_entropy_backward(g_threads, N, V, logits, tg, scale, dlogits);
  return Undef(info);
}

// ---- optimizer and elementwise ------------------------------------------------------------------------------------------
Napi::Value AdamW(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  float *param = a.f32(1, "param", {n}), *m = a.f32(3, "m", {n}), *v = a.f32(4, "v", {n});
  const float* grad = a.f32(2, "grad", {n});
  const double lr = a.num(5, "lr"), b1 = a.num(6, "beta1"), b2 = a.num(7, "beta2"), eps = a.num(8, "eps");
  const double wd = a.num(9, "weightDecay"), step = a.num(10, "step");
  const double bc1 = 1.0 - pow(b1, step), bc2 = 1.0 - pow(b2, step);
  g_k->adamw(g_threads, n, param, grad, m, v, static_cast<float>(lr), static_cast<float>(b1), static_cast<float>(b2),
             static_cast<float>(eps), static_cast<float>(wd), static_cast<float>(bc1), static_cast<float>(bc2));
  return Undef(info);
}

Napi::Value Add(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  const float *x = a.f32(1, "a", {n}), *y = a.f32(2, "b", {n});
  g_k->add(g_threads, n, x, y, a.f32(3, "out", {n}));
  return Undef(info);
}

Napi::Value Axpy(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  const float alpha = static_cast<float>(a.num(1, "alpha"));
  const float* x = a.f32(2, "x", {n});
  g_k->axpy(g_threads, n, alpha, x, a.f32(3, "y", {n}));
  return Undef(info);
}

Napi::Value Scale(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  float* x = a.f32(1, "x", {n});
  g_k->scale(g_threads, n, x, static_cast<float>(a.num(2, "alpha")));
  return Undef(info);
}

Napi::Value SumSquares(const Napi::CallbackInfo& info, const Args& a) {
  const Dim n = a.dim(0, "n");
  return Napi::Number::New(info.Env(), g_k->sum_squares(g_threads, n, a.f32(1, "x", {n})));
}

// ---- benchmark helper (not part of the Backend interface) ---------------------------------------------------------------
volatile double g_sink = 0;

// readBandwidth(bytes, threads, repeats) -> seconds of each streaming read of a `bytes` buffer. The buffer
// is kept between calls of the same size (a benchmark interleaves calls), and freed by readBandwidth(0, 1, 0).
float* g_bw_buf = nullptr;
i64 g_bw_n = 0;

Napi::Value ReadBandwidth(const Napi::CallbackInfo& info, const Args& a) {
  // bounded so that a stray call cannot allocate without limit or loop for hours
  const Dim bytes = a.dim(0, "bytes", i64{1} << 36), nth = a.dim(1, "threads", 256);
  const Dim reps = a.dim(2, "repeats", 1 << 20);
  if (nth < 1) a.range_error("threads must be 1..256");
  const i64 n = bytes / 4;
  if (n != g_bw_n) {
    free(g_bw_buf);
    g_bw_buf = nullptr, g_bw_n = 0;
    if (n == 0) return Napi::Array::New(info.Env(), 0);
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, static_cast<size_t>(n) * 4) != 0) a.range_error("cannot allocate the buffer");
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

// ---- the entry table ----------------------------------------------------------------------------------------------
// Each export: its name, its argument count (checked here, once) and its wrapper. Dispatch also turns a C++
// exception other than a JS error (std::bad_alloc from a std::vector) into a JS error instead of terminating.
struct Entry {
  const char* name;
  size_t args;
  Napi::Value (*fn)(const Napi::CallbackInfo&, const Args&);
};

const Entry kEntries[] = {
    {"simd", 0, Simd}, {"availableSimd", 0, AvailableSimd}, {"setSimd", 1, SetSimd},
    {"threads", 0, Threads}, {"setThreads", 1, SetThreads},
    {"gemm", 9, Gemm}, {"linear", 7, Linear}, {"biasBackward", 4, BiasBackward},
    {"embeddingForward", 6, EmbeddingForward}, {"embeddingBackward", 6, EmbeddingBackward},
    {"layerNormForward", 9, LayerNormForward}, {"layerNormBackward", 10, LayerNormBackward},
    {"rmsNormForward", 7, RmsNormForward}, {"rmsNormBackward", 8, RmsNormBackward},
    {"geluForward", 3, GeluForward}, {"geluBackward", 4, GeluBackward},
    {"swigluForward", 4, SwigluForward}, {"swigluBackward", 6, SwigluBackward},
    {"rope", 7, Rope},
    {"attentionForward", 10, AttentionForward}, {"attentionBackward", 13, AttentionBackward},
    {"attentionDecode", 9, AttentionDecode},
    {"crossEntropyForward", 5, CrossEntropyForward}, {"crossEntropyBackward", 6, CrossEntropyBackward},
    {"adamw", 11, AdamW}, {"add", 4, Add}, {"axpy", 4, Axpy}, {"scale", 3, Scale}, {"sumSquares", 2, SumSquares},
    {"readBandwidth", 3, ReadBandwidth},
};

Napi::Value Dispatch(const Napi::CallbackInfo& info) {
  const Entry& e = *static_cast<const Entry*>(info.Data());
  const Args a(info, e.name);
  if (info.Length() < e.args)
    a.type_error("expected " + std::to_string(e.args) + " arguments, got " + std::to_string(info.Length()));
  try {
    return e.fn(info, a);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& ex) {
    throw Napi::Error::New(info.Env(), std::string(e.name) + ": " + ex.what());
  }
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
  for (const Entry& e : kEntries)
    exports.Set(e.name, Napi::Function::New(env, Dispatch, e.name, const_cast<Entry*>(&e)));
  return exports;
}

}  // namespace

NODE_API_MODULE(recyclegpt_native, Init)
