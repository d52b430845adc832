// N-API glue for the native kernels. The module exports createContext({threads, simd}) and availableSimd(); a
// context is an object holding every kernel of RG_KERNELS (kernels.h) plus its controls, bound to its own state:
// the instruction set, the thread count, RoPE's table cache and the bandwidth probe's buffer. Contexts share
// nothing mutable, so two models in one process keep their own settings; they share the process's thread pool
// (pool.cc), which runs each job on as many threads as the calling context asks for.
//
// There is no per-kernel code here: each kernel's wrapper is the generic KernelCall below, driven by the spec
// string of its RG_KERNELS entry (parsed once at load) and a thunk generated from its C++ signature. The addon is
// reachable from JS (`backend.addon`), so it checks its own arguments before touching memory, whatever
// src/kernels/validate.ts has already checked: each dimension an integer in [0, kMaxDim], each array of the right
// type and at least as long as the product (overflow-checked) of the dimensions its kernel reads or writes (a weight
// may be a handle {dtype, data[, scales]}: its storage is checked as checks.ts's checkWeight does), then
// ids and targets in range. Only then are the kernels called, so they index with products that cannot wrap, and
// scratch they allocate is bounded by the caller's arrays (attentionDecode's scores, which are not, have their
// own limit). Messages match src/kernels/checks.ts where the TS layer checks the same thing. The cost is a few
// compares per argument: the decode path makes ~100 calls a token. The raw C API is used on this path (no
// node-addon-api objects, no heap allocation per call).
#include <math.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>

#include <chrono>
#include <exception>
#include <new>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kernels.h"
#include "pool.h"

