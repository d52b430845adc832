// The thread pool of the threaded WebAssembly build (recyclegpt-kernels-threads.wasm, scripts/build-wasm.mjs: the
// same sources with -matomics, linked with --shared-memory). JavaScript (src/kernels/wasm.ts) instantiates this
// module once on the calling thread and once in each of N-1 Web Workers / worker_threads, all on one shared
// WebAssembly.Memory; each worker sets its own stack pointer and thread-local block (__stack_pointer,
// __wasm_init_tls: the kernels' per-thread scratch is thread_local) and then calls rg_worker_main, which never
// returns until rg_pool_stop. Everything below lives in the shared memory; a job is published and finished through
// atomics on it (memory.atomic.wait / notify), never through postMessage.
//
// A job is fn(ctx, tid, nth) for tid = 0..nth-1, each tid run exactly once by whichever thread claims it first
// (native/pool.cc's scheme): the caller runs tid 0, then claims every tid no worker has taken, so it never waits
// for a worker that is asleep, still starting, or parked by the OS; it waits only for tids already running. Kernels
// give every output element one fixed chunk computed the same way on any thread (kernels_impl.h), so results do
// not depend on which thread ran what, nor on the thread count.
//
// Waiting: workers spin for kSpinMs after a job (decoding calls a kernel every ~10-100 us), then sleep in
// memory.atomic.wait32 on g.seq. The caller spins while the last tids finish (a chunk or two: microseconds); where it
// may block (Node's main thread, a worker) it sleeps after kSpinMs, but a browser's main thread may not (the wait
// instruction traps there), so there it only spins: JavaScript says which with rg_pool_set_caller_can_wait.
#include <stdint.h>

#include "../pool.h"

extern "C" {
__attribute__((import_module("env"), import_name("now"))) double rg_wasm_now();  // performance.now(), ms
__attribute__((import_module("env"), import_name("report"))) void rg_wasm_report(const char* message);
extern const char* rg_wasm_last_report;  // runtime.cc: the last message a kernel printed (on any thread)
}

