// The AVX-512 paths. avx512bf16: vdpbf16ps does a k pair in one instruction. avx512: bf16 ->
// fp32 by shifting, two FMAs per k pair. This file is compiled twice: with QW_AVX512_BF16 (and
// -mavx512bf16) and without.
//
// Where batch-16 decode is compute-bound (no AMX: notes/cpu-avx512bf16.md), the kernel must
// keep the dot units fed while B streams from memory:
//   - K runs in chunks of kChunkTiles k-tiles (nb KiB of B each, <= 32 KiB: it stays in L1 for
//     every row tile of the chunk);
//   - within a chunk, each register tile of R rows x NB blocks keeps its accumulators in
//     registers for the whole chunk (C is touched once per chunk, not once per k-tile), and
//     per k pair loads NB B vectors and broadcasts R A pairs for R x NB dot instructions;
//   - the next chunk's B is prefetched under the current chunk's math, one line per k pair.
// Every output accumulates in k order, one dot per k pair, whatever the tile shape or the row
// count: a row's result does not depend on the rows computed with it (batch invariance).
#include <immintrin.h>

#include <algorithm>

#include "base/error.h"
#include "kernels/cpu/kernels.h"

namespace qwen3::cpu {
#ifdef QW_AVX512_BF16
namespace avx512bf16 {
#else
namespace avx512 {
#endif

#include "kernels/cpu/vec_kernels_avx512-inl.h"

#ifndef QW_TUNE_CHUNK
constexpr size_t kChunkTiles = 8;
#else
constexpr size_t kChunkTiles = QW_TUNE_CHUNK;
#endif
#ifndef QW_TUNE_HINT
#define QW_TUNE_HINT _MM_HINT_T0
#endif
constexpr size_t kLine = 64;
constexpr size_t kLinesPerTile = kTileK / 2;  // a 1 KiB tile: 16 rows of 64 bytes

// Software prefetch spread over the k pairs of a call: `lines` lines, `per_step` at each step.
// Tiles of B are 16 rows at row_stride; the external range (attention's next KV page) is linear.
struct Prefetcher {
  // The B tiles of k-tiles [t0, t1) of blocks b[0, nb).
  const BBlock* b = nullptr;
  size_t nb = 0, t0 = 0, tiles = 0, next_tile = 0;
  // [ext, ext + ext_lines * 64)
  const char* ext = nullptr;
  size_t ext_lines = 0, ext_next = 0;
  size_t per_step = 1;

