// The int8 kernels of each path (CpuKernels::qmatmul, kernels.h), declared for the tables:
// the AMX path runs the VNNI one (AMX int8 tiles are not used yet: docs/ARCHITECTURE.md).
#pragma once

#include "base/error.h"
#include "exec/cpu/kernels.h"

namespace qwen3::cpu {

void QMatmulScalar(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc);
void QMatmulAvx2(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc);
void QMatmulAvx512(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc);
void QMatmulAvx512Vnni(const QuantRows& a, size_t rows, const QuantGroup& b, float* c,
                       size_t ldc);

// Shared by every path: the preconditions, and where a sub-block's pieces are.
inline void CheckQuantOperands(size_t rows, const QuantGroup& b) {
  const bool k_ok = b.scales != QuantScales::kK ||
                    (b.bits == 4 && b.sub == 32 && b.offset == 0) ||  // Q4_K
                    (b.bits == 6 && b.sub == 16 && b.offset != 0);    // Q6_K
  QW_ASSERT(rows >= 1 && rows <= kMaxPanelRows && b.nb >= 1 && b.nb <= kMaxBlocksPerCall &&
            b.subs >= 1 && (b.bits == 4 || b.bits == 8 || (b.bits == 6 && b.sub == 16)) &&
            (b.sub == 16 || b.sub == 32) &&
            !(b.bits == 4 && b.sub == 16) && k_ok &&
            (b.scales == QuantScales::kF16) == (b.offset != 0 && b.sub == 32 && b.scales != QuantScales::kK) &&
            (b.scales != QuantScales::kK || b.subs % (kQuantSuperWeights / b.sub) == 0));
}
inline size_t QuantCodeBytes(const QuantGroup& b) { return b.sub * kTileN * b.bits / 8; }
inline size_t QuantRecordBytes(const QuantGroup& b) {
  return b.nb * (QuantCodeBytes(b) + QuantScaleBytes(b.scales, b.offset));
}
// Sub-blocks per super-block, its bytes, and where sub-block s's super-block (its header) and
// record start, from the group's data. Without a header (kF32, kF16) records simply follow.
inline size_t QuantSuperSubs(const QuantGroup& b) { return kQuantSuperWeights / b.sub; }
inline size_t QuantSuperBytes(const QuantGroup& b) {
  return QuantSuperSubs(b) * QuantRecordBytes(b) + b.nb * QuantHeaderBytes(b.scales, b.offset);
}
inline size_t QuantHeaderOffset(const QuantGroup& b, size_t s) {
  return s / QuantSuperSubs(b) * QuantSuperBytes(b);
}
inline size_t QuantRecordOffset(const QuantGroup& b, size_t s) {
  return QuantHeaderOffset(b, s) + b.nb * QuantHeaderBytes(b.scales, b.offset) +
         s % QuantSuperSubs(b) * QuantRecordBytes(b);
}
// Row r's scale of its 16 codes h (h counts from the row's start), and the bias term of
// sub-block s.
inline float QuantRowScale(const QuantRows& a, size_t r, size_t h) {
  return a.scale[r * a.ld16 + h];
}
// The integer offset term of 16 codes h of row r (kernels.h): -offset * their sum.
inline int32_t QuantRowOffsetDot(const QuantRows& a, size_t r, size_t h, uint32_t offset) {
  return -static_cast<int32_t>(offset) * a.sum16[r * a.ld16 + h];
}
inline float QuantRowBias(const QuantRows& a, size_t r, size_t s, uint32_t sub) {
  return sub == 32 ? a.bias32[r * a.ld32 + s] : a.bias16[r * a.ld16 + s];
}

}  // namespace qwen3::cpu
