// The kernels of kernels_impl.h compiled for avx512 (this file gets -mavx512f -mavx512dq -mavx512bw -mavx512vl -mfma).
// Everything lives in namespace rg_avx512, so no symbol is shared with the other instruction sets.
// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized on their own _mm512_undefined_* (GCC PR105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"

namespace rg_avx512 {
using rg::i64;
#define RG_ISA_NAME "avx512"
#include "simd_avx512.h"
#include "kernels_impl.h"
}  // namespace rg_avx512

const rg::KernelTable* rg::table_avx512() { return &rg_avx512::kTable; }
