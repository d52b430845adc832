// Thread pool (see pool.h). Compiled for the baseline ISA.
#include "pool.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#elif defined(__aarch64__)
static inline void cpu_relax() { __asm__ __volatile__("yield"); }
#else
static inline void cpu_relax() {}
#endif

namespace rg {
namespace {

// How long an idle worker (or a waiting caller) spins before it blocks. Decoding issues a kernel every
// ~10-100 us, so 200 us keeps workers hot inside a token while letting them sleep between requests.
constexpr auto kSpin = std::chrono::microseconds(200);

class Pool {
 public:
  void run(int nth, TaskFn fn, void* ctx) {
    std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
    if (!busy.owns_lock()) {  // another thread (a worker_threads isolate) holds the pool
      for (int t = 0; t < nth; ++t) fn(ctx, t, nth);
      return;
    }
    ensure_workers(nth - 1);
    fn_ = fn;
    ctx_ = ctx;
    nth_ = nth;
    // Every worker (also one with no part in this job) acknowledges each job, so none can still be reading
    // fn_/ctx_/nth_ when the next job overwrites them.
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_seq_cst);
    gen_.fetch_add(1, std::memory_order_seq_cst);  // publishes fn_/ctx_/nth_
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_work_.notify_all();
    }
    fn(ctx, 0, nth);
    wait_done();
  }

 private:
  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      int id = static_cast<int>(workers_.size()) + 1;
      unsigned long long seen = gen_.load(std::memory_order_seq_cst);  // before this job is published
      workers_.emplace_back([this, id, seen] { worker_loop(id, seen); });
      workers_.back().detach();  // the pool lives until the process exits
    }
  }

  void wait_done() {
    if (pending_.load(std::memory_order_acquire) == 0) return;
    auto deadline = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; ++i) {
      if (pending_.load(std::memory_order_acquire) == 0) return;
      cpu_relax();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
    }
    std::unique_lock<std::mutex> lk(mu_);
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    cv_done_.wait(lk, [this] { return pending_.load(std::memory_order_seq_cst) == 0; });
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  void worker_loop(int id, unsigned long long seen) {
    for (;;) {
      // Spin briefly for the next job, then sleep.
      auto deadline = std::chrono::steady_clock::now() + kSpin;
      bool got = false;
      for (int i = 0;; ++i) {
        if (gen_.load(std::memory_order_acquire) != seen) {
          got = true;
          break;
        }
        cpu_relax();
        if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
      }
      if (!got) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_work_.wait(lk, [&] { return gen_.load(std::memory_order_seq_cst) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      seen = gen_.load(std::memory_order_acquire);
      if (id < nth_) fn_(ctx_, id, nth_);
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst)) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_done_.notify_one();
      }
    }
  }

  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;      // guards sleeping/waking only
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  std::atomic<unsigned long long> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeping_{false};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int nth_ = 1;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may still be parked in it at exit
  return *p;
}

}  // namespace

void pool_run(int nth, TaskFn fn, void* ctx) {
  if (nth <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  pool().run(nth, fn, ctx);
}

}  // namespace rg
