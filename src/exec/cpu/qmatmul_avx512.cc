// The int8 kernel of the avx512 path: qmatmul_avx512-inl.h with vpmaddubsw + vpmaddwd on
// nibbles (4-bit products stay inside int16; 8-bit codes run as two nibble halves).
#include <immintrin.h>

#include <algorithm>

#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace {

inline __m512i Dot4(__m512i acc, __m512i u, __m512i x) {  // u <= 15: |pair sums| < 2^15
  const __m512i pairs = _mm512_maddubs_epi16(u, x);
  return _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
}
inline __m512i Dot8(__m512i acc, __m512i u, __m512i x) {  // u = 16 hi + lo
  const __m512i nib = _mm512_set1_epi8(0x0f);
  const __m512i lo = _mm512_and_si512(u, nib);
  const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(u, 4), nib);
  const __m512i ones = _mm512_set1_epi16(1);
  const __m512i plo = _mm512_madd_epi16(_mm512_maddubs_epi16(lo, x), ones);
  const __m512i phi = _mm512_madd_epi16(_mm512_maddubs_epi16(hi, x), ones);
  return _mm512_add_epi32(acc, _mm512_add_epi32(plo, _mm512_slli_epi32(phi, 4)));
}

#include "exec/cpu/qmatmul_avx512-inl.h"

}  // namespace

// The Run instance per format. (Here, not in the -inl.h: behind one more inline function GCC
// 12 inlined the Run instances differently, and the code is to stay as measured.)
void QMatmulAvx512(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
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