namespace {

using rg::i64;
using rg::KernelTable;

// ---- errors ---------------------------------------------------------------------------------------------------
// Checks throw JsError (C++ exceptions on the error path only); the callbacks turn it into a pending JS error.
struct JsError {
  enum Kind { kType, kRange, kPlain } kind;
  std::string msg;
};
[[noreturn]] void type_error(std::string m) { throw JsError{JsError::kType, std::move(m)}; }
[[noreturn]] void range_error(std::string m) { throw JsError{JsError::kRange, std::move(m)}; }
[[noreturn]] void plain_error(std::string m) { throw JsError{JsError::kPlain, std::move(m)}; }

void throw_js(napi_env env, const char* op, const JsError& e) {
  const std::string msg = op ? std::string(op) + ": " + e.msg : e.msg;
  if (e.kind == JsError::kType) napi_throw_type_error(env, nullptr, msg.c_str());
  else if (e.kind == JsError::kRange) napi_throw_range_error(env, nullptr, msg.c_str());
  else napi_throw_error(env, nullptr, msg.c_str());
}

// Runs body; a JsError or a C++ exception (std::bad_alloc) becomes a JS error instead of terminating.
template <class F>
napi_value guarded(napi_env env, const char* op, F&& body) {
  try {
    return body();
  } catch (const JsError& e) {
    throw_js(env, op, e);
  } catch (const std::exception& ex) {
    throw_js(env, op, JsError{JsError::kPlain, ex.what()});
  }
  return nullptr;
}

// ---- instruction-set selection --------------------------------------------------------------------------------
bool cpu_has_avx512() {
#if defined(RG_X86) && (defined(__GNUC__) || defined(__clang__))
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}
bool cpu_has_avx2() {
#if defined(RG_X86) && (defined(__GNUC__) || defined(__clang__))
  // F16C (the f16 weights' conversion) comes with every AVX2 + FMA CPU, but is checked all the same
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

// The small-M linear's software prefetch distance (kernels.h linear_prefetch_bytes) for this CPU. None on AMD Zen 3,
// where the prefetches into L1 slowed the f32 W stream (gpt2-small at M = 1, 2 threads: ~1.1x faster without them).
// Elsewhere a sixth of the L1 data cache, in whole 4 KB, at least 4 KB: the window of lines in flight must stay
// well inside L1 next to the x rows. On Zen 5 (48 KB L1d), one process, interleaved: 8 KB against the old fixed
// 4 KB made recycle-medium's M = 1 full call 8% faster in f16 (from L3 and DRAM), 4% in int8, 2% in f32 (DRAM);
// 16 KB was faster still in f16 but slower than 4 KB in f32, so the window stays a small share of L1.
int cpu_linear_prefetch_bytes() {
#if defined(RG_X86) && defined(__GNUC__)
  __builtin_cpu_init();
  if (__builtin_cpu_is("znver3")) return 0;
#endif
  const rg::i64 sixth = rg::cache_bytes(1) / 6 / 4096 * 4096;
  return static_cast<int>(sixth > 4096 ? (sixth < 65536 ? sixth : 65536) : 4096);
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

// ---- reading JS values ----------------------------------------------------------------------------------------
const char* describe(napi_env env, napi_value v) {
  bool is = false;
  napi_is_typedarray(env, v, &is);
  if (is) {
    napi_typedarray_type t = napi_int8_array;
    napi_get_typedarray_info(env, v, &t, nullptr, nullptr, nullptr, nullptr);
    switch (t) {
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
  napi_is_dataview(env, v, &is);
  if (is) return "DataView";
  napi_valuetype t = napi_object;
  napi_typeof(env, v, &t);
  switch (t) {
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

std::string js_string(napi_env env, napi_value v) {  // String(v), for messages
  napi_value s;
  size_t n = 0;
  if (napi_coerce_to_string(env, v, &s) != napi_ok || napi_get_value_string_utf8(env, s, nullptr, 0, &n) != napi_ok)
    return "?";
  std::string out(n, '\0');
  napi_get_value_string_utf8(env, s, &out[0], n + 1, &n);
  return out;
}

bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t = napi_object;
  napi_typeof(env, v, &t);
  return t == napi_null || t == napi_undefined;
}

// Largest dimension accepted (MAX_DIM in src/kernels/checks.ts): kernels index in int64, but thread, chunk and
// tail counts pass through int, and no real tensor has an extent near it.
constexpr i64 kMaxDim = 2147483647;

i64 read_dim(napi_env env, napi_value v, const std::string& name, i64 max = kMaxDim) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) == napi_ok && d >= 0 && d <= static_cast<double>(max) && d == floor(d))
    return static_cast<i64>(d);
  const std::string msg = name + " must be an integer in [0, " + std::to_string(max) + "], got ";
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  if (t != napi_number) type_error(msg + describe(env, v));
  range_error(msg + js_string(env, v));
}

double read_num(napi_env env, napi_value v, const std::string& name) {
  double d = 0;
  if (napi_get_value_double(env, v, &d) != napi_ok) type_error(name + " must be a number, got " + describe(env, v));
  return d;
}

bool read_flag(napi_env env, napi_value v) {  // truthiness, as JS `if (v)`
  bool b = false;
  if (napi_get_value_bool(env, v, &b) == napi_ok) return b;
  napi_value c;
  napi_coerce_to_bool(env, v, &c);
  napi_get_value_bool(env, c, &b);
  return b;
}

// Π of the values as uint64; false when it does not fit (a zero anywhere makes it 0, whatever the others).
bool product(const i64* vals, size_t n, uint64_t* out) {
  uint64_t p = 1;
  bool over = false;
  for (size_t i = 0; i < n; ++i) {
    if (vals[i] == 0) {
      *out = 0;
      return true;
    }
    over |= __builtin_mul_overflow(p, static_cast<uint64_t>(vals[i]), &p);
  }
  *out = p;
  return !over;
}

// ---- per-context state ----------------------------------------------------------------------------------------
struct Ctx;

// The data of one exported function: what it runs and for which context.
struct Bound {
  const void* what;  // a KernelDesc or a Control
  Ctx* ctx;
};

struct Ctx {
  const KernelTable* k = nullptr;
  int threads = 1;
  rg::RopeCache rope{};
  float* bw_buf = nullptr;  // the bandwidth probe's buffer, kept between calls of the same size
  i64 bw_n = 0;
  volatile double sink = 0;
  int refs = 0;             // live functions bound to this context (freed with the last one)
  std::vector<Bound> bound;
  ~Ctx() {
    rg::rope_cache_free(&rope);
    free(bw_buf);
  }
};

void release(napi_env, void* data, void*) {
  Ctx* c = static_cast<Bound*>(data)->ctx;
  if (--c->refs == 0) delete c;
}

// ---- kernel descriptions: parsed once from RG_KERNELS's spec strings -------------------------------------------
// A C++ parameter's category, matched against the spec token that fills it.
enum Cat : uint8_t { kCatI64, kCatNum, kCatBool, kCatF32Ptr, kCatI32Ptr, kCatWeight, kCatRope, kCatOther };
template <class T> struct CatOf { static constexpr Cat v = kCatOther; };
template <> struct CatOf<i64> { static constexpr Cat v = kCatI64; };
template <> struct CatOf<float> { static constexpr Cat v = kCatNum; };
template <> struct CatOf<double> { static constexpr Cat v = kCatNum; };
template <> struct CatOf<bool> { static constexpr Cat v = kCatBool; };
template <> struct CatOf<float*> { static constexpr Cat v = kCatF32Ptr; };
template <> struct CatOf<const float*> { static constexpr Cat v = kCatF32Ptr; };
template <> struct CatOf<const int32_t*> { static constexpr Cat v = kCatI32Ptr; };
template <> struct CatOf<const rg::WeightRef*> { static constexpr Cat v = kCatWeight; };
template <> struct CatOf<rg::RopeCache*> { static constexpr Cat v = kCatRope; };

// One converted argument, as the kernel's parameter of that position reads it.
union Slot {
  i64 i;
  double d;
  bool b;
  void* p;
};

template <class T> struct Get;
template <> struct Get<i64> { static i64 from(const Slot& s, Ctx*) { return s.i; } };
template <> struct Get<float> { static float from(const Slot& s, Ctx*) { return static_cast<float>(s.d); } };
template <> struct Get<double> { static double from(const Slot& s, Ctx*) { return s.d; } };
template <> struct Get<bool> { static bool from(const Slot& s, Ctx*) { return s.b; } };
template <> struct Get<float*> { static float* from(const Slot& s, Ctx*) { return static_cast<float*>(s.p); } };
template <> struct Get<const float*> {
  static const float* from(const Slot& s, Ctx*) { return static_cast<const float*>(s.p); }
};
template <> struct Get<const int32_t*> {
  static const int32_t* from(const Slot& s, Ctx*) { return static_cast<const int32_t*>(s.p); }
};
template <> struct Get<const rg::WeightRef*> {
  static const rg::WeightRef* from(const Slot& s, Ctx*) { return static_cast<const rg::WeightRef*>(s.p); }
};
template <> struct Get<rg::RopeCache*> { static rg::RopeCache* from(const Slot&, Ctx* c) { return &c->rope; } };

template <class R, class... P, size_t... I>
double invoke(R (*f)(int, P...), Ctx* c, const Slot* s, std::index_sequence<I...>) {
  if constexpr (std::is_void<R>::value) {
    f(c->threads, Get<P>::from(s[I], c)...);
    return 0;
  } else {
    return static_cast<double>(f(c->threads, Get<P>::from(s[I], c)...));
  }
}

template <class R, class... P>
double invoke_all(R (*f)(int, P...), Ctx* c, const Slot* s) {
  return invoke(f, c, s, std::index_sequence_for<P...>{});
}

// The call of the kernel at member M of the context's table, with the converted arguments.
template <auto M>
double thunk(Ctx* c, const Slot* s) {
  return invoke_all(c->k->*M, c, s);
}

// The C++ signature of a table member: parameter categories after `int nth`, and whether it returns a number.
struct Sig {
  std::vector<Cat> cats;
  bool returns;
};
template <class R, class... P>
Sig sig_of(R (*KernelTable::*)(int, P...)) {
  return Sig{{CatOf<P>::v...}, !std::is_void<R>::value};
}

constexpr int kMaxArgs = 16;   // JS arguments, C++ parameters and dimensions per kernel
constexpr int kMaxShape = 6;   // dimensions per array
constexpr int kMaxWeights = 2;  // weight arguments per kernel

enum Kind : uint8_t { kDim, kF32, kF32OrNull, kI32, kWeight, kNum, kFlag, kRope };

struct ArgSpec {
  Kind kind;
  std::string name;
  int js = -1, param = -1, dim = -1;  // JS argument, C++ parameter, dimension slot (kDim)
  int shape[kMaxShape] = {};
  int nshape = 0;
  const char* want = "";  // for messages: "a Float32Array", ...
};

struct DerivedDim {
  int dim, a, b;  // dims[dim] = dims[a] + dims[b]
};

enum CheckKind : uint8_t { kChannels, kHeads, kEven, kIds, kTargets, kScores };
struct CheckSpec {
  CheckKind kind;
  int a[3];  // dimension slots; for ids / targets, a[0] is the array's C++ parameter
};

// attention_decode keeps the scores of all query rows of its heads, M·H·(pos0+M) floats over all threads, which
// the arrays do not bound (D = 1 and a long cache): refused above this, instead of aborting when malloc fails.
// 2^32 floats (16 GiB) is 32 times a 32-head prefill of 8192 tokens.
constexpr uint64_t kMaxDecodeScores = uint64_t{1} << 32;

struct KernelDesc {
  const char* js;
  double (*call)(Ctx*, const Slot*);
  bool returns = false;
  int njs = 0, ndims = 0, nweights = 0;
  std::vector<std::string> dim_names;  // for messages ("pos0+M" for a derived one)
  std::vector<ArgSpec> dims, rest;     // dimensions (read first), then the other arguments in order
  std::vector<DerivedDim> derived;
  std::vector<CheckSpec> pre, post;  // after the dimensions; after the arrays
  std::vector<int> skip;             // dimension slots: no call when one is 0
};

[[noreturn]] void spec_error(const char* js, const std::string& m) {
  plain_error(std::string("RG_KERNELS entry ") + js + ": " + m);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      if (i > b) out.push_back(s.substr(b, i - b));
      b = i + 1;
    }
  return out;
}

// Parses a spec (kernels.h describes the tokens) against the kernel's signature; throws on a malformed entry,
// which fails the module's load: a kernel list that does not match its signatures never runs.
KernelDesc parse_spec(const char* js, const char* spec, const Sig& sig, double (*call)(Ctx*, const Slot*)) {
  KernelDesc d;
  d.js = js, d.call = call, d.returns = sig.returns;
  const auto bad = [js](const std::string& m) { spec_error(js, m); };
  std::vector<std::string> dim_refs;  // spec name of each dimension slot
  std::vector<std::pair<int, std::vector<std::string>>> shapes;  // (index in rest, names)
  std::vector<std::pair<CheckKind, std::vector<std::string>>> checks;
  std::vector<std::pair<int, std::pair<std::string, std::string>>> derived;
  std::vector<std::string> skip;
  int param = 0;
  auto next_param = [&](std::initializer_list<Cat> ok) {
    if (param >= static_cast<int>(sig.cats.size())) bad("more arguments than the C++ signature has parameters");
    for (Cat c : ok)
      if (sig.cats[param] == c) return param++;
    bad("argument " + std::to_string(param) + " does not match its C++ parameter type");
    return -1;
  };
  for (const std::string& tok : split(spec, ' ')) {
    const char c0 = tok[0];
    if (c0 == '#') {
      const size_t eq = tok.find('=');
      if (eq != std::string::npos) {
        const std::vector<std::string> ab = split(tok.substr(eq + 1), '+');
        if (ab.size() != 2) bad("derived dimension " + tok + " is not a sum of two");
        derived.push_back({static_cast<int>(dim_refs.size()), {ab[0], ab[1]}});
        dim_refs.push_back(tok.substr(1, eq - 1));
        d.dim_names.push_back(tok.substr(eq + 1));
        continue;
      }
      ArgSpec a{kDim, tok.substr(1)};
      a.js = d.njs++, a.param = next_param({kCatI64}), a.dim = static_cast<int>(dim_refs.size());
      dim_refs.push_back(a.name);
      d.dim_names.push_back(a.name);
      d.dims.push_back(a);
    } else if (c0 == '@' || c0 == '?' || c0 == '%') {
      const size_t lb = tok.find('['), rb = tok.find(']');
      if (lb == std::string::npos || rb != tok.size() - 1) bad("array " + tok + " has no [shape]");
      ArgSpec a{kF32, tok.substr(1, lb - 1)};
      a.js = d.njs++;
      if (c0 == '%') a.param = next_param({kCatWeight});
      else a.param = c0 == '?' ? next_param({kCatF32Ptr}) : next_param({kCatF32Ptr, kCatI32Ptr});
      if (c0 == '%') {
        a.kind = kWeight, a.want = "a Float32Array or a weight {dtype, data}";
        if (++d.nweights > kMaxWeights) bad("too many weights");
      } else if (sig.cats[a.param] == kCatI32Ptr) a.kind = kI32, a.want = "an Int32Array";
      else if (c0 == '?') a.kind = kF32OrNull, a.want = "a Float32Array or null";
      else a.want = "a Float32Array";
      shapes.push_back({static_cast<int>(d.rest.size()), split(tok.substr(lb + 1, rb - lb - 1), ',')});
      d.rest.push_back(a);
    } else if (c0 == '$') {
      if (tok != "$rope") bad("unknown context argument " + tok);
      ArgSpec a{kRope, tok.substr(1)};
      a.param = next_param({kCatRope});
      d.rest.push_back(a);
    } else if (c0 == '!') {
      const size_t lp = tok.find('('), rp = tok.find(')');
      if (lp == std::string::npos || rp != tok.size() - 1) bad("check " + tok + " has no (arguments)");
      const std::string name = tok.substr(1, lp - 1);
      const std::vector<std::string> args = split(tok.substr(lp + 1, rp - lp - 1), ',');
      CheckKind k;
      size_t n;
      if (name == "channels") k = kChannels, n = 2;
      else if (name == "heads") k = kHeads, n = 3;
      else if (name == "even") k = kEven, n = 1;
      else if (name == "ids") k = kIds, n = 3;
      else if (name == "targets") k = kTargets, n = 3;
      else if (name == "scores") k = kScores, n = 3;
      else bad("unknown check " + tok);
      if (args.size() != n) bad("check " + tok + " takes " + std::to_string(n) + " arguments");
      checks.push_back({k, args});
    } else if (c0 == '~') {
      skip = split(tok.substr(1), ',');
    } else {
      ArgSpec a{kNum, tok};
      a.js = d.njs++, a.param = next_param({kCatNum, kCatBool});
      if (sig.cats[a.param] == kCatBool) a.kind = kFlag;
      d.rest.push_back(a);
    }
  }
  if (param != static_cast<int>(sig.cats.size())) bad("fewer arguments than the C++ signature has parameters");
  d.ndims = static_cast<int>(dim_refs.size());
  if (d.njs > kMaxArgs || param > kMaxArgs || d.ndims > kMaxArgs) bad("too many arguments");
  auto dim_of = [&](const std::string& n) {
    for (size_t i = 0; i < dim_refs.size(); ++i)
      if (dim_refs[i] == n) return static_cast<int>(i);
    bad("unknown dimension " + n);
    return -1;
  };
  for (auto& [i, names] : shapes) {
    if (names.empty() || names.size() > kMaxShape) bad("array " + d.rest[i].name + ": bad shape");
    for (const std::string& n : names) d.rest[i].shape[d.rest[i].nshape++] = dim_of(n);
    if (d.rest[i].kind == kWeight && d.rest[i].nshape != 2)
      bad("weight " + d.rest[i].name + ": shape is not [rows,cols]");
  }
  for (auto& [slot, ab] : derived) d.derived.push_back({slot, dim_of(ab.first), dim_of(ab.second)});
  for (auto& [k, args] : checks) {
    CheckSpec c{k, {0, 0, 0}};
    size_t first = 0;
    if (k == kIds || k == kTargets) {
      first = 1;
      c.a[0] = -1;
      for (const ArgSpec& a : d.rest)
        if (a.name == args[0] && a.kind == kI32) c.a[0] = a.param;
      if (c.a[0] < 0) bad("check " + args[0] + ": no Int32Array argument of that name");
    }
    for (size_t i = first; i < args.size(); ++i) c.a[i] = dim_of(args[i]);
    (k == kIds || k == kTargets || k == kScores ? d.post : d.pre).push_back(c);
  }
  for (const std::string& n : skip) d.skip.push_back(dim_of(n));
  return d;
}

const std::vector<KernelDesc>& kernel_descs() {
  static const std::vector<KernelDesc> descs = [] {
    std::vector<KernelDesc> v;
#define RG_DESC(c, js, spec, Ret, Params) \
  v.push_back(parse_spec(js, spec, sig_of(&KernelTable::c), &thunk<&KernelTable::c>));
    RG_KERNELS(RG_DESC)
#undef RG_DESC
    return v;
  }();
  return descs;
}

// ---- the generic kernel wrapper -------------------------------------------------------------------------------
void run_check(const KernelDesc& d, const CheckSpec& c, const i64* dims, const Slot* s) {
  const std::vector<std::string>& nm = d.dim_names;
  const auto str = [](i64 v) { return std::to_string(v); };
  switch (c.kind) {
    case kChannels:  // a norm over zero channels divides by C: refused when there are rows (checkChannels)
      if (dims[c.a[0]] > 0 && dims[c.a[1]] == 0)
        range_error(nm[c.a[1]] + " must be at least 1 when " + nm[c.a[0]] + "=" + str(dims[c.a[0]]) + " > 0");
      return;
    case kHeads: {  // G divides H (head h reads kv head h / (H/G)) and D ≥ 1 (scale 1/sqrt(D)): checkAttentionHeads
      const i64 H = dims[c.a[0]], G = dims[c.a[1]];
      if (G == 0 || H % G != 0)
        range_error(nm[c.a[0]] + "=" + str(H) + " must be a multiple of " + nm[c.a[1]] + "=" + str(G) + ": " +
                    str(H) + " is not a multiple of " + str(G));
      if (dims[c.a[2]] == 0) range_error(nm[c.a[2]] + " must be at least 1");
      return;
    }
    case kEven:
      if (dims[c.a[0]] % 2 != 0) {
        const std::string v = str(dims[c.a[0]]);
        range_error(nm[c.a[0]] + "=" + v + " must be even: " + v + " is not a multiple of 2");
      }
      return;
    case kIds: {
      const int32_t* ids = static_cast<const int32_t*>(s[c.a[0]].p);
      const i64 T = dims[c.a[1]], V = dims[c.a[2]];
      for (i64 t = 0; t < T; ++t)
        if (ids[t] < 0 || ids[t] >= V)
          range_error("ids[" + str(t) + "] = " + str(ids[t]) + " is outside [0, " + nm[c.a[2]] + "=" + str(V) + ")");
      return;
    }
    case kTargets: {
      const int32_t* tg = static_cast<const int32_t*>(s[c.a[0]].p);
      const i64 N = dims[c.a[1]], V = dims[c.a[2]];
      for (i64 n = 0; n < N; ++n)
        if (tg[n] != -1 && (tg[n] < 0 || tg[n] >= V))
          range_error("targets[" + str(n) + "] = " + str(tg[n]) + " is outside [0, " + nm[c.a[2]] + "=" + str(V) +
                      ") and is not -1 (ignore)");
      return;
    }
    case kScores: {
      const i64 v[3] = {dims[c.a[0]], dims[c.a[1]], dims[c.a[2]]};
      uint64_t scores = 0;
      if (!product(v, 3, &scores) || scores > kMaxDecodeScores)
        range_error(nm[c.a[0]] + "*" + nm[c.a[1]] + "*(" + nm[c.a[2]] + ") = " + str(v[0]) + "*" + str(v[1]) + "*" +
                    str(v[2]) + " attention scores exceed the kernel's scratch limit of " + str(kMaxDecodeScores));
      return;
    }
  }
}

// "x[M=2,K=3]": an array's shape with the values of its dimensions, for messages.
std::string shape_text(const KernelDesc& d, const ArgSpec& a, const i64* vals) {
  std::string shape;
  for (int i = 0; i < a.nshape; ++i)
    shape += std::string(i ? "," : "") + d.dim_names[a.shape[i]] + "=" + std::to_string(vals[i]);
  return a.name + "[" + shape + "]";
}

// Throws unless `len` elements cover the product of the array's dimensions (divided by `per`: q8_0's scales,
// named a.name + suffix; q4_0's packed data, its shape followed by `note`).
void check_length(const KernelDesc& d, const ArgSpec& a, const i64* dims, size_t len, uint64_t per = 1,
                  const char* suffix = "", const char* note = "") {
  i64 vals[kMaxShape];
  for (int i = 0; i < a.nshape; ++i) vals[i] = dims[a.shape[i]];
  uint64_t need = 0;
  const bool fits = product(vals, a.nshape, &need);
  if (fits && need / per <= len) return;
  range_error(a.name + suffix + " has " + std::to_string(len) + " elements but " + shape_text(d, a, vals) + note +
              " needs " + (fits ? std::to_string(need / per) : "more than 18446744073709551615"));
}

void* read_array(napi_env env, napi_value v, const KernelDesc& d, const ArgSpec& a, const i64* dims) {
  napi_typedarray_type got = napi_int8_array;
  size_t len = 0;
  void* data = nullptr;
  const napi_typedarray_type want = a.kind == kI32 ? napi_int32_array : napi_float32_array;
  if (napi_get_typedarray_info(env, v, &got, &len, &data, nullptr, nullptr) != napi_ok || got != want) {
    if (a.kind == kF32OrNull && is_nullish(env, v)) return nullptr;
    type_error("argument " + a.name + " must be " + a.want + ", got " + describe(env, v));
  }
  check_length(d, a, dims, len);
  return data;  // may be null for an empty array: kernels never read it then
}

// A weight argument (kernels.h's %w): a Float32Array, or a handle {dtype, data[, scales]} checked as
// src/kernels/checks.ts's checkWeight does, with its messages. The handle costs a few property reads a call.
rg::WeightRef* read_weight(napi_env env, napi_value v, const KernelDesc& d, const ArgSpec& a, const i64* dims,
                           rg::WeightRef* out) {
  napi_typedarray_type got = napi_int8_array;
  size_t len = 0;
  void* data = nullptr;
  out->scales = nullptr;
  if (napi_get_typedarray_info(env, v, &got, &len, &data, nullptr, nullptr) == napi_ok) {
    if (got != napi_float32_array)
      type_error("argument " + a.name + " must be " + a.want + ", got " + describe(env, v));
    check_length(d, a, dims, len);
    out->dtype = rg::kWF32, out->data = data;
    return out;
  }
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  napi_value dv = nullptr;
  napi_valuetype dt = napi_undefined;
  if (t == napi_object && napi_get_named_property(env, v, "dtype", &dv) == napi_ok) napi_typeof(env, dv, &dt);
  // Before any other error: is it a handle at all ({dtype, data} as `in` sees them)? Checked on error paths only.
  const auto must_be_handle = [&]() {
    bool has_dtype = false, has_data = false;
    if (t == napi_object) {
      napi_has_named_property(env, v, "dtype", &has_dtype);
      napi_has_named_property(env, v, "data", &has_data);
    }
    if (!has_dtype || !has_data) type_error("argument " + a.name + " must be " + a.want + ", got " + describe(env, v));
  };
  char name[16] = {0};
  size_t nlen = 0;
  if (dt == napi_string) napi_get_value_string_utf8(env, dv, name, sizeof(name), &nlen);
  static const char* const kNames[] = {"f32",        "f16",         "bf16",       "q8_0", "q4_0",
                                       "f16_panels", "bf16_panels", "q8_0_panels"};  // kernels.h's WeightDtype codes
  int code = -1;
  for (int i = 0; i < 8 && dt == napi_string; ++i)
    if (strlen(kNames[i]) == nlen && memcmp(kNames[i], name, nlen) == 0) code = i;
  if (code < 0) {
    must_be_handle();
    type_error("weight " + a.name + " is " +
               (dt == napi_string ? "\"" + js_string(env, dv) + "\"" : std::string(describe(env, dv))) +
               "; this backend reads f32, f16, bf16, q8_0, q4_0, f16_panels, bf16_panels, q8_0_panels");
  }
  out->dtype = static_cast<rg::WeightDtype>(code);
  static const napi_typedarray_type kTypes[] = {napi_float32_array, napi_uint16_array, napi_uint16_array,
                                                napi_int8_array,    napi_uint8_array,  napi_uint16_array,
                                                napi_uint16_array,  napi_int8_array};
  static const char* const kWant[] = {"a Float32Array",          "a Uint16Array (f16 bits)",
                                      "a Uint16Array (bf16 bits)", "a Int8Array (quants)",
                                      "a Uint8Array (packed 4-bit quants)", "a Uint16Array (f16_panels bits)",
                                      "a Uint16Array (bf16_panels bits)", "a Int8Array (q8_0_panels quants)"};
  napi_value dat = nullptr;
  if (napi_get_named_property(env, v, "data", &dat) != napi_ok ||
      napi_get_typedarray_info(env, dat, &got, &len, &data, nullptr, nullptr) != napi_ok || got != kTypes[code]) {
    must_be_handle();
    type_error("argument " + a.name + ".data must be " + kWant[code] + ", got " + describe(env, dat));
  }
  out->data = data;
  const i64 vals[2] = {dims[a.shape[0]], dims[a.shape[1]]};
  if (out->dtype == rg::kWQ4_0) {  // two quants a byte of whole blocks: the row length before the byte count
    if (vals[1] % rg::kQ4Block != 0)
      range_error("q4_0 weight " + a.name + " needs a row length that is a multiple of 32 (" + shape_text(d, a, vals) +
                  ")");
    check_length(d, a, dims, len, 2, ".data", " in q4_0 (2 a byte)");
  } else if (out->dtype == rg::kWF16Panels || out->dtype == rg::kWBF16Panels || out->dtype == rg::kWQ8Panels) {
    // whole panels of 32 rows: ceil(rows / 32) · 32 · cols values (the shapes are within 2^31 each)
    const uint64_t need = static_cast<uint64_t>((vals[0] + rg::kPanelCols - 1) / rg::kPanelCols * rg::kPanelCols) *
                          static_cast<uint64_t>(vals[1]);
    if (need > len)
      range_error(a.name + ".data has " + std::to_string(len) + " elements but " + shape_text(d, a, vals) +
                  " in panels of 32 rows needs " + std::to_string(need));
  } else {
    check_length(d, a, dims, len);
  }
  if (out->dtype == rg::kWQ8_0 || out->dtype == rg::kWQ4_0 || out->dtype == rg::kWQ8Panels) {
    size_t slen = 0;
    napi_value sc = nullptr;
    void* sdata = nullptr;
    if (napi_get_named_property(env, v, "scales", &sc) != napi_ok ||
        napi_get_typedarray_info(env, sc, &got, &slen, &sdata, nullptr, nullptr) != napi_ok || got != napi_uint16_array)
      type_error("argument " + a.name + ".scales must be a Uint16Array (float16 bits), got " + describe(env, sc));
    out->scales = static_cast<const uint16_t*>(sdata);
    if (vals[1] % rg::kQ8Block != 0)
      range_error("q8_0 weight " + a.name + " needs a row length that is a multiple of 32 (" + shape_text(d, a, vals) +
                  ")");
    if (out->dtype == rg::kWQ8Panels) {  // a scale per row and block, the rows padded to whole panels
      const uint64_t need = static_cast<uint64_t>((vals[0] + rg::kPanelCols - 1) / rg::kPanelCols * rg::kPanelCols) *
                            static_cast<uint64_t>(vals[1] / rg::kQ8Block);
      if (need > slen)
        range_error(a.name + ".scales has " + std::to_string(slen) + " elements but " + shape_text(d, a, vals) +
                    " in panels of 32 rows needs " + std::to_string(need));
    } else {
      check_length(d, a, dims, slen, rg::kQ8Block, ".scales");
    }
  }
  return out;
}

napi_value KernelCall(napi_env env, napi_callback_info info) {
  size_t argc = kMaxArgs;
  napi_value argv[kMaxArgs];
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  const Bound& b = *static_cast<const Bound*>(data);
  const KernelDesc& d = *static_cast<const KernelDesc*>(b.what);
  return guarded(env, d.js, [&]() -> napi_value {
    if (argc < static_cast<size_t>(d.njs))
      type_error("expected " + std::to_string(d.njs) + " arguments, got " + std::to_string(argc));
    i64 dims[kMaxArgs];
    Slot s[kMaxArgs];
    rg::WeightRef weights[kMaxWeights];
    int nw = 0;
    for (const ArgSpec& a : d.dims) s[a.param].i = dims[a.dim] = read_dim(env, argv[a.js], a.name);
    for (const DerivedDim& x : d.derived) dims[x.dim] = dims[x.a] + dims[x.b];  // < 2^32: no overflow
    for (const CheckSpec& c : d.pre) run_check(d, c, dims, s);
    for (const ArgSpec& a : d.rest) {
      switch (a.kind) {
        case kNum: s[a.param].d = read_num(env, argv[a.js], a.name); break;
        case kFlag: s[a.param].b = read_flag(env, argv[a.js]); break;
        case kRope: break;  // filled from the context by the thunk
        case kWeight: s[a.param].p = read_weight(env, argv[a.js], d, a, dims, &weights[nw++]); break;
        default: s[a.param].p = read_array(env, argv[a.js], d, a, dims); break;
      }
    }
    for (const CheckSpec& c : d.post) run_check(d, c, dims, s);
    // A call that writes nothing is not handed to its kernel (as validate.ts's emptyWhen): with a zero dimension
    // the length checks no longer bound the others, and a kernel looping over them would spin for nothing.
    for (int i : d.skip)
      if (dims[i] == 0) return nullptr;
    const double r = d.call(b.ctx, s);
    if (!d.returns) return nullptr;  // undefined
    napi_value out;
    napi_create_double(env, r, &out);
    return out;
  });
}

// ---- controls (not kernels) ---------------------------------------------------------------------------------------
napi_value make_string_array(napi_env env, const std::vector<std::string>& v) {
  napi_value arr;
  napi_create_array_with_length(env, v.size(), &arr);
  for (size_t i = 0; i < v.size(); ++i) {
    napi_value s;
    napi_create_string_utf8(env, v[i].c_str(), v[i].size(), &s);
    napi_set_element(env, arr, static_cast<uint32_t>(i), s);
  }
  return arr;
}

napi_value make_number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

int read_threads(napi_env env, napi_value v, const char* name) {
  const double n = read_num(env, v, name);
  if (!(n >= 1 && n <= 256 && n == floor(n)))
    range_error(std::string(name) + " must be an integer 1..256, got " + js_string(env, v));
  return static_cast<int>(n);
}

const KernelTable* read_simd(napi_env env, napi_value v, const char* name) {
  napi_valuetype t = napi_undefined;
  napi_typeof(env, v, &t);
  if (t != napi_string) type_error(std::string(name) + " must be a string, got " + describe(env, v));
  const std::string s = js_string(env, v);
  const KernelTable* k = table_for(s);
  if (!k) plain_error("\"" + s + "\" is not available on this CPU (have: " + available().front() + ")");
  return k;
}

struct Control {
  const char* name;
  size_t args;
  napi_value (*fn)(napi_env env, Ctx* c, napi_value* argv);
};

// readBandwidth(bytes, threads, repeats) -> seconds of each streaming read of a `bytes` buffer (benchmarks). The
// buffer is kept between calls of the same size (a benchmark interleaves calls), and freed by readBandwidth(0, 1, 0).
napi_value ReadBandwidth(napi_env env, Ctx* c, napi_value* argv) {
  // bounded so that a stray call cannot allocate without limit or loop for hours
  const i64 bytes = read_dim(env, argv[0], "bytes", i64{1} << 36), nth = read_dim(env, argv[1], "threads", 256);
  const i64 reps = read_dim(env, argv[2], "repeats", 1 << 20);
  if (nth < 1) range_error("threads must be 1..256");
  const i64 n = bytes / 4;
  if (n != c->bw_n) {
    free(c->bw_buf);
    c->bw_buf = nullptr, c->bw_n = 0;
    napi_value empty;
    napi_create_array(env, &empty);
    if (n == 0) return empty;
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, static_cast<size_t>(n) * 4) != 0) range_error("cannot allocate the buffer");
    c->bw_buf = static_cast<float*>(mem), c->bw_n = n;
    for (i64 i = 0; i < n; ++i) c->bw_buf[i] = static_cast<float>(i & 1023) * 1e-3f;  // touch every page
  }
  napi_value out;
  napi_create_array_with_length(env, static_cast<size_t>(reps), &out);
  for (i64 r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    c->sink = c->sink + c->k->read_sum(static_cast<int>(nth), n, c->bw_buf);
    auto t1 = std::chrono::steady_clock::now();
    napi_set_element(env, out, static_cast<uint32_t>(r),
                     make_number(env, std::chrono::duration<double>(t1 - t0).count()));
  }
  return out;
}

