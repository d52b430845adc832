// string.h of the freestanding WebAssembly build (native/wasm/runtime.cc: memory.copy / memory.fill).
#pragma once
#include <stddef.h>
extern "C" {
void* memcpy(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
}
