// The libm of the freestanding WebAssembly build (native/wasm/runtime.cc): square roots are instructions; the
// float64 functions the kernels call once per row or per table entry come from JavaScript's Math, so they give
// the reference backend's bits (src/kernels/ref.ts uses the same Math functions).
#pragma once
extern "C" {
__attribute__((import_module("env"), import_name("log"))) double log(double);
__attribute__((import_module("env"), import_name("pow"))) double pow(double, double);
__attribute__((import_module("env"), import_name("cos"))) double cos(double);
__attribute__((import_module("env"), import_name("sin"))) double sin(double);
}
static inline double sqrt(double x) { return __builtin_sqrt(x); }
static inline float sqrtf(float x) { return __builtin_sqrtf(x); }
