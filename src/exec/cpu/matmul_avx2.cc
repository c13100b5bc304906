// The AVX2 path (compiled with -mavx2 -mfma): bf16 -> fp32 by shifting, FMA. One 16-column
// block at a time, 4 rows x 16 columns of accumulators, C kept in L1 across k-tiles. Its vec
// kernels are in vec_kernels_avx2-inl.h.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "exec/cpu/cpu_path_symbols.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace avx2 {

#include "exec/cpu/vec_kernels-inl.h"
#include "exec/cpu/vec_kernels_avx2-inl.h"

// Compute-bound at batch 16 (notes/cpu-amx.md): the prefetch hint would not change its speed.
static void MatmulBlock(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                        size_t nb, float* c, size_t ldc, const void*, size_t) {
  QW_ASSERT(rows >= 1 && rows <= kTileM && nb >= 1 && nb <= kMaxBlocksPerCall && k_tiles >= 1);
  const __m256i hi_mask = _mm256_set1_epi32(static_cast<int>(0xffff0000u));
  const size_t row_end = (rows + 3) / 4 * 4;  // whole 4-row chunks; a has 16 readable rows
  for (size_t m = 0; m < row_end; ++m) {
    for (size_t n = 0; n < nb * kTileN; ++n) c[m * ldc + n] = 0.0f;
  }
  for (size_t j = 0; j < nb; ++j) {
    for (size_t t = 0; t < k_tiles; ++t) {
      const bf16* tile = b[j].data + t * b[j].ktile_stride;
      const bf16* a_tile = a + t * kTileK;
      for (size_t m0 = 0; m0 < row_end; m0 += 4) {
        __m256 acc[4][2];
        for (int r = 0; r < 4; ++r) {
          acc[r][0] = _mm256_loadu_ps(c + (m0 + r) * ldc + j * kTileN);
          acc[r][1] = _mm256_loadu_ps(c + (m0 + r) * ldc + j * kTileN + 8);
        }
        for (size_t kp = 0; kp < kTileK / 2; ++kp) {
          const bf16* row = tile + kp * b[j].row_stride;
          const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row));
          const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 16));
          const __m256 b0e = _mm256_castsi256_ps(_mm256_slli_epi32(b0, 16));
          const __m256 b0o = _mm256_castsi256_ps(_mm256_and_si256(b0, hi_mask));
          const __m256 b1e = _mm256_castsi256_ps(_mm256_slli_epi32(b1, 16));
          const __m256 b1o = _mm256_castsi256_ps(_mm256_and_si256(b1, hi_mask));
          for (int r = 0; r < 4; ++r) {
            uint32_t pair;
            __builtin_memcpy(&pair, a_tile + (m0 + r) * lda + kp * 2, sizeof(pair));
            const __m256i ap = _mm256_set1_epi32(static_cast<int>(pair));
            const __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(ap, 16));
            const __m256 ao = _mm256_castsi256_ps(_mm256_and_si256(ap, hi_mask));
            acc[r][0] = _mm256_fmadd_ps(ae, b0e, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ae, b1e, acc[r][1]);
            acc[r][0] = _mm256_fmadd_ps(ao, b0o, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(ao, b1o, acc[r][1]);
          }
        }
        for (int r = 0; r < 4; ++r) {
          _mm256_storeu_ps(c + (m0 + r) * ldc + j * kTileN, acc[r][0]);
          _mm256_storeu_ps(c + (m0 + r) * ldc + j * kTileN + 8, acc[r][1]);
        }
      }
    }
  }
}

// A template instance's address is not a constant under -fsanitize (it may be weak): a
// static wrapper keeps the table checkable by Complete().
static void MatmulRows(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                       size_t nb, float* c, size_t ldc) {
  MatmulRowsByTiles<MatmulBlock>(a, lda, rows, k_tiles, b, nb, c, ldc);
}

}  // namespace avx2

// The int8 kernel (another file): a static wrapper keeps the table checkable by Complete()
// under -fsanitize, where another file's function address is not a constant.
static void QMatmul(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  QMatmulAvx2(a, rows, b, c, ldc);
}

extern const CpuKernels kKernelsAvx2 = Complete({.path = CpuPath::kAvx2,
                                       .matmul_block = avx2::MatmulBlock,
                                       .matmul_rows = avx2::MatmulRows,
                                       .qmatmul = QMatmul,
                                       .quantize_row = avx2::QuantizeRow,
                                       .quantize_scaled_row = avx2::QuantizeScaledRow,
                                       .softmax_tile = avx2::SoftmaxTileAvx2,
                                       .silu_mul = avx2::SiluMulAvx2,
                                       .rms_norm_bf16 = avx2::RmsNormBf16,
                                       .rms_norm_f32 = avx2::RmsNormF32,
                                       .head_norm_rope = avx2::HeadNormRope,
                                       .cast_bf16 = avx2::CastBf16});

}  // namespace qwen3::cpu
