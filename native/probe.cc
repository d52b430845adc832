// Run-time facts about the CPU for the kernels and the benchmarks: cache sizes (the GEMM's blocking,
// native/gemm_impl.h) and the measured FMA peak (bench/kernels.ts compares the GEMM with it).
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <chrono>

#include "kernels.h"

namespace rg {
namespace {

// Linux: /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size} ("32K", "1024K", "32M"); 0 if absent.
i64 sysfs_cache(int level) {
  for (int idx = 0; idx < 16; ++idx) {
    char path[96], buf[64];
    int lv = 0;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
    FILE* f = fopen(path, "r");
    if (!f) break;
    const bool got = fscanf(f, "%d", &lv) == 1;
    fclose(f);
    if (!got || lv != level) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", idx);
    if (!(f = fopen(path, "r"))) continue;
    const bool typed = fscanf(f, "%63s", buf) == 1;
    fclose(f);
    if (!typed || strcmp(buf, "Instruction") == 0) continue;
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
    if (!(f = fopen(path, "r"))) continue;
    long long n = 0;
    char unit = 0;
    const int fields = fscanf(f, "%lld%c", &n, &unit);
    fclose(f);
    if (fields < 1 || n <= 0) continue;
    if (fields == 2 && (unit == 'K' || unit == 'k')) n <<= 10;
    else if (fields == 2 && (unit == 'M' || unit == 'm')) n <<= 20;
    return n;
  }
  return 0;
}

i64 sysconf_cache(int level) {
#if defined(_SC_LEVEL1_DCACHE_SIZE) && defined(_SC_LEVEL2_CACHE_SIZE) && defined(_SC_LEVEL3_CACHE_SIZE)
  const long v = sysconf(level == 1 ? _SC_LEVEL1_DCACHE_SIZE : level == 2 ? _SC_LEVEL2_CACHE_SIZE
                                                                           : _SC_LEVEL3_CACHE_SIZE);
  return v > 0 ? v : 0;
#else
  (void)level;
  return 0;
#endif
}

i64 detect_cache(int level) {
  static const i64 fallback[4] = {0, 32 << 10, 512 << 10, 8 << 20};
  static const i64 lo[4] = {0, 16 << 10, 128 << 10, 1 << 20}, hi[4] = {0, 256 << 10, 16 << 20, i64{1} << 31};
  i64 v = sysfs_cache(level);
  if (v <= 0) v = sysconf_cache(level);
  if (v <= 0) v = fallback[level];
  return v < lo[level] ? lo[level] : v > hi[level] ? hi[level] : v;  // a nonsense value cannot wreck the blocking
}

}  // namespace

i64 cache_bytes(int level) {
  static const i64 sizes[4] = {0, detect_cache(1), detect_cache(2), detect_cache(3)};
  return sizes[level < 1 ? 1 : level > 3 ? 3 : level];
}

double fma_peak(const KernelTable* k, int nth, double seconds) {
  typedef std::chrono::steady_clock clock;
  // Calibrate on one thread until a run takes 2 ms, then one run of about `seconds` on nth threads.
  i64 iters = 1 << 12;
  double t = 0;
  for (;;) {
    const clock::time_point t0 = clock::now();
    k->fma_chains(1, iters);
    t = std::chrono::duration<double>(clock::now() - t0).count();
    if (t >= 2e-3 || iters >= (i64{1} << 40)) break;
    iters *= 4;
  }
  if (seconds > t) iters = static_cast<i64>(static_cast<double>(iters) * seconds / t);
  const clock::time_point t0 = clock::now();
  const double flops = k->fma_chains(nth, iters);
  return flops / std::chrono::duration<double>(clock::now() - t0).count() / 1e9;
}

}  // namespace rg
