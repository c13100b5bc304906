// The avx512bf16 path (avx512 + AVX512_BF16 and AVX512_VNNI): the bf16 matmul of
// matmul_avx512-inl.h with vdpbf16ps, a k pair per instruction; the vec kernels of
// vec_kernels_avx512-inl.h; the int8 kernel with vpdpbusd.
#include <immintrin.h>

#include <algorithm>

#include "base/error.h"
#include "exec/cpu/cpu_path_symbols.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/qmatmul.h"

#ifndef __AVX512BF16__
#error "matmul_avx512bf16.cc is compiled with -mavx512bf16 (CMakeLists.txt): its matmul is vdpbf16ps"
#endif

namespace qwen3::cpu {
namespace avx512bf16 {

#include "exec/cpu/vec_kernels_avx512-inl.h"
#include "exec/cpu/matmul_avx512-inl.h"

}  // namespace avx512bf16

// The int8 kernel (qmatmul_avx512vnni.cc): a static wrapper keeps the table checkable by
// Complete() under -fsanitize, where another file's function address is not a constant.
static void QMatmul(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  QMatmulAvx512Vnni(a, rows, b, c, ldc);
}

extern const CpuKernels kKernelsAvx512Bf16 = Complete({.path = CpuPath::kAvx512Bf16,
                                                       .matmul_block = avx512bf16::MatmulBlock,
                                                       .matmul_rows = avx512bf16::MatmulRows,
                                                       .qmatmul = QMatmul,
                                                       .quantize_row = avx512bf16::QuantizeRow,
                                                       .quantize_scaled_row = avx512bf16::QuantizeScaledRow,
                                                       .softmax_tile = avx512bf16::SoftmaxTile,
                                                       .silu_mul = avx512bf16::SiluMul,
                                                       .rms_norm_bf16 = avx512bf16::RmsNormBf16,
                                                       .rms_norm_f32 = avx512bf16::RmsNormF32,
                                                       .head_norm_rope = avx512bf16::HeadNormRope,
                                                       .cast_bf16 = avx512bf16::CastBf16});

}  // namespace qwen3::cpu
