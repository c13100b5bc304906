#include "exec/cpu/kv_cache_q8.h"

#include "base/error.h"
#include "exec/cpu/kv_cache.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

PagedKvCacheQ8::PagedKvCacheQ8(size_t num_blocks, size_t kv_heads, size_t head_dim,
                               size_t block_size)
    : num_blocks_(num_blocks), kv_heads_(kv_heads), layout_{block_size, head_dim} {
  CheckKvShape(num_blocks, head_dim, block_size);
  // Zeroed and untouched until written: a page's codes and scales are written token by token.
  k_ = AlignedBuffer<uint8_t>(num_blocks * kv_heads * layout_.KPageBytes());
  v_ = AlignedBuffer<uint8_t>(num_blocks * kv_heads * layout_.VPageBytes());
}

void PagedKvCacheQ8::Write(size_t slot, size_t kv_head, const bf16* k, const bf16* v) {
  QW_DASSERT(slot < num_slots() && kv_head < kv_heads_);
  const size_t bs = layout_.block_size;
  layout_.WriteK(MutableKPage(slot / bs, kv_head), slot % bs, k);
  layout_.WriteV(MutableVPage(slot / bs, kv_head), slot % bs, v);
}

float PagedKvCacheQ8::KAt(size_t slot, size_t kv_head, size_t d) const {
  const size_t bs = layout_.block_size;
  return layout_.KAt(KPage(slot / bs, kv_head), slot % bs, d);
}

float PagedKvCacheQ8::VAt(size_t slot, size_t kv_head, size_t d) const {
  const size_t bs = layout_.block_size;
  return layout_.VAt(VPage(slot / bs, kv_head), slot % bs, d);
}

void PagedKvCacheQ8::ImportSeedLayout(const bf16* k_rows, const bf16* v_rows, ThreadPool& pool) {
  const size_t bs = layout_.block_size, dim = layout_.head_dim;
  pool.Spmd(num_blocks_ * kv_heads_, [&](size_t page, size_t) {  // page: the seed's order
    const size_t block = page / kv_heads_, head = page % kv_heads_;
    for (size_t t = 0; t < bs; ++t) {
      const size_t row = (page * bs + t) * dim;
      Write(block * bs + t, head, k_rows + row, v_rows + row);
    }
  });
}

void PagedKvCacheQ8::ExportSeedLayout(bf16* k_rows, bf16* v_rows) const {
  const size_t bs = layout_.block_size, dim = layout_.head_dim;
  for (size_t page = 0; page < num_blocks_ * kv_heads_; ++page) {  // page: the seed's order
    const size_t block = page / kv_heads_, head = page % kv_heads_;
    for (size_t t = 0; t < bs; ++t) {
      const size_t row = (page * bs + t) * dim;
      for (size_t d = 0; d < dim; ++d) {
        k_rows[row + d] = F32ToBf16(KAt(block * bs + t, head, d));
        v_rows[row + d] = F32ToBf16(VAt(block * bs + t, head, d));
      }
    }
  }
}

}  // namespace qwen3::cpu