  void Step() {
    for (size_t i = 0; i < per_step; ++i) {
      if (next_tile < tiles * kLinesPerTile) {
        const size_t tile = next_tile / kLinesPerTile, row = next_tile % kLinesPerTile;
        const BBlock& bb = b[tile % nb];
        _mm_prefetch(reinterpret_cast<const char*>(bb.data + (t0 + tile / nb) * bb.ktile_stride +
                                                   row * bb.row_stride),
                     QW_TUNE_HINT);
        ++next_tile;
      } else if (ext_next < ext_lines) {
        _mm_prefetch(ext + ext_next++ * kLine, _MM_HINT_T1);
      } else {
        return;
      }
    }
  }
};

// Accumulators of R rows x NB blocks over k-tiles [t0, t1); first: start from zero, else from c.
template <size_t R, size_t NB>
static inline void TileChunk(const bf16* a, size_t lda, const BBlock* b, size_t t0, size_t t1,
                             float* c, size_t ldc, bool first, Prefetcher& pf) {
  __m512 acc[R][NB];
  for (size_t r = 0; r < R; ++r) {
    for (size_t j = 0; j < NB; ++j) {
      acc[r][j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * ldc + j * kTileN);
    }
  }
#ifndef QW_AVX512_BF16
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
#endif
  for (size_t t = t0; t < t1; ++t) {
    const bf16* a_tile = a + t * kTileK;
    for (size_t kp = 0; kp < kTileK / 2; ++kp) {
      pf.Step();
      __m512i bv[NB];
      for (size_t j = 0; j < NB; ++j) {
        bv[j] = _mm512_loadu_si512(b[j].data + t * b[j].ktile_stride + kp * b[j].row_stride);
      }
#ifndef QW_AVX512_BF16
      __m512 be[NB], bo[NB];
      for (size_t j = 0; j < NB; ++j) {
        be[j] = _mm512_castsi512_ps(_mm512_slli_epi32(bv[j], 16));
        bo[j] = _mm512_castsi512_ps(_mm512_and_si512(bv[j], hi_mask));
      }
#endif
      for (size_t r = 0; r < R; ++r) {
        uint32_t pair;
        __builtin_memcpy(&pair, a_tile + r * lda + kp * 2, sizeof(pair));
        const __m512i ap = _mm512_set1_epi32(static_cast<int>(pair));
#ifdef QW_AVX512_BF16
        for (size_t j = 0; j < NB; ++j) {
          acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)ap, (__m512bh)bv[j]);
        }
#else
        const __m512 ae = _mm512_castsi512_ps(_mm512_slli_epi32(ap, 16));
        const __m512 ao = _mm512_castsi512_ps(_mm512_and_si512(ap, hi_mask));
        for (size_t j = 0; j < NB; ++j) {
          acc[r][j] = _mm512_fmadd_ps(ae, be[j], acc[r][j]);
          acc[r][j] = _mm512_fmadd_ps(ao, bo[j], acc[r][j]);
        }
#endif
      }
    }
  }
  for (size_t r = 0; r < R; ++r) {
    for (size_t j = 0; j < NB; ++j) _mm512_storeu_ps(c + r * ldc + j * kTileN, acc[r][j]);
  }
}

// One chunk of k-tiles for a row tile of R rows over all nb blocks, NB blocks at a time:
// R x NB accumulators plus NB B vectors fit the 32 zmm registers (R = 8: NB <= 3).
template <size_t R>
static inline void RowTileChunk(const bf16* a, size_t lda, const BBlock* b, size_t nb, size_t t0,
                                size_t t1, float* c, size_t ldc, bool first, Prefetcher& pf) {
  if constexpr (R <= 4) {
    switch (nb) {
      case 1:
        return TileChunk<R, 1>(a, lda, b, t0, t1, c, ldc, first, pf);
      case 2:
        return TileChunk<R, 2>(a, lda, b, t0, t1, c, ldc, first, pf);
      case 3:
        return TileChunk<R, 3>(a, lda, b, t0, t1, c, ldc, first, pf);
      default:
        return TileChunk<R, 4>(a, lda, b, t0, t1, c, ldc, first, pf);
    }
  } else {
    switch (nb) {
      case 1:
        return TileChunk<R, 1>(a, lda, b, t0, t1, c, ldc, first, pf);
      case 2:
        return TileChunk<R, 2>(a, lda, b, t0, t1, c, ldc, first, pf);
      case 3:
        return TileChunk<R, 3>(a, lda, b, t0, t1, c, ldc, first, pf);
      default:
        TileChunk<R, 2>(a, lda, b, t0, t1, c, ldc, first, pf);
        return TileChunk<R, 2>(a, lda, b + 2, t0, t1, c + 2 * kTileN, ldc, first, pf);
    }
  }
}

// Rows in tiles of 8, the last one of 8, 4, 2 or 1 rows (the smallest that covers the rest).
static inline size_t RowTile(size_t rest) {
  return rest >= 5 ? 8 : rest >= 3 ? 4 : rest;
}

static void MatmulBlock(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                        size_t nb, float* c, size_t ldc, const void* prefetch,
                        size_t prefetch_bytes) {
  QW_ASSERT(rows >= 1 && rows <= kTileM && nb >= 1 && nb <= kMaxBlocksPerCall && k_tiles >= 1);
  size_t col_passes = 0;  // register tiles per chunk
  for (size_t r0 = 0; r0 < rows; r0 += RowTile(rows - r0)) {
    col_passes += RowTile(rows - r0) == 8 && nb == 4 ? 2 : 1;
  }
  Prefetcher pf;
  pf.b = b;
  pf.nb = nb;
  pf.ext = static_cast<const char*>(prefetch);
  pf.ext_lines = prefetch ? prefetch_bytes / kLine : 0;
  // Steps (k pairs) over the whole call, to spread the external range evenly.
  const size_t steps = k_tiles * (kTileK / 2) * col_passes;
  const size_t b_lines_per_chunk = nb * kChunkTiles * kLinesPerTile;
  const size_t chunk_steps = std::min(k_tiles, kChunkTiles) * (kTileK / 2) * col_passes;
  pf.per_step = (b_lines_per_chunk + chunk_steps - 1) / chunk_steps +
                (pf.ext_lines + steps - 1) / steps;
  for (size_t t0 = 0; t0 < k_tiles; t0 += kChunkTiles) {
    const size_t t1 = std::min(k_tiles, t0 + kChunkTiles);
    pf.t0 = t1;  // the next chunk's tiles
    pf.tiles = (std::min(k_tiles, t1 + kChunkTiles) - t1) * nb;
    pf.next_tile = 0;
    for (size_t r0 = 0; r0 < rows;) {
      const size_t rt = RowTile(rows - r0);
      const bf16* ar = a + r0 * lda;
      float* cr = c + r0 * ldc;
      switch (rt) {
        case 8:
          RowTileChunk<8>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
          break;
        case 4:
          RowTileChunk<4>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
          break;
        case 2:
          RowTileChunk<2>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
          break;
        default:
          RowTileChunk<1>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
          break;
      }
      r0 += rt;
    }
  }
}

}  // namespace avx512 / avx512bf16

#ifdef QW_AVX512_BF16
extern const CpuKernels kKernelsAvx512Bf16 = Complete({.path = CpuPath::kAvx512Bf16,
                                       .matmul_block = avx512bf16::MatmulBlock,
                                       .softmax_tile = avx512bf16::SoftmaxTile,
                                       .silu_mul = avx512bf16::SiluMul,
                                       .rms_norm_bf16 = avx512bf16::RmsNormBf16,
                                       .rms_norm_f32 = avx512bf16::RmsNormF32,
                                       .head_norm_rope = avx512bf16::HeadNormRope,
                                       .cast_bf16 = avx512bf16::CastBf16});
#else
extern const CpuKernels kKernelsAvx512 = Complete({.path = CpuPath::kAvx512,
                                       .matmul_block = avx512::MatmulBlock,
                                       .softmax_tile = avx512::SoftmaxTile,
                                       .silu_mul = avx512::SiluMul,
                                       .rms_norm_bf16 = avx512::RmsNormBf16,
                                       .rms_norm_f32 = avx512::RmsNormF32,
                                       .head_norm_rope = avx512::HeadNormRope,
                                       .cast_bf16 = avx512::CastBf16});
#endif

}  // namespace qwen3::cpu
