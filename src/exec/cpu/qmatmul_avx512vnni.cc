// The int8 kernel of the avx512bf16 and amx paths: qmatmul_avx512-inl.h with vpdpbusd, one
// instruction per 4-k step (u8 codes x s8 activations -> int32).
#include <immintrin.h>

#include <algorithm>

#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace {

// u4 or u8 codes (unsigned) x s8 activations, 4 products per int32 lane.
inline __m512i Dot4(__m512i acc, __m512i u, __m512i x) { return _mm512_dpbusd_epi32(acc, u, x); }
inline __m512i Dot8(__m512i acc, __m512i u, __m512i x) { return _mm512_dpbusd_epi32(acc, u, x); }

#include "exec/cpu/qmatmul_avx512-inl.h"

}  // namespace

// The Run instance per format. (Here, not in the -inl.h: behind one more inline function GCC
// 12 inlined the Run instances differently, and the code is to stay as measured.)
void QMatmulAvx512Vnni(const QuantRows& a, size_t rows, const QuantGroup& b, float* c,
                       size_t ldc) {
  CheckQuantOperands(rows, b);
  using S = QuantScales;
  switch (b.scales) {
    case S::kF16:  // Q8_0, Q4_0
      return b.bits == 4 ? Run<4, 32, true, S::kF16>(a, rows, b, c, ldc)
                         : Run<8, 32, true, S::kF16>(a, rows, b, c, ldc);
    case S::kK:  // Q4_K, Q6_K
      return b.bits == 4 ? Run<4, 32, false, S::kK>(a, rows, b, c, ldc)
                         : Run<6, 16, true, S::kK>(a, rows, b, c, ldc);
    case S::kF32:  // a widened pair
      if (b.bits == 4) return Run<4, 32, false, S::kF32>(a, rows, b, c, ldc);
      if (b.sub == 32) return Run<8, 32, false, S::kF32>(a, rows, b, c, ldc);
      return Run<8, 16, false, S::kF32>(a, rows, b, c, ldc);
  }
}

}  // namespace qwen3::cpu