namespace {

constexpr double kSpinMs = 0.2;
constexpr int kMaxThreads = 256;

// Fields that threads write often sit on their own cache lines.
struct Pool {
  alignas(64) uint64_t word;  // gen << 20 | nth << 10 | next tid to claim (native/pool.cc's claim word)
  alignas(64) int32_t done;   // tids of the current job finished; a blocked caller waits on it
  alignas(64) int32_t seq;    // bumped when a job is published and at stop; sleeping workers wait on it
  int32_t sleepers;           // workers asleep (or about to be) on seq
  alignas(64) int32_t busy;   // a job is in flight (one at a time; a nested or concurrent caller runs alone)
  int32_t caller_waiting;     // the caller is asleep on done
  int32_t can_wait;           // the calling thread may block (memory.atomic.wait32)
  int32_t alive;              // workers inside rg_worker_main
  int32_t stop;               // rg_pool_stop was called: workers return
  int32_t failed;             // a worker trapped in the current job (its tid counted as done by rg_worker_failed)
  alignas(64) uint32_t worker_tids;  // tids run by workers so far (tests check that workers took part)
  rg::TaskFn fn;
  void* ctx;
};
Pool g = {};

inline uint64_t gen_of(uint64_t w) { return w >> 20; }

template <class T>
inline T load(T* p) {
  return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
template <class T>
inline void store(T* p, T v) {
  __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

// Takes the next tid of job `gen`; false when the job is another one or has no tid left.
bool claim(uint64_t gen, int* tid) {
  uint64_t w = load(&g.word);
  for (;;) {
    if (gen_of(w) != gen) return false;
    const uint64_t next = w & 1023, nth = (w >> 10) & 1023;
    if (next >= nth) return false;
    if (__atomic_compare_exchange_n(&g.word, &w, w + 1, true, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
      *tid = static_cast<int>(next);
      return true;
    }
  }
}

// A worker's tid is done: the last one wakes a sleeping caller.
void finish(int nth) {
  if (__atomic_add_fetch(&g.done, 1, __ATOMIC_SEQ_CST) == nth && load(&g.caller_waiting))
    __builtin_wasm_memory_atomic_notify(&g.done, 1);
}

void wait_done(int nth) {
  if (load(&g.done) == nth) return;
  const double deadline = rg_wasm_now() + kSpinMs;
  for (int i = 0;; ++i) {
    if (load(&g.done) == nth) return;
    if ((i & 255) == 255 && load(&g.can_wait) && rg_wasm_now() > deadline) break;
  }
  store(&g.caller_waiting, 1);
  for (;;) {
    const int32_t d = load(&g.done);
    if (d == nth) break;
    __builtin_wasm_memory_atomic_wait32(&g.done, d, 1000000);  // 1 ms at most: a missed wake costs no more
  }
  store(&g.caller_waiting, 0);
}

}  // namespace

namespace rg {

void pool_run(int nth, TaskFn fn, void* ctx) {
  if (nth > kMaxThreads) nth = kMaxThreads;
  int32_t idle = 0;
  if (nth <= 1 || load(&g.alive) == 0 ||
      !__atomic_compare_exchange_n(&g.busy, &idle, 1, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    for (int t = 0; t < nth; ++t) fn(ctx, t, nth);  // no worker, or a job already in flight: all parts here
    return;
  }
  g.fn = fn;
  g.ctx = ctx;
  store(&g.done, 0);
  const uint64_t gen = gen_of(load(&g.word)) + 1;
  store(&g.word, gen << 20 | static_cast<uint64_t>(nth) << 10 | 1);  // tid 0: ours
  __atomic_add_fetch(&g.seq, 1, __ATOMIC_SEQ_CST);
  if (load(&g.sleepers) > 0) __builtin_wasm_memory_atomic_notify(&g.seq, static_cast<uint32_t>(nth - 1));
  fn(ctx, 0, nth);
  __atomic_add_fetch(&g.done, 1, __ATOMIC_SEQ_CST);
  int tid;
  while (claim(gen, &tid)) {  // tids no worker has taken
    fn(ctx, tid, nth);
    __atomic_add_fetch(&g.done, 1, __ATOMIC_SEQ_CST);
  }
  wait_done(nth);
  const int32_t failed = __atomic_exchange_n(&g.failed, 0, __ATOMIC_SEQ_CST);
  store(&g.busy, 0);
  if (failed) {  // a worker trapped (out of memory): so does this call, with the worker's message
    if (rg_wasm_last_report) rg_wasm_report(rg_wasm_last_report);
    __builtin_trap();
  }
}

}  // namespace rg

extern "C" {

// A worker's loop: claims tids of published jobs until rg_pool_stop. Its instance must have its own stack and
// thread-local block first (JavaScript sets __stack_pointer and calls __wasm_init_tls).
__attribute__((export_name("rg_worker_main"))) void rg_worker_main() {
  __atomic_add_fetch(&g.alive, 1, __ATOMIC_SEQ_CST);
  uint64_t seen = gen_of(load(&g.word));
  while (!load(&g.stop)) {
    bool got = false;
    const double deadline = rg_wasm_now() + kSpinMs;
    for (int i = 0;; ++i) {
      if (gen_of(load(&g.word)) != seen || load(&g.stop)) {
        got = true;
        break;
      }
      if ((i & 255) == 255 && rg_wasm_now() > deadline) break;
    }
    if (!got) {
      __atomic_add_fetch(&g.sleepers, 1, __ATOMIC_SEQ_CST);
      const int32_t s = load(&g.seq);
      if (gen_of(load(&g.word)) == seen && !load(&g.stop)) __builtin_wasm_memory_atomic_wait32(&g.seq, s, -1);
      __atomic_sub_fetch(&g.sleepers, 1, __ATOMIC_SEQ_CST);
      continue;
    }
    const uint64_t w = load(&g.word);
    seen = gen_of(w);
    const int nth = static_cast<int>((w >> 10) & 1023);
    int tid;
    while (claim(seen, &tid)) {
      g.fn(g.ctx, tid, nth);  // fn / ctx are this job's: the caller waits for this tid before the next job
      __atomic_add_fetch(&g.worker_tids, 1, __ATOMIC_RELAXED);
      finish(nth);
    }
  }
  __atomic_sub_fetch(&g.alive, 1, __ATOMIC_SEQ_CST);
}

// A worker trapped inside a tid (JavaScript caught it): that tid counts as done, and the job's caller traps too.
// The worker then resets its stack pointer and enters rg_worker_main again.
__attribute__((export_name("rg_worker_failed"))) void rg_worker_failed() {
  __atomic_sub_fetch(&g.alive, 1, __ATOMIC_SEQ_CST);
  store(&g.failed, 1);
  finish(static_cast<int>((load(&g.word) >> 10) & 1023));
}

// Workers return from rg_worker_main (the backend is closed).
__attribute__((export_name("rg_pool_stop"))) void rg_pool_stop() {
  store(&g.stop, 1);
  __atomic_add_fetch(&g.seq, 1, __ATOMIC_SEQ_CST);
  __builtin_wasm_memory_atomic_notify(&g.seq, 0xffffffffu);
}

__attribute__((export_name("rg_pool_set_caller_can_wait"))) void rg_pool_set_caller_can_wait(int32_t yes) {
  store(&g.can_wait, yes ? 1 : 0);
}

// Workers that have entered rg_worker_main and not left it.
__attribute__((export_name("rg_pool_workers"))) int32_t rg_pool_workers() { return load(&g.alive); }

// Tids that workers have run so far.
__attribute__((export_name("rg_pool_worker_tids"))) uint32_t rg_pool_worker_tids() { return load(&g.worker_tids); }

// Thread-safe function-local statics (gemm_blocking's) without a C++ runtime: guard byte 0 says initialized (the
// compiler's inline check reads it), byte 1 is held while one thread runs the initializer.
int __cxa_guard_acquire(uint64_t* guard) {
  uint8_t* b = reinterpret_cast<uint8_t*>(guard);
  for (;;) {
    if (__atomic_load_n(b, __ATOMIC_ACQUIRE)) return 0;
    uint8_t free_ = 0;
    if (__atomic_compare_exchange_n(b + 1, &free_, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      if (!__atomic_load_n(b, __ATOMIC_ACQUIRE)) return 1;
      __atomic_store_n(b + 1, 0, __ATOMIC_RELEASE);
      return 0;
    }
  }
}
void __cxa_guard_release(uint64_t* guard) {
  uint8_t* b = reinterpret_cast<uint8_t*>(guard);
  __atomic_store_n(b, 1, __ATOMIC_RELEASE);
  __atomic_store_n(b + 1, 0, __ATOMIC_RELEASE);
}
void __cxa_guard_abort(uint64_t* guard) { __atomic_store_n(reinterpret_cast<uint8_t*>(guard) + 1, 0, __ATOMIC_RELEASE); }

}  // extern "C"
