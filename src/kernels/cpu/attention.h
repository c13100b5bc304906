// Decode attention over the paged KV cache as the seed does it (spec §3 stages 5-6): split-KV
// partials, each loading a page's K and V once for all query heads of a GQA group, then an
// online-softmax merge of the partials.
#pragma once

#include <cstddef>

#include "base/bf16.h"
#include "kernels/cpu/kernels.h"

namespace qwen3::cpu {

constexpr size_t kMaxBlockSize = 256;
constexpr size_t kMaxHeadDim = 256;

// A page is one (KV block, KV head): block_size tokens x head_dim. It is stored as the cube's
// B operand of the product that reads it, in the same tile order as a PackedMatrix (1 KiB
// VNNI tiles, each 16-column block's k-tiles contiguous), rather than the seed's row-major
// [token][dim], so both products stream a page linearly:
//   K page = K^T as B of q.K^T: k = dim, n = token; block j = tokens [16j, 16j + 16)
//   V page = V   as B of P.V:   k = token, n = dim; block j = dims [16j, 16j + 16)
struct KvPageLayout {
  size_t block_size = 0;
  size_t head_dim = 0;

  static constexpr size_t kTileElems = kTileK * kTileN;
  size_t PageElems() const { return block_size * head_dim; }
  // Element (k, n) of a [k_dim, n] tile-packed operand.
  static size_t TileIndex(size_t k, size_t n, size_t k_dim) {
    return ((n / kTileN) * (k_dim / kTileK) + k / kTileK) * kTileElems +
           ((k % kTileK) / 2) * kTileK + (n % kTileN) * 2 + k % 2;
  }
  size_t KIndex(size_t t, size_t d) const { return TileIndex(d, t, head_dim); }
  size_t VIndex(size_t t, size_t d) const { return TileIndex(t, d, block_size); }
  BBlock KBlock(const bf16* page, size_t j) const {
    return {page + j * (head_dim / kTileK) * kTileElems, kTileElems, kTileK};
  }
  BBlock VBlock(const bf16* page, size_t j) const {
    return {page + j * (block_size / kTileK) * kTileElems, kTileElems, kTileK};
  }
};

// The partial of one query group (the `group` query heads of one KV head: rows of q_tile, a
// zero-padded [16][head_dim] bf16 tile) over the consecutive pages of one split. Per page:
// s = q.K^T (fp32), softmax numerator (kernels.softmax_tile), o = bf16(e).V; pages of the
// split are merged in order with stage 6's rule. The last page holds valid_last tokens.
// Outputs: o [group][head_dim] fp32 (unnormalized), m and l [group].
void AttentionPartial(const CpuKernels& kernels, const KvPageLayout& layout, const bf16* q_tile,
                      size_t group, const bf16* const* k_pages, const bf16* const* v_pages,
                      size_t num_pages, size_t valid_last, float scale, float* o, float* m,
                      float* l);

// Stage 6: merges num_parts partials in order (part i at o + i * o_stride, m/l + i * ml_stride)
// and writes bf16(o / l) as out[g * head_dim + d].
void AttentionMerge(const float* o, const float* m, const float* l, size_t num_parts,
                    size_t o_stride, size_t ml_stride, size_t group, size_t head_dim, bf16* out);

}  // namespace qwen3::cpu
