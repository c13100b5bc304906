// The bf16 matmul of the avx512 and avx512bf16 paths (kernels.h: MatmulBlockFn, MatmulRowsFn).
// Compiled with AVX512_BF16 (matmul_avx512bf16.cc), vdpbf16ps does a k pair in one
// instruction; without (matmul_avx512.cc), bf16 -> fp32 by shifting and two FMAs per k pair.
// Include inside a path namespace only, after vec_kernels_avx512-inl.h: every path gets its
// own copy, compiled with its own ISA flags.
//
// Where batch-16 decode is compute-bound (no AMX: notes/cpu-avx512bf16.md), the kernel must
// keep the dot units fed while B streams from memory:
//   - K runs in chunks of kChunkTiles k-tiles (nb KiB of B each, <= 32 KiB: it stays in L1 for
//     every row tile of the chunk);
//   - within a chunk, each register tile of R rows x NB blocks keeps its accumulators in
//     registers for the whole chunk (C is touched once per chunk, not once per k-tile), and
//     per k pair loads NB B vectors and broadcasts R A pairs for R x NB dot instructions;
//   - the next chunk's B is prefetched under the current chunk's math, one line per k pair,
//     past the end of the call too (the worker's next column group follows in memory);
//   - matmul_rows runs a prefill panel of up to 128 rows chunk by chunk, so a chunk of B is
//     loaded once for all of its row tiles.
// Every output accumulates in k order, one dot per k pair, whatever the tile shape or the row
// count: a row's result does not depend on the rows computed with it (batch invariance).
//
// The choice is the preprocessor's, on the ISA flags (as in vec_kernels_avx512-inl.h): the
// same choice by `if constexpr` on a constant changed GCC 12's register allocation of the
// vdpbf16ps loops (a dead mask vector), and the generated code is to stay as measured.

// Measured in one process against 4 and 16 k-tiles, prefetcht1, and 2 chunks ahead
// (docs/PERFORMANCE.md): 8 k-tiles, prefetcht0, one chunk ahead streamed fastest.
constexpr size_t kChunkTiles = 8;
constexpr size_t kAheadChunks = 1;
constexpr size_t kLine = 64;

// Software prefetch spread over the k pairs of a call: the lines of [next, b_end), then of
// [ext, ext_end) (attention's next KV page), per_step lines at each k pair.
struct Prefetcher {
  const char* next = nullptr;
  const char* b_end = nullptr;
  const char* ext = nullptr;
  const char* ext_end = nullptr;
  size_t per_step = 0;

  void Step() {
    for (size_t i = 0; i < per_step; ++i) {
      if (next < b_end) {
        _mm_prefetch(next, _MM_HINT_T0);
        next += kLine;
      } else if (ext < ext_end) {
        _mm_prefetch(ext, _MM_HINT_T1);
        ext += kLine;
      } else {
        return;
      }
    }
  }
};

// Whether the nb blocks are one group of a TileOrder (packed weights, KV pages): then k-tiles
// [t0, t1) of all of them are one linear range, which the kernel prefetches a chunk ahead.
static inline bool OneGroup(const BBlock* b, size_t nb) {
  for (size_t j = 0; j < nb; ++j) {
    if (b[j].data != b[0].data + j * TileOrder::kTileElems ||
        b[j].ktile_stride != nb * TileOrder::kTileElems || b[j].row_stride != kTileK) {
      return false;
    }
  }
  return true;
}

// Accumulators of R rows x NB blocks over k-tiles [t0, t1); first: start from zero, else from
// c. The prefetcher and the B pointers live in locals, so the k-pair loop keeps them in
// registers (through the references, GCC reloaded and stored them every k pair: the loop was
// bound by its scalar instructions, not by the dot units).
template <size_t R, size_t NB>
static inline void TileChunk(const bf16* a, size_t lda, const BBlock* b, size_t t0, size_t t1,
                             float* c, size_t ldc, bool first, Prefetcher& prefetcher) {
  Prefetcher pf = prefetcher;
  __m512 acc[R][NB];
  for (size_t r = 0; r < R; ++r) {
    for (size_t j = 0; j < NB; ++j) {
      acc[r][j] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * ldc + j * kTileN);
    }
  }
  size_t row_stride[NB];
  for (size_t j = 0; j < NB; ++j) row_stride[j] = b[j].row_stride;
#ifndef __AVX512BF16__
  const __m512i hi_mask = _mm512_set1_epi32(static_cast<int>(0xffff0000u));
