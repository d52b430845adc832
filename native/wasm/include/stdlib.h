// stdlib of the freestanding WebAssembly build (native/wasm/runtime.cc).
#pragma once
#include <stddef.h>
extern "C" {
int posix_memalign(void** out, size_t align, size_t bytes);
void* malloc(size_t bytes);
void* realloc(void* p, size_t bytes);
void free(void* p);
[[noreturn]] void abort(void);
}
