// Thread pool (see pool.h). Compiled for the baseline ISA.
//
// A job is fn(ctx, tid, nth) for tid = 0..nth-1. Each tid runs exactly once, on whichever thread claims it:
// the caller runs tid 0 and then claims any tid no worker has taken yet, so it never waits for a worker that
// has not started (on a shared machine a parked worker can be minutes of CPU time away, in scheduler terms
// milliseconds); it only waits for tids already running. Claims go through one atomic word holding the job's
// generation, its nth and the next free tid, so a late worker can never claim a tid of an older job.
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

// How long an idle worker (or a waiting caller) spins before it blocks (pool_spin_us, settable). Decoding issues a
// kernel every ~10-100 us, so 200 us keeps workers hot inside a token while letting them sleep between requests
// (2 ms measured no different in verified decoding: interleaved A/B on Zen 5, 2 threads).
std::atomic<int> g_spin_us{200};
inline std::chrono::microseconds spin_time() {
  return std::chrono::microseconds(g_spin_us.load(std::memory_order_relaxed));
}

// word_ = gen << 20 | nth << 10 | next_tid   (nth, next_tid <= 256)
constexpr uint64_t kFieldMask = 1023;
inline uint64_t gen_of(uint64_t w) { return w >> 20; }

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
    done_.store(0, std::memory_order_relaxed);
    const uint64_t gen = gen_of(word_.load(std::memory_order_relaxed)) + 1;
    word_.store(gen << 20 | static_cast<uint64_t>(nth) << 10 | 1, std::memory_order_seq_cst);  // tid 0: ours
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_work_.notify_all();
    }
    fn(ctx, 0, nth);
    done_.fetch_add(1, std::memory_order_acq_rel);
    int tid;
    while (claim(gen, &tid)) {  // tids no worker has taken
      fn(ctx, tid, nth);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
    wait_done(nth);
  }

 private:
  // Takes the next tid of job `gen`; false when the job is another one or has no tid left.
  bool claim(uint64_t gen, int* tid) {
    uint64_t w = word_.load(std::memory_order_acquire);
    for (;;) {
      if (gen_of(w) != gen) return false;
      const uint64_t next = w & kFieldMask, nth = (w >> 10) & kFieldMask;
      if (next >= nth) return false;
      if (word_.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel, std::memory_order_acquire)) {
        *tid = static_cast<int>(next);
        return true;
      }
    }
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      workers_.emplace_back([this] { worker_loop(); });
      workers_.back().detach();  // the pool lives until the process exits
    }
  }

  void wait_done(int nth) {
    auto deadline = std::chrono::steady_clock::now() + spin_time();
    for (int i = 0;; ++i) {
      if (done_.load(std::memory_order_acquire) == nth) return;
      cpu_relax();
      if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
    }
    std::unique_lock<std::mutex> lk(mu_);
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    cv_done_.wait(lk, [&] { return done_.load(std::memory_order_seq_cst) == nth; });
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }

  void worker_loop() {
    uint64_t seen = 0;  // generation last looked at
    for (;;) {
      // Spin briefly for the next job, then sleep.
      auto deadline = std::chrono::steady_clock::now() + spin_time();
      bool got = false;
      for (int i = 0;; ++i) {
        if (gen_of(word_.load(std::memory_order_acquire)) != seen) {
          got = true;
          break;
        }
        cpu_relax();
        if ((i & 255) == 255 && std::chrono::steady_clock::now() > deadline) break;
      }
      if (!got) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_work_.wait(lk, [&] { return gen_of(word_.load(std::memory_order_seq_cst)) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
      }
      const uint64_t w = word_.load(std::memory_order_acquire);
      seen = gen_of(w);
      const int nth = static_cast<int>((w >> 10) & kFieldMask);
      int tid;
      while (claim(seen, &tid)) {
        fn_(ctx_, tid, nth);  // fn_/ctx_ stay valid: the caller waits for this tid before the next job
        if (done_.fetch_add(1, std::memory_order_seq_cst) + 1 == nth &&
            caller_sleeping_.load(std::memory_order_seq_cst)) {
          std::lock_guard<std::mutex> lk(mu_);
          cv_done_.notify_one();
        }
      }
    }
  }

  std::mutex run_mu_;  // one job at a time
  std::mutex mu_;      // guards sleeping/waking only
  std::condition_variable cv_work_, cv_done_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> word_{0};
  std::atomic<int> done_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeping_{false};
  TaskFn fn_ = nullptr;
  void* ctx_ = nullptr;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may still be parked in it at exit
  return *p;
}

}  // namespace

int pool_spin_us() { return g_spin_us.load(std::memory_order_relaxed); }
void set_pool_spin_us(int us) { g_spin_us.store(us, std::memory_order_relaxed); }

void pool_run(int nth, TaskFn fn, void* ctx) {
  if (nth <= 1) {
    fn(ctx, 0, 1);
    return;
  }
  if (nth > 256) nth = 256;
  pool().run(nth, fn, ctx);
}

}  // namespace rg