// The in-place probe's read: each thread XORs its contiguous part of the 64-byte blocks into 4 independent 16-byte
// lanes (integer lanes, so any bytes are fine: weights of any dtype, no float special cases). SSE2 is the x86-64
// baseline this file is compiled for; 16-byte loads stream as fast as DRAM serves a core.
uint64_t read_xor(int nth, i64 blocks, const unsigned char* p) {
  uint64_t part[256] = {0};
  auto job = [&](int tid, int nt) {
    i64 b, e;
    rg::split_range(blocks, tid, nt, &b, &e);
#if defined(__SSE2__)
    __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0;
    for (i64 i = b; i < e; ++i) {
      const __m128i* q = reinterpret_cast<const __m128i*>(p + i * 64);
      a0 = _mm_xor_si128(a0, _mm_loadu_si128(q));
      a1 = _mm_xor_si128(a1, _mm_loadu_si128(q + 1));
      a2 = _mm_xor_si128(a2, _mm_loadu_si128(q + 2));
      a3 = _mm_xor_si128(a3, _mm_loadu_si128(q + 3));
    }
    uint64_t v[2];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(v), _mm_xor_si128(_mm_xor_si128(a0, a1), _mm_xor_si128(a2, a3)));
    part[tid] = v[0] ^ v[1];
#else
    uint64_t a = 0;
    for (i64 i = b * 8; i < e * 8; ++i) {
      uint64_t v;
      memcpy(&v, p + i * 8, 8);
      a ^= v;
    }
    part[tid] = a;
#endif
  };
  rg::parallel(nth > 256 ? 256 : nth, job);
  uint64_t s = 0;
  for (int t = 0; t < 256; ++t) s ^= part[t];
  return s;
}

