// Projections with their epilogues fused (DESIGN.md "Fuse where the data is hot"): the
// microkernel leaves a 16 x (nb * 16) fp32 block in a small L1 buffer (the CPU's L0C), and
// the epilogue (residual add, SiLU.up, bf16 cast) consumes it before the next block is
// computed. No full-size fp32 scratch is ever written between a matmul and its epilogue.
#pragma once

#include <algorithm>
#include <cstddef>

#include "base/error.h"

#include "exec/cpu/kernels.h"
#include "exec/cpu/packed_matrix.h"
#include "exec/cpu/weight_matrix.h"

namespace qwen3::cpu {

constexpr size_t kGroupCols = kTileN * kMaxBlocksPerCall;  // 64 columns per call

// A projection runs as one dispatch over w's groups of up to 64 columns (4 blocks).
inline size_t Groups(const WeightMatrix& w) {
  return (w.n_blocks() + kMaxBlocksPerCall - 1) / kMaxBlocksPerCall;
}

// Column group g of w: its first block and block count, first column and valid columns.
struct ColumnGroup {
  size_t j0, nb, col0, cols;
};
inline ColumnGroup GroupOf(const WeightMatrix& w, size_t g) {
  const size_t j0 = g * kMaxBlocksPerCall, nb = std::min(kMaxBlocksPerCall, w.n_blocks() - j0);
  const size_t col0 = j0 * kTileN;
  return {j0, nb, col0, std::min(nb * kTileN, w.n() - col0)};
}

// Columns [j0 * 16, (j0 + nb) * 16) of a . w for each 16-row tile of a (rows [0, rows), padded
// to a multiple of 16 with readable rows): epi(row0, tile_rows, c, ldc) with c[r][col - j0*16].
// Up to 16 rows (decode) run as one matmul_block; more (prefill) as panels of up to
// kMaxPanelRows rows through matmul_rows, which loads each chunk of the group's B once per
// panel rather than once per 16-row tile. The rows' results are the same bits either way.
template <typename Epilogue>
void MatmulGroup(const CpuKernels& kernels, const bf16* a, size_t lda, size_t rows,
                 const PackedMatrix& w, size_t j0, size_t nb, Epilogue&& epi) {
  BBlock b[kMaxBlocksPerCall];
  for (size_t j = 0; j < nb; ++j) b[j] = w.Block(j0 + j);
  if (rows <= kTileM) {
    alignas(64) float c[kTileM * kGroupCols];
    kernels.matmul_block(a, lda, rows, w.k_tiles(), b, nb, c, kGroupCols, nullptr, 0);
    epi(0, rows, c, kGroupCols);
    return;
  }
  alignas(64) float c[kMaxPanelRows * kGroupCols];  // 32 KiB: stays in L1/L2 with its epilogue
  for (size_t p0 = 0; p0 < rows; p0 += kMaxPanelRows) {
    const size_t panel = std::min(kMaxPanelRows, rows - p0);
    kernels.matmul_rows(a + p0 * lda, lda, panel, w.k_tiles(), b, nb, c, kGroupCols);
    for (size_t r0 = 0; r0 < panel; r0 += kTileM) {
      epi(p0 + r0, std::min(kTileM, panel - r0), c + r0 * kGroupCols, kGroupCols);
    }
  }
}

// The A operand of a projection: bf16 rows, and for quantized weights the same rows quantized
// (quant_rows.h; null when every weight of the stage is bf16).
struct MatmulInput {
  const bf16* a;
  size_t lda;
  const QuantRows* q;
};

// x's rows from row0 on (the same rows' quantized form too).
inline MatmulInput RowsFrom(const MatmulInput& x, size_t row0, QuantRows& q) {
  if (x.q == nullptr) return {x.a + row0 * x.lda, x.lda, nullptr};
  q = *x.q;
  q.q += row0 * q.ldq;
  q.scale += row0 * q.ld16;
  q.bias16 += row0 * q.ld16;
  q.sum16 += row0 * q.ld16;
  q.bias32 += row0 * q.ld32;
  return {x.a + row0 * x.lda, x.lda, &q};
}

// MatmulGroup for a weight of any type: quantized weights run the int8 kernel on x.q, in
// panels of up to kMaxPanelRows rows, the epilogue on each 16-row tile.
template <typename Epilogue>
void MatmulGroup(const CpuKernels& kernels, const MatmulInput& x, size_t rows,
                 const WeightMatrix& w, size_t j0, size_t nb, Epilogue&& epi) {
  if (!w.quantized()) return MatmulGroup(kernels, x.a, x.lda, rows, w.bf16(), j0, nb, epi);
  QW_ASSERT(x.q != nullptr);
  const QuantGroup g = w.quant().Group(j0, nb);
  alignas(64) float c[kMaxPanelRows * kGroupCols];
  for (size_t p0 = 0; p0 < rows; p0 += kMaxPanelRows) {
    const size_t panel = std::min(kMaxPanelRows, rows - p0);
    QuantRows shifted;
    kernels.qmatmul(*RowsFrom(x, p0, shifted).q, panel, g, c, kGroupCols);
    for (size_t r0 = 0; r0 < panel; r0 += kTileM) {
      epi(p0 + r0, std::min(kTileM, panel - r0), c + r0 * kGroupCols, kGroupCols);
    }
  }
}

// gate and up interleaved in one matrix (PackedMatrix::FromInOutInterleaved): the C block of
// each 64-column group holds 32 gate columns, then the up columns of the same 32 outputs, so
// one K loop feeds both; mlp[r][g * 32 + i] = bf16(silu(gate) * up) in the epilogue, for
// column group g of w.
inline void GateUpGroup(const CpuKernels& k, const MatmulInput& x, size_t rows,
                        const WeightMatrix& w, size_t g, bf16* mlp, size_t inter) {
  constexpr size_t kHalf = kTileK;       // 32 outputs per group
  const ColumnGroup cg = GroupOf(w, g);  // always 64 columns: n is a multiple of 64
  MatmulGroup(k, x, rows, w, cg.j0, cg.nb,
              [&](size_t row0, size_t tile_rows, const float* c, size_t ldc) {
                for (size_t r = 0; r < tile_rows; ++r) {
                  k.silu_mul(c + r * ldc, c + r * ldc + kHalf, kHalf,
                             mlp + (row0 + r) * inter + g * kHalf);
                }
              });
}

}  // namespace qwen3::cpu
