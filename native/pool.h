// A small persistent thread pool: a job runs on the calling thread plus up to nth-1 workers. A job is
// fn(ctx, tid, nth) for tid = 0..nth-1, each tid run once by whichever thread claims it first (the caller
// takes the ones no worker has picked up, so a worker the OS has parked never stalls a call).
// Kernels either give each tid a fixed share (a result that depends only on nth) or, mostly, take chunks
// dynamically with parallel_chunks, giving every output element one fixed chunk and order (a result that
// does not depend on the thread count at all).
//
// Workers spin for a short while after each job (consecutive kernel calls arrive microseconds apart while
// decoding), then block on a condition variable: the machine is shared, and a worker that spins forever
// steals a core another process needs.
//
// This header is included by the per-ISA translation units, so it holds no std:: templates that could be
// instantiated there with AVX-512 code and then picked by the linker for a scalar caller.
#pragma once
#include <stdint.h>

namespace rg {

typedef void (*TaskFn)(void* ctx, int tid, int nth);

// Runs fn(ctx, tid, nth) for tid = 0..nth-1 and returns when all are done. Safe to call from several
// threads at once (a second caller runs its job's parts one after another on its own thread).
void pool_run(int nth, TaskFn fn, void* ctx);

// How long (microseconds) an idle worker spins for the next job before it blocks; process-wide.
int pool_spin_us();
void set_pool_spin_us(int us);

// Convenience for lambdas: f(tid, nth).
template <class F>
inline void parallel(int nth, F& f) {
  if (nth <= 1) {
    f(0, 1);
    return;
  }
  pool_run(nth, [](void* c, int tid, int n) { (*static_cast<F*>(c))(tid, n); }, &f);
}

// Dynamic scheduling: f(chunk) for chunk = 0..chunks-1, each chunk taken by whichever of the nth threads
// asks next (an atomic counter). Kernels give every output element to one chunk and compute a chunk the same
// way on any thread, so results stay deterministic (and independent of the thread count), while a thread
// that the OS has parked (the machine is shared) does not hold the others up: they take its chunks.
template <class F>
inline void parallel_chunks(int nth, int64_t chunks, F& f) {
  if (nth <= 1 || chunks <= 1) {
    for (int64_t c = 0; c < chunks; ++c) f(c);
    return;
  }
  int64_t next = 0;
  auto job = [&](int, int) {
    for (;;) {
      const int64_t c = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED);
      if (c >= chunks) break;
      f(c);
    }
  };
  parallel(nth < chunks ? nth : static_cast<int>(chunks), job);
}

// [begin, end) of part `tid` of `n` items split into `nth` contiguous, nearly equal parts.
static inline void split_range(int64_t n, int tid, int nth, int64_t* begin, int64_t* end) {
  *begin = n * tid / nth;
  *end = n * (tid + 1) / nth;
}

}  // namespace rg
