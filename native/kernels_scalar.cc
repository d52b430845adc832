// The kernels of kernels_impl.h compiled for scalar.
// Everything lives in namespace rg_scalar, so no symbol is shared with the other instruction sets.

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"

namespace rg_scalar {
using rg::i64;
#define RG_ISA_NAME "scalar"
#include "simd_scalar.h"
#include "kernels_impl.h"
}  // namespace rg_scalar

const rg::KernelTable* rg::table_scalar() { return &rg_scalar::kTable; }
