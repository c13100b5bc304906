// The AVX-512 paths. avx512: bf16 -> fp32 by shifting, two FMAs per k pair. avx512bf16:
// vdpbf16ps does the pair in one instruction. Both keep a 4-row x (nb x 16)-column
// accumulator block in registers per k-tile and the whole C block in L1 across k-tiles, so
// each k-tile of B (nb KiB) is loaded from memory once and reused for all 16 rows.
// This file is compiled twice: with QW_AVX512_BF16 (and -mavx512bf16) and without.
#include <immintrin.h>

#include "kernels/cpu/kernels.h"

namespace qwen3::cpu {
#ifdef QW_AVX512_BF16
namespace avx512bf16 {
#else
namespace avx512 {
#endif

#include "kernels/cpu/vec_kernels_avx512-inl.h"

template <size_t NB>
static void MatmulBlockN(const bf16* a, size_t lda, size_t row_end, size_t k_tiles, const BBlock* b,
                         float* c, size_t ldc) {
  for (size_t m = 0; m < row_end; ++m) {
    for (size_t j = 0; j < NB; ++j) _mm512_storeu_ps(c + m * ldc + j * kTileN, _mm512_setzero_ps());
  }
#ifndef QW_AVX512_BF16
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
#endif
  for (size_t t = 0; t < k_tiles; ++t) {
    const bf16* a_tile = a + t * kTileK;
    for (size_t m0 = 0; m0 < row_end; m0 += 4) {
      __m512 acc[4][NB];
      for (size_t r = 0; r < 4; ++r) {
        for (size_t j = 0; j < NB; ++j)
          acc[r][j] = _mm512_loadu_ps(c + (m0 + r) * ldc + j * kTileN);
      }
      for (size_t kp = 0; kp < kTileK / 2; ++kp) {
        __m512i bv[NB];
        for (size_t j = 0; j < NB; ++j) {
          bv[j] = _mm512_loadu_si512(b[j].data + t * b[j].ktile_stride + kp * b[j].row_stride);
        }
#ifndef QW_AVX512_BF16
        __m512 be[NB], bo[NB];
        for (size_t j = 0; j < NB; ++j) {
          be[j] = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, bv[j], 16));
          bo[j] = _mm512_castsi512_ps(_mm512_and_si512(bv[j], hi_mask));
        }
#endif
        for (size_t r = 0; r < 4; ++r) {
          uint32_t pair;
          __builtin_memcpy(&pair, a_tile + (m0 + r) * lda + kp * 2, sizeof(pair));
          const __m512i ap = _mm512_set1_epi32(static_cast<int>(pair));
#ifdef QW_AVX512_BF16
          for (size_t j = 0; j < NB; ++j) {
            acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)ap, (__m512bh)bv[j]);
          }
#else
          const __m512 ae = _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, ap, 16));
          const __m512 ao = _mm512_castsi512_ps(_mm512_and_si512(ap, hi_mask));
          for (size_t j = 0; j < NB; ++j) {
            acc[r][j] = _mm512_fmadd_ps(ae, be[j], acc[r][j]);
            acc[r][j] = _mm512_fmadd_ps(ao, bo[j], acc[r][j]);
          }
#endif
        }
      }
      for (size_t r = 0; r < 4; ++r) {
        for (size_t j = 0; j < NB; ++j)
          _mm512_storeu_ps(c + (m0 + r) * ldc + j * kTileN, acc[r][j]);
      }
    }
  }
}

// Compute-bound at batch 16 (notes/cpu-amx.md): the prefetch hint would not change its speed.
static void MatmulBlock(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                        size_t nb, float* c, size_t ldc, const void*, size_t) {
  const size_t row_end = (rows + 3) / 4 * 4;  // whole 4-row chunks; a has 16 readable rows
  switch (nb) {
    case 1:
      return MatmulBlockN<1>(a, lda, row_end, k_tiles, b, c, ldc);
    case 2:
      return MatmulBlockN<2>(a, lda, row_end, k_tiles, b, c, ldc);
    case 3:
      return MatmulBlockN<3>(a, lda, row_end, k_tiles, b, c, ldc);
    default:
      return MatmulBlockN<4>(a, lda, row_end, k_tiles, b, c, ldc);
  }
}

}  // namespace avx512 / avx512bf16

#ifdef QW_AVX512_BF16
extern const CpuKernels kKernelsAvx512Bf16 = {CpuPath::kAvx512Bf16, avx512bf16::MatmulBlock,
                                              avx512bf16::SoftmaxTile, avx512bf16::SiluMul,
                                              avx512bf16::RmsNormBf16, avx512bf16::RmsNormF32,
                                              avx512bf16::HeadNormRope, avx512bf16::CastBf16};
#else
extern const CpuKernels kKernelsAvx512 = {CpuPath::kAvx512, avx512::MatmulBlock,
                                          avx512::SoftmaxTile, avx512::SiluMul,
                                          avx512::RmsNormBf16, avx512::RmsNormF32,
                                          avx512::HeadNormRope, avx512::CastBf16};
#endif

}  // namespace qwen3::cpu