// readBandwidthOf(array, threads, repeats) -> seconds of each streaming read of the bytes of a typed array the caller
// already holds (a model's weights: the probe then costs no memory of its own), in whole 64-byte blocks (a tail of
// fewer bytes is not read).
napi_value ReadBandwidthOf(napi_env env, Ctx* c, napi_value* argv) {
  napi_typedarray_type t;
  size_t len = 0;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, argv[0], &t, &len, &data, nullptr, nullptr) != napi_ok)
    type_error(std::string("argument array must be a typed array, got ") + describe(env, argv[0]));
  const i64 nth = read_dim(env, argv[1], "threads", 256), reps = read_dim(env, argv[2], "repeats", 1 << 20);
  if (nth < 1) range_error("threads must be 1..256");
  size_t elem = 1;
  switch (t) {
    case napi_int16_array: case napi_uint16_array: elem = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  const size_t bytes = len * elem;
  const i64 blocks = data ? static_cast<i64>(bytes / 64) : 0;
  const unsigned char* p = static_cast<const unsigned char*>(data);
  napi_value out;
  napi_create_array_with_length(env, static_cast<size_t>(reps), &out);
  for (i64 r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    c->sink = c->sink + static_cast<double>(read_xor(static_cast<int>(nth), blocks, p) & 1);
    auto t1 = std::chrono::steady_clock::now();
    napi_set_element(env, out, static_cast<uint32_t>(r),
                     make_number(env, std::chrono::duration<double>(t1 - t0).count()));
  }
  return out;
}

