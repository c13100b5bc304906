// Decode attention over the paged KV cache as the seed does it (spec §3 stages 5-6): split-KV
// partials, each loading a page's K and V once for all query heads of a GQA group, then an
// online-softmax merge of the partials.
#pragma once

#include <cstddef>

#include "base/bf16.h"
#include "exec/cpu/kernels.h"

namespace qwen3::cpu {

constexpr size_t kMaxBlockSize = 256;
constexpr size_t kMaxHeadDim = 256;

// head_dim rounded up to whole k-tiles: q.K^T runs K in 32-dim tiles, so pages and q tiles
// carry zero lanes [head_dim, padded) that add nothing to a score (head_dim 48: 64 lanes).
constexpr size_t PaddedHeadDim(size_t head_dim) {
  return (head_dim + kTileK - 1) / kTileK * kTileK;
}

// A page is one (KV block, KV head): block_size tokens x head_dim. It is stored as the cube's
// B operand of the product that reads it, in TileOrder (kernels.h), rather than the seed's
// row-major [token][dim], so both products stream a page linearly:
//   K page = K^T as B of q.K^T: k = dim, n = token
//   V page = V   as B of P.V:   k = token, n = dim
// Both run over padded_dim() dims; lanes [head_dim, padded_dim()) are zero (pages start zeroed
// and only real dims are ever written) and never reach an output.
struct KvPageLayout {
  size_t block_size = 0;
  size_t head_dim = 0;  // the model's (real) head_dim

  size_t padded_dim() const { return PaddedHeadDim(head_dim); }
  size_t PageElems() const { return block_size * padded_dim(); }
  TileOrder KOrder() const { return {padded_dim() / kTileK, block_size / kTileN}; }
  TileOrder VOrder() const { return {block_size / kTileK, padded_dim() / kTileN}; }
  size_t KIndex(size_t t, size_t d) const { return KOrder().Index(d, t); }
  size_t VIndex(size_t t, size_t d) const { return VOrder().Index(t, d); }
  // 16-token column block j of K^T, and 16-dim column block j of V.
  BBlock KBlock(const bf16* page, size_t j) const { return KOrder().Block(page, j); }
  BBlock VBlock(const bf16* page, size_t j) const { return VOrder().Block(page, j); }
};

// The partial of one query group (the `group` query heads of one KV head: rows of q_tile, a
// [16][layout.padded_dim()] bf16 tile, zero in rows >= group and dims >= head_dim) over the
// consecutive pages of one split. Per page: s = q.K^T (fp32), softmax numerator
// (kernels.softmax_tile), o = bf16(e).V; pages of the split are merged in order with stage 6's
// rule. The last page holds valid_last tokens. Outputs: o [group][head_dim] fp32 (unnormalized,
// real dims only), m and l [group].
void AttentionPartial(const CpuKernels& kernels, const KvPageLayout& layout, const bf16* q_tile,
                      size_t group, const bf16* const* k_pages, const bf16* const* v_pages,
                      size_t num_pages, size_t valid_last, float scale, float* o, float* m,
                      float* l);

// The same for `queries` consecutive positions of one sequence at once (prefill: a query
// block), so each K/V page is loaded once for all of them: rows qi * group + g of q_tile
// (lda elements apart, padded_dim() of them read, zero past head_dim; queries * group <= 16,
// all 16 rows readable) are head g of query qi, which sees lens[qi] tokens of the sequence
// (causal: later tokens are masked for it). The split's pages are absolute pages [page0,
// page0 + num_pages). Query qi's partial goes to o[qi] [group][head_dim], m[qi], l[qi]
// (nullptr: the query has no tokens in this split). Every query's result is the same bits as
// AttentionPartial over its own tokens alone: masked tokens add exact zeros.
void AttentionPartialQueries(const CpuKernels& kernels, const KvPageLayout& layout,
                             const bf16* q_tile, size_t lda, size_t group, size_t queries,
                             const size_t* lens, size_t page0, const bf16* const* k_pages,
                             const bf16* const* v_pages, size_t num_pages, float scale,
                             float* const* o, float* const* m, float* const* l);

// The steps of one page that every KV type's partial shares (attention_q8.h too), for the
// page starting at token first_token (first: the split's first page) of a query block:
// the softmax numerator of each query's rows of the scores s ([rows][bs]) into p (a query
// without tokens here gets zero rows), its m and l into the query's own m/l on the first
// page, else into m_page/l_page; then o_page ([rows][pdim], P.V) copied or merged into o.
void AttentionPageSoftmax(const CpuKernels& kernels, const float* s, size_t bs, size_t group,
                          size_t queries, const size_t* lens, size_t first_token, bool first,
                          float scale, float* const* o, float* const* m, float* const* l,
                          float* m_page, float* l_page, bf16* p);
void AttentionPageMerge(const float* o_page, size_t pdim, size_t dim, size_t group,
                        size_t queries, const size_t* lens, size_t first_token, bool first,
                        float* const* o, float* const* m, float* const* l, const float* m_page,
                        const float* l_page);

// Stage 6: merges num_parts partials in order (part i at o + i * o_stride, m/l + i * ml_stride)
// and writes bf16(o / l) as out[g * head_dim + d].
void AttentionMerge(const float* o, const float* m, const float* l, size_t num_parts,
                    size_t o_stride, size_t ml_stride, size_t group, size_t head_dim, bf16* out);

}  // namespace qwen3::cpu
