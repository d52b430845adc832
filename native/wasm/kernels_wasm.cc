// The kernels of kernels_impl.h compiled for WebAssembly SIMD128 (scripts/build-wasm.mjs: clang --target=wasm32
// -msimd128, freestanding, include/ for the few libc pieces), plus the module's JavaScript surface: one exported
// function per kernel of RG_KERNELS, reached through the function table.
//
// JavaScript (src/kernels/wasm.ts) asks for kernel i's name (its JS export name), its argument kinds and its
// function: rg_kernel_name(i), rg_kernel_args(i) and rg_kernel_fn(i) (a table index). The function takes the
// Backend's arguments in order with dimensions as int32 (the TS layer has checked them: [0, 2^31-1]), arrays and
// weight handles as addresses in this module's memory; RoPE's table cache is the module's own.
#include <stdint.h>
#include <type_traits>

#include "math.h"
#include "stdio.h"
#include "stdlib.h"
#include "string.h"

#include "../kernels.h"
#include "../pool.h"

namespace rg_wasm {
using rg::i64;
#define RG_ISA_NAME "wasm"
#include "../simd_wasm.h"
#include "../kernels_impl.h"
}  // namespace rg_wasm

namespace {

using rg::i64;
using rg::KernelTable;
using rg::RopeCache;
using rg::WeightRef;

int g_threads = 1;
rg::RopeCache g_rope = {};

// How each C++ parameter arrives from JavaScript, and its kind letter for rg_kernel_args:
// n dimension (int32), r array read, w array written (or read and written), i int32 array, W weight handle,
// b bool, f float, d double, x not passed (RoPE's cache: the module's own).
template <class T>
struct Arg;
template <>
struct Arg<i64> {
  typedef int32_t type;
  static constexpr char kind = 'n';
  static i64 from(int32_t v) { return v; }
};
template <>
struct Arg<const float*> {
  typedef const float* type;
  static constexpr char kind = 'r';
  static const float* from(const float* v) { return v; }
};
template <>
struct Arg<float*> {
  typedef float* type;
  static constexpr char kind = 'w';
  static float* from(float* v) { return v; }
};
template <>
struct Arg<const int32_t*> {
  typedef const int32_t* type;
  static constexpr char kind = 'i';
  static const int32_t* from(const int32_t* v) { return v; }
};
template <>
struct Arg<const rg::WeightRef*> {
  typedef const rg::WeightRef* type;
  static constexpr char kind = 'W';
  static const rg::WeightRef* from(const rg::WeightRef* v) { return v; }
};
template <>
struct Arg<bool> {
  typedef int32_t type;
  static constexpr char kind = 'b';
  static bool from(int32_t v) { return v != 0; }
};
template <>
struct Arg<float> {
  typedef float type;
  static constexpr char kind = 'f';
  static float from(float v) { return v; }
};
template <>
struct Arg<double> {
  typedef double type;
  static constexpr char kind = 'd';
  static double from(double v) { return v; }
};
template <>
struct Arg<rg::RopeCache*> {
  typedef int32_t type;
  static constexpr char kind = 'x';
  static rg::RopeCache* from(int32_t) { return &g_rope; }
};

template <class Ret, class... P>
struct Thunk {
  typedef Ret (*Fn)(int, P...);
  static constexpr char kinds[sizeof...(P) + 1] = {Arg<P>::kind..., 0};
  template <Fn KernelTable::*member>
  static Ret call(typename Arg<P>::type... a) {
    return (rg_wasm::kTable.*member)(g_threads, Arg<P>::from(a)...);
  }
};

struct Entry {
  const char* name;
  const char* args;
  uintptr_t fn;
};

#define RG_THUNK(c, js, spec, Ret, Params) Thunk<Ret, RG_UNPAREN Params>
#define RG_WASM_ENTRY(c, js, spec, Ret, Params) \
  {js, RG_THUNK(c, js, spec, Ret, Params)::kinds,  \
   reinterpret_cast<uintptr_t>(&RG_THUNK(c, js, spec, Ret, Params)::call<&KernelTable::c>)},
const Entry kEntries[] = {RG_KERNELS(RG_WASM_ENTRY)};
#undef RG_WASM_ENTRY
#undef RG_THUNK
constexpr int kCount = sizeof(kEntries) / sizeof(kEntries[0]);

}  // namespace

extern "C" {
__attribute__((export_name("rg_kernel_count"))) int rg_kernel_count() { return kCount; }
__attribute__((export_name("rg_kernel_name"))) const char* rg_kernel_name(int i) { return kEntries[i].name; }
__attribute__((export_name("rg_kernel_args"))) const char* rg_kernel_args(int i) { return kEntries[i].args; }
__attribute__((export_name("rg_kernel_fn"))) uintptr_t rg_kernel_fn(int i) { return kEntries[i].fn; }
__attribute__((export_name("rg_set_threads"))) void rg_set_threads(int n) { g_threads = n; }
__attribute__((export_name("rg_simd_width"))) int rg_simd_width() { return rg_wasm::kTable.simd_width; }
// The bandwidth probe's read (benchmarks): the sum of n floats at x.
__attribute__((export_name("rg_read_sum"))) double rg_read_sum(const float* x, int32_t n) {
  return rg_wasm::kTable.read_sum(g_threads, n, x);
}
}
