// Projections with their epilogues fused (DESIGN.md "Fuse where the data is hot"): the
// microkernel leaves a 16 x (nb * 16) fp32 block in a small L1 buffer (the CPU's L0C), and
// the epilogue (residual add, SiLU.up, bf16 cast) consumes it before the next block is
// computed. No full-size fp32 scratch is ever written between a matmul and its epilogue.
#pragma once

#include <algorithm>
#include <cstddef>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/packed_matrix.h"

namespace qwen3::cpu {

constexpr size_t kGroupCols = kTileN * kMaxBlocksPerCall;  // 64 columns per call

// Columns [j0 * 16, (j0 + nb) * 16) of a . w for each 16-row tile of a (rows [0, rows), padded
// to a multiple of 16 with readable rows): epi(row0, tile_rows, c, ldc) with c[r][col - j0*16].
template <typename Epilogue>
void MatmulGroup(const CpuKernels& kernels, const bf16* a, size_t lda, size_t rows,
                 const PackedMatrix& w, size_t j0, size_t nb, Epilogue&& epi) {
  alignas(64) float c[kTileM * kGroupCols];
  BBlock b[kMaxBlocksPerCall];
  for (size_t j = 0; j < nb; ++j) b[j] = w.Block(j0 + j);
  for (size_t row0 = 0; row0 < rows; row0 += kTileM) {
    const size_t tile_rows = std::min(kTileM, rows - row0);
    kernels.matmul_block(a + row0 * lda, lda, tile_rows, w.k_tiles(), b, nb, c, kGroupCols, nullptr,
                         0);
    epi(row0, tile_rows, c, kGroupCols);
  }
}

}  // namespace qwen3::cpu