const Control kControls[] = {
    {"simd", 0,
     [](napi_env env, Ctx* c, napi_value*) {
       napi_value s;
       napi_create_string_utf8(env, c->k->name, NAPI_AUTO_LENGTH, &s);
       return s;
     }},
    {"availableSimd", 0, [](napi_env env, Ctx*, napi_value*) { return make_string_array(env, available()); }},
    {"setSimd", 1,
     [](napi_env env, Ctx* c, napi_value* argv) -> napi_value {
       c->k = read_simd(env, argv[0], "name");
       return nullptr;
     }},
    {"threads", 0, [](napi_env env, Ctx* c, napi_value*) { return make_number(env, c->threads); }},
    {"setThreads", 1,
     [](napi_env env, Ctx* c, napi_value* argv) -> napi_value {
       c->threads = read_threads(env, argv[0], "n");
       return nullptr;
     }},
    {"readBandwidth", 3, ReadBandwidth},
    // linearPrefetch() / setLinearPrefetch(bytes): the f32 small-M linear's software prefetch distance, process-wide
    // (kernels.h linear_prefetch_bytes; 0 = none): benchmarks compare distances; results do not depend on it
    {"linearPrefetch", 0,
     [](napi_env env, Ctx*, napi_value*) { return make_number(env, rg::linear_prefetch_bytes); }},
    {"setLinearPrefetch", 1,
     [](napi_env env, Ctx*, napi_value* argv) -> napi_value {
       rg::linear_prefetch_bytes = static_cast<int>(read_dim(env, argv[0], "bytes", 1 << 16));
       return nullptr;
     }},
    // linearSmallMaxRows() / setLinearSmallMaxRows(rows): kernels.h linear_small_max_rows (8..1024)
    {"linearSmallMaxRows", 0,
     [](napi_env env, Ctx*, napi_value*) { return make_number(env, rg::linear_small_max_rows); }},
    {"setLinearSmallMaxRows", 1,
     [](napi_env env, Ctx*, napi_value* argv) -> napi_value {
       const i64 rows = read_dim(env, argv[0], "rows", 1024);
       if (rows < 8) range_error("rows must be 8..1024");
       rg::linear_small_max_rows = static_cast<int>(rows);
       return nullptr;
     }},
    // poolSpin() / setPoolSpin(us): how long an idle pool worker spins before it sleeps, process-wide
    {"poolSpin", 0, [](napi_env env, Ctx*, napi_value*) { return make_number(env, rg::pool_spin_us()); }},
    {"setPoolSpin", 1,
     [](napi_env env, Ctx*, napi_value* argv) -> napi_value {
       rg::set_pool_spin_us(static_cast<int>(read_dim(env, argv[0], "microseconds", 1000000)));
       return nullptr;
     }},
    {"readBandwidthOf", 3, ReadBandwidthOf},
    // fmaPeak(threads, seconds) -> GFLOP/s of the FMA probe (native/probe.cc), one run of about `seconds`
    {"fmaPeak", 2,
     [](napi_env env, Ctx* c, napi_value* argv) {
       const int nth = read_threads(env, argv[0], "threads");
       const double s = read_num(env, argv[1], "seconds");
       if (!(s >= 0 && s <= 60)) range_error("seconds must be 0..60, got " + js_string(env, argv[1]));
       return make_number(env, rg::fma_peak(c->k, nth, s));
     }},
};

