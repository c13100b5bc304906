#include "exec/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"

namespace qwen3::cpu {

namespace {

// The online-softmax merge rule (spec §3 stage 6) of partial (o2, m2, l2) into (o, m, l):
// [group][head_dim] o, o2 rows o2_stride apart.
void AttentionMergeInto(float* o, float* m, float* l, const float* o2, const float* m2,
                        const float* l2, size_t group, size_t head_dim, size_t o2_stride) {
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
// prefetching next_page (nullptr: none) spread over the calls: pages are not adjacent in
// memory, so the hardware prefetchers cannot run ahead into the next one. The kernel is always
// handed a range, so it never prefetches past the page itself: those 4-k-tile calls spent as
// many prefetches on unrelated lines as on math (q.K^T 1985 -> 986 TSC ticks per 14B page).
template <typename BlockOf>
void MatmulColumns(const CpuKernels& kernels, const bf16* a, size_t lda, size_t rows,
                   size_t k_tiles, size_t blocks, BlockOf block_of, float* c, size_t ldc,
                   const bf16* next_page, size_t page_elems) {
  BBlock b[kMaxBlocksPerCall];
  const size_t calls = (blocks + kMaxBlocksPerCall - 1) / kMaxBlocksPerCall;
  const size_t share = next_page ? page_elems / calls : 0;
  const bf16* prefetch = next_page ? next_page : a;  // non-null: the caller paces the stream
  for (size_t j0 = 0, call = 0; j0 < blocks; j0 += kMaxBlocksPerCall, ++call) {
    const size_t nb = std::min(kMaxBlocksPerCall, blocks - j0);
    for (size_t j = 0; j < nb; ++j) b[j] = block_of(j0 + j);
    kernels.matmul_block(a, lda, rows, k_tiles, b, nb, c + j0 * kTileN, ldc,
                         prefetch + call * share, share * sizeof(bf16));
  }
}

}  // namespace

void AttentionPageSoftmax(const CpuKernels& kernels, const float* s, size_t bs, size_t group,
                          size_t queries, const size_t* lens, size_t first_token, bool first,
                          float scale, float* const* o, float* const* m, float* const* l,
                          float* m_page, float* l_page, bf16* p) {
  for (size_t qi = 0; qi < queries; ++qi) {
    const size_t own = lens[qi] > first_token ? std::min(bs, lens[qi] - first_token) : 0;
    bf16* pq = p + qi * group * bs;
    if (own == 0 || o[qi] == nullptr) {  // no tokens here: p stays zero, nothing merges
      std::memset(pq, 0, group * bs * sizeof(bf16));
      continue;
    }
    kernels.softmax_tile(s + qi * group * bs, bs, group, own, bs, scale, pq, bs,
                         first ? m[qi] : m_page + qi * group,
                         first ? l[qi] : l_page + qi * group);
  }
}

void AttentionPageMerge(const float* o_page, size_t pdim, size_t dim, size_t group,
                        size_t queries, const size_t* lens, size_t first_token, bool first,
                        float* const* o, float* const* m, float* const* l, const float* m_page,
                        const float* l_page) {
  for (size_t qi = 0; qi < queries; ++qi) {
    if (o[qi] == nullptr || lens[qi] <= first_token) continue;
    const float* oq = o_page + qi * group * pdim;  // padded columns are dropped
    if (first) {
      for (size_t g = 0; g < group; ++g) {
        std::memcpy(o[qi] + g * dim, oq + g * pdim, dim * sizeof(float));
      }
    } else {
      AttentionMergeInto(o[qi], m[qi], l[qi], oq, m_page + qi * group, l_page + qi * group,
                         group, dim, pdim);
    }
  }
}

void AttentionPartialQueries(const CpuKernels& kernels, const KvPageLayout& layout,
                             const bf16* q_tile, size_t lda, size_t group, size_t queries,
                             const size_t* lens, size_t page0, const bf16* const* k_pages,
                             const bf16* const* v_pages, size_t num_pages, float scale,
                             float* const* o, float* const* m, float* const* l) {
  const size_t bs = layout.block_size, dim = layout.head_dim, pdim = layout.padded_dim();
  const size_t rows = queries * group;
  QW_ASSERT(bs <= kMaxBlockSize && pdim <= kMaxHeadDim && queries >= 1 && rows <= kTileM &&
            num_pages > 0);
  alignas(64) float s[kTileM * kMaxBlockSize];
  alignas(64) bf16 p[kTileM * kMaxBlockSize];
  alignas(64) float o_page[kTileM * kMaxHeadDim];  // [16][pdim]: padded columns are dropped
  float m_page[kTileM], l_page[kTileM];
  // Rows >= rows of p feed padded output rows only, but must be finite.
  std::memset(p + rows * bs, 0, (kTileM - rows) * bs * sizeof(bf16));
  size_t longest = 0;
  for (size_t qi = 0; qi < queries; ++qi) longest = std::max(longest, lens[qi]);

  for (size_t i = 0; i < num_pages; ++i) {
    const size_t first_token = (page0 + i) * bs;
    const size_t valid = std::min(bs, longest - first_token);  // the longest query's
    const bool more = i + 1 < num_pages;  // then the next page streams in under this one
    MatmulColumns(
        kernels, q_tile, lda, rows, pdim / kTileK, (valid + kTileN - 1) / kTileN,
        [&](size_t j) { return layout.KBlock(k_pages[i], j); }, s, bs,
        more ? k_pages[i + 1] : nullptr, layout.PageElems());
    const bool first = i == 0;
    AttentionPageSoftmax(kernels, s, bs, group, queries, lens, first_token, first, scale, o, m, l,
                         m_page, l_page, p);
    MatmulColumns(
        kernels, p, bs, rows, (valid + kTileK - 1) / kTileK, pdim / kTileN,
        [&](size_t j) { return layout.VBlock(v_pages[i], j); }, o_page, pdim,
        more ? v_pages[i + 1] : nullptr, layout.PageElems());
    AttentionPageMerge(o_page, pdim, dim, group, queries, lens, first_token, first, o, m, l,
                       m_page, l_page);
  }
}

void AttentionPartial(const CpuKernels& kernels, const KvPageLayout& layout, const bf16* q_tile,
                      size_t group, const bf16* const* k_pages, const bf16* const* v_pages,
                      size_t num_pages, size_t valid_last, float scale, float* o, float* m,
                      float* l) {
  const size_t len = (num_pages - 1) * layout.block_size + valid_last;
  AttentionPartialQueries(kernels, layout, q_tile, layout.padded_dim(), group, 1, &len, 0, k_pages,
                          v_pages, num_pages, scale, &o, &m, &l);
}

void AttentionMerge(const float* o, const float* m, const float* l, size_t num_parts,
                    size_t o_stride, size_t ml_stride, size_t group, size_t head_dim, bf16* out) {
  QW_DASSERT(num_parts > 0 && group <= kTileM && head_dim <= kMaxHeadDim);
  float acc[kTileM * kMaxHeadDim], acc_m[kTileM], acc_l[kTileM];
  std::memcpy(acc, o, group * head_dim * sizeof(float));
  std::memcpy(acc_m, m, group * sizeof(float));
  std::memcpy(acc_l, l, group * sizeof(float));
  for (size_t i = 1; i < num_parts; ++i) {
    AttentionMergeInto(acc, acc_m, acc_l, o + i * o_stride, m + i * ml_stride, l + i * ml_stride, group,
              head_dim, head_dim);
  }
  for (size_t g = 0; g < group; ++g) {
    const float inv = 1.0f / acc_l[g];
    for (size_t d = 0; d < head_dim; ++d)
      out[g * head_dim + d] = F32ToBf16(acc[g * head_dim + d] * inv);
  }
}

}  // namespace qwen3::cpu
