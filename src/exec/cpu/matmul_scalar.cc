// The scalar path: plain loops, the twin every other path is tested against.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "exec/cpu/cpu_path_symbols.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace scalar {

#include "exec/cpu/vec_kernels-inl.h"

static void MatmulBlock(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                        size_t nb, float* c, size_t ldc, const void*, size_t) {
  QW_ASSERT(rows >= 1 && rows <= kTileM && nb >= 1 && nb <= kMaxBlocksPerCall && k_tiles >= 1);
  for (size_t j = 0; j < nb; ++j) {
    for (size_t m = 0; m < rows; ++m) {
      for (size_t n = 0; n < kTileN; ++n) {
        float acc = 0.0f;
        for (size_t t = 0; t < k_tiles; ++t) {
          const bf16* tile = b[j].data + t * b[j].ktile_stride;
          for (size_t kp = 0; kp < kTileK / 2; ++kp) {
            for (size_t e = 0; e < 2; ++e) {
              const size_t k = t * kTileK + kp * 2 + e;
              acc += Bf16ToF32(a[m * lda + k]) * Bf16ToF32(tile[kp * b[j].row_stride + n * 2 + e]);
            }
          }
        }
        c[m * ldc + j * kTileN + n] = acc;
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

}  // namespace scalar

// The int8 kernel (another file): a static wrapper keeps the table checkable by Complete()
// under -fsanitize, where another file's function address is not a constant.
static void QMatmul(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  QMatmulScalar(a, rows, b, c, ldc);
}

extern const CpuKernels kKernelsScalar = Complete({.path = CpuPath::kScalar,
                                       .matmul_block = scalar::MatmulBlock,
                                       .matmul_rows = scalar::MatmulRows,
                                       .qmatmul = QMatmul,
                                       .quantize_row = scalar::QuantizeRow,
                                       .quantize_scaled_row = scalar::QuantizeScaledRow,
                                       .softmax_tile = scalar::SoftmaxTile,
                                       .silu_mul = scalar::SiluMul,
                                       .rms_norm_bf16 = scalar::RmsNormBf16,
                                       .rms_norm_f32 = scalar::RmsNormF32,
                                       .head_norm_rope = scalar::HeadNormRope,
                                       .cast_bf16 = scalar::CastBf16});

}  // namespace qwen3::cpu