napi_value ControlCall(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void* data = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &data);
  const Bound& b = *static_cast<const Bound*>(data);
  const Control& ctl = *static_cast<const Control*>(b.what);
  return guarded(env, ctl.name, [&]() -> napi_value {
    if (argc < ctl.args) type_error("expected " + std::to_string(ctl.args) + " arguments, got " + std::to_string(argc));
    return ctl.fn(env, b.ctx, argv);
  });
}

// ---- the module -------------------------------------------------------------------------------------------------
void export_fn(napi_env env, napi_value obj, const char* name, napi_callback cb, Bound* data) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, data, &fn) != napi_ok ||
      napi_set_named_property(env, obj, name, fn) != napi_ok)
    plain_error(std::string("cannot export ") + name);
  if (data) {
    ++data->ctx->refs;
    if (napi_add_finalizer(env, fn, data, release, nullptr, nullptr) != napi_ok) plain_error("cannot add a finalizer");
  }
}

// createContext({threads?, simd?}): a fresh context (defaults: every core the process may use, the best SIMD path).
napi_value CreateContext(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  napi_get_cb_info(env, info, &argc, &opts, nullptr, nullptr);
  return guarded(env, "createContext", [&]() -> napi_value {
    const KernelTable* k = table_for(available().front());
    int threads = default_threads();
    if (argc >= 1 && !is_nullish(env, opts)) {
      napi_valuetype t = napi_undefined;
      napi_typeof(env, opts, &t);
      if (t != napi_object) type_error(std::string("options must be an object, got ") + describe(env, opts));
      napi_value v;
      if (napi_get_named_property(env, opts, "threads", &v) == napi_ok && !is_nullish(env, v))
        threads = read_threads(env, v, "threads");
      if (napi_get_named_property(env, opts, "simd", &v) == napi_ok && !is_nullish(env, v))
        k = read_simd(env, v, "simd");
    }
    const std::vector<KernelDesc>& descs = kernel_descs();
    Ctx* c = new Ctx();
    c->k = k, c->threads = threads;
    // Bound entries never move: the vector is sized once, before any function points into it.
    c->bound.reserve(descs.size() + sizeof(kControls) / sizeof(kControls[0]));
    napi_value obj;
    napi_create_object(env, &obj);
    try {
      for (const KernelDesc& d : descs) {
        c->bound.push_back(Bound{&d, c});
        export_fn(env, obj, d.js, KernelCall, &c->bound.back());
      }
      for (const Control& ctl : kControls) {
        c->bound.push_back(Bound{&ctl, c});
        export_fn(env, obj, ctl.name, ControlCall, &c->bound.back());
      }
    } catch (...) {
      if (c->refs == 0) delete c;  // else freed by the finalizers of the functions already made
      throw;
    }
    return obj;
  });
}

napi_value AvailableSimd(napi_env env, napi_callback_info) { return make_string_array(env, available()); }

}  // namespace

NAPI_MODULE_INIT() {
  return guarded(env, "recyclegpt_native", [&]() -> napi_value {
    kernel_descs();  // a spec that does not match its kernel fails the load, with the entry's name
    rg::linear_prefetch_bytes = cpu_linear_prefetch_bytes();
    export_fn(env, exports, "createContext", CreateContext, nullptr);
    export_fn(env, exports, "availableSimd", AvailableSimd, nullptr);
    return exports;
  });
}
