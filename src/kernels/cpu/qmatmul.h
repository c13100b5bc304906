// The int8 kernels of each path (CpuKernels::qmatmul, kernels.h), declared for the tables:
// the AMX path runs the VNNI one (AMX int8 tiles are not used yet: docs/ARCHITECTURE.md).
#pragma once

#include "base/error.h"
#include "kernels/cpu/kernels.h"

namespace qwen3::cpu {

void QMatmulScalar(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc);
void QMatmulAvx2(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc);
void QMatmulAvx512(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc);
void QMatmulAvx512Vnni(const QuantRows& a, size_t rows, const QuantGroup& b, float* c,
                       size_t ldc);

// Shared by every path: the preconditions, and where a sub-block's pieces are.
inline void CheckQuantOperands(size_t rows, const QuantGroup& b) {
  QW_ASSERT(rows >= 1 && rows <= kMaxPanelRows && b.nb >= 1 && b.nb <= kMaxBlocksPerCall &&
            b.subs >= 1 && (b.bits == 4 || b.bits == 8) && (b.sub == 16 || b.sub == 32) &&
            !(b.bits == 4 && b.sub == 16));
}
inline size_t QuantCodeBytes(const QuantGroup& b) { return b.sub * kTileN * b.bits / 8; }
inline size_t QuantRecordBytes(const QuantGroup& b) {
  return b.nb * (QuantCodeBytes(b) + 2 * kTileN * sizeof(float));
}
// The code sum of sub-block s of row r, and its scale.
inline int32_t QuantRowSum(const QuantRows& a, size_t r, size_t s, uint32_t sub) {
  const int32_t* p = a.sum16 + r * a.ld_sum;
  return sub == 32 ? p[2 * s] + p[2 * s + 1] : p[s];
}
inline float QuantRowScale(const QuantRows& a, size_t r, size_t s, uint32_t sub) {
  return a.scale[r * a.ld_scale + s * sub / 32];
}

}  // namespace qwen3::cpu
