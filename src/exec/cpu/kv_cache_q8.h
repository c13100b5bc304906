// The paged KV cache of one layer in 8-bit codes (--kv-type q8_0): PagedKvCache's blocks,
// slots and [kv_head][block] page order, each page in attention_q8.h's layout (KvQ8Layout):
// a token's K as ggml Q8_0 blocks of 32 dims, its V with one scale: 0.54x the bytes of bf16.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/attention_q8.h"
#include "exec/executor.h"

namespace qwen3 {

class ThreadPool;

namespace cpu {

class PagedKvCacheQ8 final : public KvCache {
 public:
  // The same shapes as PagedKvCache (an Error names a bad one).
  PagedKvCacheQ8(size_t num_blocks, size_t kv_heads, size_t head_dim, size_t block_size);

  size_t num_blocks() const override { return num_blocks_; }
  size_t kv_heads() const override { return kv_heads_; }
  size_t head_dim() const override { return layout_.head_dim; }
  size_t block_size() const override { return layout_.block_size; }
  size_t num_slots() const { return num_blocks_ * layout_.block_size; }
  const KvQ8Layout& layout() const { return layout_; }
  size_t bytes() const override { return k_.size() + v_.size(); }

  const uint8_t* KPage(size_t block, size_t kv_head) const {
    return k_.data() + (kv_head * num_blocks_ + block) * layout_.KPageBytes();
  }
  const uint8_t* VPage(size_t block, size_t kv_head) const {
    return v_.data() + (kv_head * num_blocks_ + block) * layout_.VPageBytes();
  }

  // Quantizes one token's K and V (head_dim values each) of one KV head into a slot.
  void Write(size_t slot, size_t kv_head, const bf16* k, const bf16* v);
  // The stored values, dequantized (d < head_dim).
  float KAt(size_t slot, size_t kv_head, size_t d) const;
  float VAt(size_t slot, size_t kv_head, size_t d) const;

  // The seed's layout (PagedKvCache): import quantizes, export gives the dequantized values
  // rounded to bf16.
  void ImportSeedLayout(const bf16* k_rows, const bf16* v_rows, ThreadPool& pool);
  void ExportSeedLayout(bf16* k_rows, bf16* v_rows) const;

 private:
  uint8_t* MutableKPage(size_t block, size_t kv_head) { return const_cast<uint8_t*>(KPage(block, kv_head)); }
  uint8_t* MutableVPage(size_t block, size_t kv_head) { return const_cast<uint8_t*>(VPage(block, kv_head)); }

  size_t num_blocks_, kv_heads_;
  KvQ8Layout layout_;
  AlignedBuffer<uint8_t> k_, v_;
};

}  // namespace cpu
}  // namespace qwen3
