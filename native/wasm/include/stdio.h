// stdio of the freestanding WebAssembly build: only the kernels' last words before abort() (native/wasm/runtime.cc
// hands the format string to JavaScript, which puts it in the error it throws).
#pragma once
typedef struct RgWasmFile FILE;
extern "C" {
extern FILE* stderr;
int fprintf(FILE* f, const char* format, ...);
}
