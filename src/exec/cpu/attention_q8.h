// Decode attention over a KV cache of 8-bit codes (--kv-type q8_0): the partials of
// attention.h with both products on the int8 kernel (CpuKernels::qmatmul), so every path's
// tested int8 dot serves them and a page costs about half the bytes of a bf16 one.
//
// A page is one (KV block, KV head), as for bf16, stored as the int8 kernel's B operand
// (QuantMatrix's Q8_0 layout, quant_matrix.h: codes u = q + 128, w = d (u - 128)):
//   K page = K^T, k = dim, n = token: per token and 32 dims a scale d (fp16), ggml's Q8_0
//            block of that token's K; token blocks of 16 in groups of 4.
//   V page = V, k = token, n = dim: each token's head_dim values quantized by Q8_0's rule with
//            ONE scale (fp32) for the token, [token] after the codes; the kernel's own
//            per-(dim, 32 tokens) scale is 1. Dim blocks of 16 in groups of 4.
// q.K^T quantizes the query rows as any int8 matmul's activations (quant_rows.h); P.V takes
// P' = p * vscale[t] quantized the same way (quantize_scaled_row). A scale per token rather
// than per 32 dims, because a scale that varies along k cannot be applied inside the kernel's
// k-sum: per-32-dim scales need P' quantized once per 32-dim block, which cost more than
// the whole bf16 page at GQA group 8 (docs/PERFORMANCE.md, "KV cache in 8 bits").
// Each row is quantized alone and every kernel accumulates in a fixed order, so a query's
// result is the same bits in any batch or query block (batch invariance).
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/bf16.h"
#include "exec/cpu/attention.h"
#include "exec/cpu/kernels.h"

namespace qwen3::cpu {

struct KvQ8Layout {
  static constexpr size_t kSub = 32;                            // weights per sub-block
  static constexpr size_t kCodeBytes = kSub * kTileN;           // one 16-column block's codes
  static constexpr size_t kScaleBytes = kTileN * sizeof(uint16_t);  // its fp16 scales
  static constexpr size_t kBlockRecord = kCodeBytes + kScaleBytes;
  static constexpr size_t kGroup = 4;  // 16-column blocks per group (K: tokens, V: dims)

  size_t block_size = 0;
  size_t head_dim = 0;  // the model's; pages hold padded_dim() (zero codes past head_dim)

  size_t padded_dim() const { return PaddedHeadDim(head_dim); }
  size_t dim_blocks() const { return padded_dim() / kSub; }  // 32-dim blocks of a token
  size_t token_subs() const { return block_size / kSub; }     // 32-token sub-blocks of a page
  size_t v_blocks() const { return padded_dim() / kTileN; }    // V's 16-dim column blocks
  size_t KPageBytes() const { return block_size / kTileN * dim_blocks() * kBlockRecord; }
  size_t VCodesBytes() const { return v_blocks() * token_subs() * kBlockRecord; }
  size_t VPageBytes() const { return VCodesBytes() + block_size * sizeof(float); }

  // The int8 kernel's operand over K's token blocks [j0, j0 + 4), and over V's dim blocks
  // [j0, j0 + 4) with `subs` 32-token sub-blocks (j0 a multiple of 4; a last group may be
  // smaller).
  QuantGroup KGroup(const uint8_t* page, size_t j0) const;
  QuantGroup VGroup(const uint8_t* page, size_t j0, size_t subs) const;
  // V's per-token scales: [block_size] fp32.
  const float* VScales(const uint8_t* page) const {
    return reinterpret_cast<const float*>(page + VCodesBytes());
  }

  // Stores token t's K or V (head_dim values; the padding quantizes as zeros) into a page.
  void WriteK(uint8_t* page, size_t t, const bf16* k) const;
  void WriteV(uint8_t* page, size_t t, const bf16* v) const;
  // The stored value, dequantized: d * (u - 128) in fp32.
  float KAt(const uint8_t* page, size_t t, size_t d) const;
  float VAt(const uint8_t* page, size_t t, size_t d) const;
};

// AttentionPartialQueries (attention.h) over pages of this layout, with the same arguments
// and contracts: rows qi * group + g of q_tile are head g of query qi; the split's pages are
// absolute pages [page0, page0 + num_pages); query qi sees lens[qi] tokens.
void AttentionPartialQueriesQ8(const CpuKernels& kernels, const KvQ8Layout& layout,
                               const bf16* q_tile, size_t lda, size_t group, size_t queries,
                               const size_t* lens, size_t page0, const uint8_t* const* k_pages,
                               const uint8_t* const* v_pages, size_t num_pages, float scale,
                               float* const* o, float* const* m, float* const* l);

}  // namespace qwen3::cpu
