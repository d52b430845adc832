// The runtime of the freestanding WebAssembly build: what the kernels take from libc (a heap, memcpy / memset,
// abort), the cache sizes the GEMM blocking reads, and a thread pool of one thread. No libc is linked, so the module
// imports nothing but its memory and four Math functions (include/math.h) and a reporting hook.
// The threaded build (RG_WASM_THREADS: shared memory, threads.cc's pool) takes its pool from threads.cc and guards the
// heap with a spin lock (workers grow their thread-local scratch through malloc).
//
// The heap: memory for JavaScript (src/kernels/wasm.ts's allocator: weights, KV caches, scratch) is bumped off the
// end and never reused, so it comes zeroed (fresh pages are zero); the kernels' own scratch (malloc / realloc /
// free) comes in power-of-two classes with per-class free lists, 64-byte aligned, like the native build's
// posix_memalign. Memory grows by pages as the bump pointer passes its end.
#include <stddef.h>
#include <stdint.h>

#include "../kernels.h"
#include "../pool.h"
#include "stdio.h"
#include "stdlib.h"
#include "string.h"

extern "C" unsigned char __heap_base;

extern "C" {
__attribute__((import_module("env"), import_name("report"))) void rg_wasm_report(const char* message);
}

namespace {

constexpr uint64_t kPage = 65536;
constexpr uintptr_t kAlign = 64;
uintptr_t g_brk = 0;  // first free byte

#ifdef RG_WASM_THREADS
int32_t g_heap_lock = 0;
// Held for a heap operation (a few dozen instructions): contention is rare (scratch grows a few times per thread).
struct HeapLock {
  HeapLock() {
    while (__atomic_exchange_n(&g_heap_lock, 1, __ATOMIC_ACQUIRE)) {
    }
  }
  ~HeapLock() { __atomic_store_n(&g_heap_lock, 0, __ATOMIC_RELEASE); }
};
#else
struct HeapLock {
  HeapLock() {}  // one thread: nothing to hold
};
#endif

// `bytes` at a 64-byte boundary off the end of the heap, growing memory as needed; nullptr when it cannot grow.
void* bump(uint64_t bytes) {
  if (g_brk == 0) g_brk = reinterpret_cast<uintptr_t>(&__heap_base);
  const uint64_t p = (static_cast<uint64_t>(g_brk) + kAlign - 1) & ~static_cast<uint64_t>(kAlign - 1);
  const uint64_t end = p + bytes;
  const uint64_t have = static_cast<uint64_t>(__builtin_wasm_memory_size(0)) * kPage;
  if (end > have) {
    const uint64_t pages = (end - have + kPage - 1) / kPage;
    if (end > (uint64_t{1} << 32) || __builtin_wasm_memory_grow(0, static_cast<size_t>(pages)) == static_cast<size_t>(-1))
      return nullptr;
  }
  g_brk = static_cast<uintptr_t>(end);
  return reinterpret_cast<void*>(static_cast<uintptr_t>(p));
}

// Class c holds blocks of 64 << c bytes; each block is preceded by a 64-byte header holding c.
constexpr int kClasses = 26;  // up to 2 GiB
void* g_free[kClasses];

int class_of(size_t bytes) {
  int c = 0;
  while (c < kClasses && (size_t{64} << c) < bytes) ++c;
  return c;
}

}  // namespace

extern "C" {

void* memcpy(void* dst, const void* src, size_t n) {
  __builtin_memcpy(dst, src, n);  // memory.copy (bulk memory)
  return dst;
}
void* memset(void* dst, int c, size_t n) {
  __builtin_memset(dst, c, n);  // memory.fill
  return dst;
}

void* malloc(size_t bytes) {
  const int c = class_of(bytes);
  if (c >= kClasses) return nullptr;
  HeapLock lock;
  if (g_free[c]) {
    void* p = g_free[c];
    g_free[c] = *static_cast<void**>(p);
    return p;
  }
  unsigned char* block = static_cast<unsigned char*>(bump(kAlign + (uint64_t{64} << c)));
  if (!block) return nullptr;
  *reinterpret_cast<int*>(block) = c;
  return block + kAlign;
}

void free(void* p) {
  if (!p) return;
  const int c = *reinterpret_cast<int*>(static_cast<unsigned char*>(p) - kAlign);
  HeapLock lock;
  *static_cast<void**>(p) = g_free[c];
  g_free[c] = p;
}

void* realloc(void* p, size_t bytes) {
  if (!p) return malloc(bytes);
  const int c = *reinterpret_cast<int*>(static_cast<unsigned char*>(p) - kAlign);
  const size_t have = size_t{64} << c;
  if (bytes <= have) return p;
  void* q = malloc(bytes);
  if (!q) return nullptr;
  memcpy(q, p, have);
  free(p);
  return q;
}

int posix_memalign(void** out, size_t align, size_t bytes) {
  if (align > kAlign) return 22;  // EINVAL: nothing asks for more than a cache line
  void* p = malloc(bytes);
  if (!p) return 12;  // ENOMEM
  *out = p;
  return 0;
}

void abort(void) { __builtin_trap(); }

// The kernels print only "out of memory allocating %zu bytes" before aborting: JavaScript gets the format.
FILE* stderr = nullptr;
#ifdef RG_WASM_THREADS
const char* rg_wasm_last_report = nullptr;  // a worker's message, for the caller that traps after it (threads.cc)
#endif
int fprintf(FILE*, const char* format, ...) {
#ifdef RG_WASM_THREADS
  __atomic_store_n(&rg_wasm_last_report, format, __ATOMIC_SEQ_CST);
#endif
  rg_wasm_report(format);
  return 0;
}

// JavaScript's allocator: `bytes` zeroed bytes, 64-byte aligned, never freed (they live as long as the module);
// 0 when memory cannot grow.
__attribute__((export_name("rg_alloc_zeroed"))) void* rg_alloc_zeroed(uint32_t bytes) {
  HeapLock lock;
  return bump(bytes);
}
// Staging blocks for arrays from outside this memory (one kernel call's), and where the heap ends (bytes in use).
__attribute__((export_name("rg_malloc"))) void* rg_malloc(uint32_t bytes) { return malloc(bytes); }
__attribute__((export_name("rg_free"))) void rg_free(void* p) { free(p); }
__attribute__((export_name("rg_heap_end"))) uintptr_t rg_heap_end() {
  return g_brk ? g_brk : reinterpret_cast<uintptr_t>(&__heap_base);
}

}  // extern "C"

namespace rg {

// WebAssembly does not say: common sizes (32 KiB L1d, 512 KiB L2, 8 MiB L3). The GEMM's sums depend on the L1d
// size (its K block), so a fixed size also keeps them the same on every machine.
i64 cache_bytes(int level) { return level == 1 ? 32768 : level == 2 ? 524288 : 8388608; }

#ifndef RG_WASM_THREADS
// One thread: a job's parts run one after another on the caller.
void pool_run(int nth, TaskFn fn, void* ctx) {
  for (int t = 0; t < nth; ++t) fn(ctx, t, nth);
}
#endif

}  // namespace rg
