// The avx512 path (AVX-512 F/BW/VL/DQ, no AVX512_BF16): the bf16 matmul of matmul_avx512-inl.h
// with bf16 -> fp32 by shifting and two FMAs per k pair, the vec kernels of
// vec_kernels_avx512-inl.h.
#include <immintrin.h>

#include <algorithm>

#include "base/error.h"
#include "exec/cpu/cpu_path_symbols.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace avx512 {

#include "exec/cpu/vec_kernels_avx512-inl.h"
#include "exec/cpu/matmul_avx512-inl.h"

}  // namespace avx512

// The int8 kernel (qmatmul_avx512.cc): a static wrapper keeps the table checkable by
// Complete() under -fsanitize, where another file's function address is not a constant.
static void QMatmul(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  QMatmulAvx512(a, rows, b, c, ldc);
}

extern const CpuKernels kKernelsAvx512 = Complete({.path = CpuPath::kAvx512,
                                                   .matmul_block = avx512::MatmulBlock,
                                                   .matmul_rows = avx512::MatmulRows,
                                                   .qmatmul = QMatmul,
                                                   .quantize_row = avx512::QuantizeRow,
                                                   .quantize_scaled_row = avx512::QuantizeScaledRow,
                                                   .softmax_tile = avx512::SoftmaxTile,
                                                   .silu_mul = avx512::SiluMul,
                                                   .rms_norm_bf16 = avx512::RmsNormBf16,
                                                   .rms_norm_f32 = avx512::RmsNormF32,
                                                   .head_norm_rope = avx512::HeadNormRope,
                                                   .cast_bf16 = avx512::CastBf16});

}  // namespace qwen3::cpu