#endif
  for (size_t t = t0; t < t1; ++t) {
    const bf16* a_tile = a + t * kTileK;
    const bf16* b_tile[NB];
    for (size_t j = 0; j < NB; ++j) b_tile[j] = b[j].data + t * b[j].ktile_stride;
    for (size_t kp = 0; kp < kTileK / 2; ++kp) {
      pf.Step();
      __m512i bv[NB];
      for (size_t j = 0; j < NB; ++j) bv[j] = _mm512_loadu_si512(b_tile[j] + kp * row_stride[j]);
#ifndef __AVX512BF16__
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
#ifdef __AVX512BF16__
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
  prefetcher = pf;
}

// One chunk of k-tiles for a row tile of R rows over the nb blocks, NB blocks at a time:
// R x NB accumulators, NB B vectors and a broadcast A pair fit the 32 zmm registers; 8 rows
// x 4 blocks run as two passes of 8 x 2. (16 rows as 6 + 6 + 4 rows of 6 x 4 tiles, fewer
// loads per dot, streamed the 14B LM head shape 9% slower than as 8 + 8: docs/PERFORMANCE.md.)
template <size_t R>
static inline void RowTileChunk(const bf16* a, size_t lda, const BBlock* b, size_t nb, size_t t0,
                                size_t t1, float* c, size_t ldc, bool first, Prefetcher& pf) {
  switch (nb) {
    case 1:
      return TileChunk<R, 1>(a, lda, b, t0, t1, c, ldc, first, pf);
    case 2:
      return TileChunk<R, 2>(a, lda, b, t0, t1, c, ldc, first, pf);
    case 3:
      return TileChunk<R, 3>(a, lda, b, t0, t1, c, ldc, first, pf);
    default:
      if constexpr (R <= 6) {  // R x 4 accumulators + 4 B vectors + 1 A pair <= 32
        return TileChunk<R, 4>(a, lda, b, t0, t1, c, ldc, first, pf);
      } else {
        TileChunk<R, 2>(a, lda, b, t0, t1, c, ldc, first, pf);
        return TileChunk<R, 2>(a, lda, b + 2, t0, t1, c + 2 * kTileN, ldc, first, pf);
      }
  }
}

// Rows in tiles of 8; the last one of 8, 6, 5, 4, 2 or 1 rows, the smallest that covers the
// rest (a 14B GQA group is 5 rows: an 8-row tile wasted 3/8 of its dots). A tile may run past
// `rows` into the 16 readable rows of a; those rows of c are unspecified.
static inline size_t RowTile(size_t rest) {
  return rest >= 7 ? 8 : rest >= 5 ? rest : rest >= 3 ? 4 : rest;
}

// Register tiles a chunk runs for `rows` rows over nb blocks (prefetch pacing).
static inline size_t TilesPerChunk(size_t rows, size_t nb) {
  size_t tiles = 0;
  for (size_t r0 = 0; r0 < rows; r0 += RowTile(rows - r0))
    tiles += RowTile(rows - r0) == 8 && nb == 4 ? 2 : 1;
  return tiles;
}

// Any number of rows: each chunk of B is loaded into L1 once for all row tiles (the prefetch
// of the next chunk is spread over all of them).
static void MatmulAnyRows(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                          size_t nb, float* c, size_t ldc, const void* prefetch,
                          size_t prefetch_bytes) {
  const size_t col_passes = TilesPerChunk(rows, nb);
  // With a caller's range (attention: the next KV page) the caller paces the stream; prefetching
  // past this page as well cost the 14B b16 attention stage ~25% (8.1-8.4 vs 10.8-11.1 ms).
  const bool group = prefetch == nullptr && OneGroup(b, nb);
  const size_t ktile_bytes = nb * TileOrder::kTileElems * sizeof(bf16);
  Prefetcher pf;
  if (prefetch != nullptr) {
    pf.ext = static_cast<const char*>(prefetch);
    pf.ext_end = pf.ext + prefetch_bytes;
  }
  // Lines per k pair: a chunk's worth of B over a chunk's k pairs, plus the external range
  // over the whole call.
  const size_t chunk_steps = std::min(k_tiles, kChunkTiles) * (kTileK / 2) * col_passes;
  const size_t steps = k_tiles * (kTileK / 2) * col_passes;
  pf.per_step = (group ? (kChunkTiles * ktile_bytes / kLine + chunk_steps - 1) / chunk_steps : 0) +
                (prefetch_bytes / kLine + steps - 1) / steps;
  const char* b0 = reinterpret_cast<const char*>(b[0].data);
  for (size_t t0 = 0; t0 < k_tiles; t0 += kChunkTiles) {
    const size_t t1 = std::min(k_tiles, t0 + kChunkTiles);
    if (group) {
      // kAheadChunks chunks ahead, past the end of the call too: prefetches never fault, and
      // after a group of packed weights comes the next group, the worker's next call.
      pf.next = b0 + (t0 + kAheadChunks * kChunkTiles) * ktile_bytes;
      pf.b_end = pf.next + kChunkTiles * ktile_bytes;
    }
    for (size_t r0 = 0; r0 < rows;) {
      const size_t rt = RowTile(rows - r0);
      const bf16* ar = a + r0 * lda;
      float* cr = c + r0 * ldc;
      switch (rt) {
        case 8:
          RowTileChunk<8>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
          break;
        case 6:
          RowTileChunk<6>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
          break;
        case 5:
          RowTileChunk<5>(ar, lda, b, nb, t0, t1, cr, ldc, t0 == 0, pf);
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

static void MatmulBlock(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                        size_t nb, float* c, size_t ldc, const void* prefetch,
                        size_t prefetch_bytes) {
  QW_ASSERT(rows >= 1 && rows <= kTileM && nb >= 1 && nb <= kMaxBlocksPerCall && k_tiles >= 1);
  MatmulAnyRows(a, lda, rows, k_tiles, b, nb, c, ldc, prefetch, prefetch_bytes);
}

static void MatmulRows(const bf16* a, size_t lda, size_t rows, size_t k_tiles, const BBlock* b,
                       size_t nb, float* c, size_t ldc) {
  QW_ASSERT(rows >= 1 && rows <= kMaxPanelRows && nb >= 1 && nb <= kMaxBlocksPerCall &&
            k_tiles >= 1);
  MatmulAnyRows(a, lda, rows, k_tiles, b, nb, c, ldc, nullptr, 0);
}
