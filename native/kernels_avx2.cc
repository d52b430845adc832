// The kernels of kernels_impl.h compiled for avx2 (this file gets -mavx2 -mfma).
// Everything lives in namespace rg_avx2, so no symbol is shared with the other instruction sets.
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"

namespace rg_avx2 {
using rg::i64;
#define RG_ISA_NAME "avx2"
#include "simd_avx2.h"
#include "kernels_impl.h"
}  // namespace rg_avx2

const rg::KernelTable* rg::table_avx2() { return &rg_avx2::kTable; }
