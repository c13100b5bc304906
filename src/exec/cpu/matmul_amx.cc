// The AMX "cube" path: tdpbf16ps on 16x32 A tiles and 16x16x2 VNNI B tiles, up to four 16x16
// fp32 C tiles accumulated per K sweep (tmm0-3), A in tmm4, B in tmm5-7. B streams straight
// from memory (packed weights are laid out so each block's k-tiles are contiguous).
// Tiles are configured once per thread (palette 1, all 16 rows x 64 bytes); the process must
// have been granted XTILEDATA (GetCpuFeatures() asks before this path is ever selected).
#include <immintrin.h>

#include <algorithm>

#include "base/error.h"
#include "exec/cpu/amx_tile_config.h"
#include "exec/cpu/cpu_path_symbols.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/qmatmul.h"

namespace qwen3::cpu {
namespace amx {

#include "exec/cpu/vec_kernels_avx512-inl.h"

// C (tmm0-3) and A (tmm4) have `rows` rows, B (tmm5-7) 16. The configuration is reloaded
// when the row count changes (the attention's query group vs a 16-row batch tile), or when
// another AMX user (oneDNN, the benchmark's peer) may have changed it: InvalidateTileConfigs().
static void EnsureTilesConfigured(size_t rows) {
  thread_local uint64_t configured_epoch = 0;
  thread_local size_t configured_rows = 0;
  const uint64_t epoch = TileConfigEpoch();
  if (configured_epoch == epoch && configured_rows == rows) return;
  AmxTileConfig cfg = {};
  cfg.palette_id = 1;
  for (int i = 0; i < 8; ++i) {
    cfg.rows[i] = static_cast<uint8_t>(i < 5 ? rows : 16);
    cfg.colsb[i] = 64;
  }
  _tile_loadconfig(&cfg);
  configured_epoch = epoch;
  configured_rows = rows;
}

// Software prefetch of the B tiles two k-steps ahead, into L2. Measured on this machine kind
// (tools/qwen3-bench, alternating variants in one process): the LM head streams at ~1.2x the
// rate of the same kernel without it; 1, 2 or 4 tiles ahead and L1 vs L2 are within noise.
constexpr size_t kPrefetchTiles = 2;
// A prefetch per 64-byte line of the range: one per 128 bytes (leaving the other half to the
// adjacent-line prefetcher) streamed the next KV page ~10% slower (qwen3-attention-bench, from
// memory: 5.1-5.3 vs 5.6-6.0 us per page) and the 0.6B model's b16 step 1-3 points lower
// (qwen3-bench --model, alternating steps).
constexpr size_t kPrefetchLine = 64;

static inline void PrefetchTile(const bf16* tile, size_t row_stride) {
  const char* p = reinterpret_cast<const char*>(tile);
  for (size_t row = 0; row < kTileK / 2; ++row) {
    _mm_prefetch(p + row * row_stride * sizeof(bf16), _MM_HINT_T1);
  }
}

template <size_t NB>
static void MatmulBlockN(const bf16* a, size_t lda, size_t k_tiles, const BBlock* b, float* c,
                         size_t ldc, const char* prefetch, size_t prefetch_lines) {
  const size_t lines_per_step = (prefetch_lines + k_tiles - 1) / k_tiles;
  const size_t a_stride = lda * sizeof(bf16);
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (NB > 2) _tile_zero(2);
  if constexpr (NB > 3) _tile_zero(3);
  for (size_t t = 0; t < k_tiles; ++t) {
    if (t + kPrefetchTiles < k_tiles) {
      for (size_t j = 0; j < NB; ++j) {
        PrefetchTile(b[j].data + (t + kPrefetchTiles) * b[j].ktile_stride, b[j].row_stride);
      }
    }
    for (size_t i = t * lines_per_step; i < std::min(prefetch_lines, (t + 1) * lines_per_step);
         ++i) {
      _mm_prefetch(prefetch + i * kPrefetchLine, _MM_HINT_T1);
    }
    _tile_loadd(4, a + t * kTileK, a_stride);
    _tile_loadd(5, b[0].data + t * b[0].ktile_stride, b[0].row_stride * sizeof(bf16));
    _tile_dpbf16ps(0, 4, 5);
    if constexpr (NB > 1) {
      _tile_loadd(6, b[1].data + t * b[1].ktile_stride, b[1].row_stride * sizeof(bf16));
      _tile_dpbf16ps(1, 4, 6);
    }
    if constexpr (NB > 2) {
      _tile_loadd(7, b[2].data + t * b[2].ktile_stride, b[2].row_stride * sizeof(bf16));
      _tile_dpbf16ps(2, 4, 7);
    }
    if constexpr (NB > 3) {
      _tile_loadd(5, b[3].data + t * b[3].ktile_stride, b[3].row_stride * sizeof(bf16));
      _tile_dpbf16ps(3, 4, 5);
    }
  }
  const size_t c_stride = ldc * sizeof(float);
  _tile_stored(0, c, c_stride);
  if constexpr (NB > 1) _tile_stored(1, c + kTileN, c_stride);
  if constexpr (NB > 2) _tile_stored(2, c + 2 * kTileN, c_stride);
  if constexpr (NB > 3) _tile_stored(3, c + 3 * kTileN, c_stride);
}

static void MatmulBlock(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                        size_t nb, float* c, size_t ldc, const void* prefetch,
                        size_t prefetch_bytes) {
  QW_ASSERT(rows >= 1 && rows <= kTileM && nb >= 1 && nb <= kMaxBlocksPerCall && k_tiles >= 1);
  EnsureTilesConfigured(rows);
  const char* pf = static_cast<const char*>(prefetch);
  const size_t lines = prefetch_bytes / kPrefetchLine;
  switch (nb) {
    case 1:
      return MatmulBlockN<1>(a, lda, k_tiles, b, c, ldc, pf, lines);
    case 2:
      return MatmulBlockN<2>(a, lda, k_tiles, b, c, ldc, pf, lines);
    case 3:
      return MatmulBlockN<3>(a, lda, k_tiles, b, c, ldc, pf, lines);
    default:
      return MatmulBlockN<4>(a, lda, k_tiles, b, c, ldc, pf, lines);
  }
}

// A template instance's address is not a constant under -fsanitize (it may be weak): a
// static wrapper keeps the table checkable by Complete().
static void MatmulRows(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                       size_t nb, float* c, size_t ldc) {
  MatmulRowsByTiles<MatmulBlock>(a, lda, rows, k_tiles, b, nb, c, ldc);
}

}  // namespace amx

// The int8 kernel (another file): a static wrapper keeps the table checkable by Complete()
// under -fsanitize, where another file's function address is not a constant.
static void QMatmul(const QuantRows& a, size_t rows, const QuantGroup& b, float* c, size_t ldc) {
  QMatmulAvx512Vnni(a, rows, b, c, ldc);
}

extern const CpuKernels kKernelsAmx = Complete({.path = CpuPath::kAmx,
                                                .matmul_block = amx::MatmulBlock,
                                                .matmul_rows = amx::MatmulRows,
                                                .qmatmul = QMatmul,
                                                .quantize_row = amx::QuantizeRow,
                                                .quantize_scaled_row = amx::QuantizeScaledRow,
                                                .softmax_tile = amx::SoftmaxTile,
                                                .silu_mul = amx::SiluMul,
                                                .rms_norm_bf16 = amx::RmsNormBf16,
                                                .rms_norm_f32 = amx::RmsNormF32,
                                                .head_norm_rope = amx::HeadNormRope,
                                                .cast_bf16 = amx::CastBf16});

}  // namespace qwen3::cpu
