#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"

namespace qwen3::cpu {
namespace {

// The online-softmax merge rule (spec §3 stage 6) of partial (o2, m2, l2) into (o, m, l).
void MergeInto(float* o, float* m, float* l, const float* o2, const float* m2, const float* l2,
               size_t group, size_t head_dim, size_t o2_stride) {
  for (size_t g = 0; g < group; ++g) {
    const float mn = std::max(m[g], m2[g]);
    const float a = std::exp(m[g] - mn), b = std::exp(m2[g] - mn);
    l[g] = a * l[g] + b * l2[g];
    m[g] = mn;
    float* og = o + g * head_dim;
    const float* o2g = o2 + g * o2_stride;
    for (size_t d = 0; d < head_dim; ++d) og[d] = og[d] * a + o2g[d] * b;
  }
}

// Runs matmul_block over column blocks [0, blocks) in calls of up to kMaxBlocksPerCall,
// prefetching [prefetch, prefetch + prefetch_elems) spread over the calls: pages are not
// adjacent in memory, so the hardware prefetchers cannot run ahead into the next one.
template <typename BlockOf>
void MatmulColumns(const CpuKernels& kernels, const bf16* a, size_t lda, size_t rows,
                   size_t k_tiles, size_t blocks, BlockOf block_of, float* c, size_t ldc,
                   const bf16* prefetch, size_t prefetch_elems) {
  BBlock b[kMaxBlocksPerCall];
  const size_t calls = (blocks + kMaxBlocksPerCall - 1) / kMaxBlocksPerCall;
  const size_t share = prefetch ? prefetch_elems / calls : 0;
  for (size_t j0 = 0, call = 0; j0 < blocks; j0 += kMaxBlocksPerCall, ++call) {
    const size_t nb = std::min(kMaxBlocksPerCall, blocks - j0);
    for (size_t j = 0; j < nb; ++j) b[j] = block_of(j0 + j);
    kernels.matmul_block(a, lda, rows, k_tiles, b, nb, c + j0 * kTileN, ldc,
                         prefetch ? prefetch + call * share : nullptr, share * sizeof(bf16));
  }
}

}  // namespace

void AttentionPartial(const CpuKernels& kernels, const KvPageLayout& layout, const bf16* q_tile,
                      size_t group, const bf16* const* k_pages, const bf16* const* v_pages,
                      size_t num_pages, size_t valid_last, float scale, float* o, float* m,
                      float* l) {
  const size_t bs = layout.block_size, dim = layout.head_dim, pdim = layout.padded_dim();
  QW_DASSERT(bs <= kMaxBlockSize && pdim <= kMaxHeadDim && group <= kTileM && num_pages > 0);
  alignas(64) float s[kTileM * kMaxBlockSize];
  alignas(64) bf16 p[kTileM * kMaxBlockSize];
  alignas(64) float o_page[kTileM * kMaxHeadDim];  // [16][pdim]: padded columns are dropped
  float m_page[kTileM], l_page[kTileM];
  // Rows >= group of p feed padded output rows only, but must be finite.
  std::memset(p + group * bs, 0, (kTileM - group) * bs * sizeof(bf16));

  for (size_t i = 0; i < num_pages; ++i) {
    const size_t valid = i + 1 == num_pages ? valid_last : bs;
    const bool more = i + 1 < num_pages;  // then the next page streams in under this one
    MatmulColumns(
        kernels, q_tile, pdim, group, pdim / kTileK, (valid + kTileN - 1) / kTileN,
        [&](size_t j) { return layout.KBlock(k_pages[i], j); }, s, bs,
        more ? k_pages[i + 1] : nullptr, layout.PageElems());
    const bool first = i == 0;
    kernels.softmax_tile(s, bs, group, valid, bs, scale, p, bs, first ? m : m_page,
                         first ? l : l_page);
    MatmulColumns(
        kernels, p, bs, group, (valid + kTileK - 1) / kTileK, pdim / kTileN,
        [&](size_t j) { return layout.VBlock(v_pages[i], j); }, o_page, pdim,
        more ? v_pages[i + 1] : nullptr, layout.PageElems());
    if (first) {
      for (size_t g = 0; g < group; ++g) std::memcpy(o + g * dim, o_page + g * pdim, dim * 4);
    } else {
      MergeInto(o, m, l, o_page, m_page, l_page, group, dim, pdim);
    }
  }
}

void AttentionMerge(const float* o, const float* m, const float* l, size_t num_parts,
                    size_t o_stride, size_t ml_stride, size_t group, size_t head_dim, bf16* out) {
  QW_DASSERT(num_parts > 0 && group <= kTileM && head_dim <= kMaxHeadDim);
  float acc[kTileM * kMaxHeadDim], acc_m[kTileM], acc_l[kTileM];
  std::memcpy(acc, o, group * head_dim * sizeof(float));
  std::memcpy(acc_m, m, group * sizeof(float));
  std::memcpy(acc_l, l, group * sizeof(float));
  for (size_t i = 1; i < num_parts; ++i) {
    MergeInto(acc, acc_m, acc_l, o + i * o_stride, m + i * ml_stride, l + i * ml_stride, group,
              head_dim, head_dim);
  }
  for (size_t g = 0; g < group; ++g) {
    const float inv = 1.0f / acc_l[g];
    for (size_t d = 0; d < head_dim; ++d)
      out[g * head_dim + d] = F32ToBf16(acc[g * head_dim + d] * inv);
  }
}

}  // namespace qwen3::cpu
