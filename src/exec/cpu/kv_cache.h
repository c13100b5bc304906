// The paged KV cache of one layer (spec §2): num_blocks blocks of block_size tokens, each block
// holding one page per KV head. A token's place is its slot = block * block_size + offset. Pages
// are stored in the cube's order (exec/cpu/attention.h, KvPageLayout); the seed's row-major
// layout [(block * kv_heads + kv_head) * block_size + offset][head_dim] is kept at the edges
// (ImportSeedLayout / ExportSeedLayout) for the harness and the golden. Pages hold head_dim
// padded to 32 (KvPageLayout::padded_dim); every accessor here reads or writes real dims only.
#pragma once

#include <cstddef>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/attention.h"
#include "exec/executor.h"

namespace qwen3 {

class ThreadPool;

namespace cpu {

// Throws an Error naming a num_blocks, head_dim or block_size the caches cannot hold.
void CheckKvShape(size_t num_blocks, size_t head_dim, size_t block_size);

class PagedKvCache final : public KvCache {
 public:
  PagedKvCache(size_t num_blocks, size_t kv_heads, size_t head_dim, size_t block_size);

  size_t num_blocks() const override { return num_blocks_; }
  size_t kv_heads() const override { return kv_heads_; }
  size_t head_dim() const override { return layout_.head_dim; }
  size_t block_size() const override { return layout_.block_size; }
  size_t num_slots() const { return num_blocks_ * layout_.block_size; }
  const KvPageLayout& layout() const { return layout_; }
  size_t bytes() const override { return (k_.size() + v_.size()) * sizeof(bf16); }

  bf16* KPage(size_t block, size_t kv_head) { return k_.data() + PageOffset(block, kv_head); }
  bf16* VPage(size_t block, size_t kv_head) { return v_.data() + PageOffset(block, kv_head); }
  const bf16* KPage(size_t block, size_t kv_head) const {
    return k_.data() + PageOffset(block, kv_head);
  }
  const bf16* VPage(size_t block, size_t kv_head) const {
    return v_.data() + PageOffset(block, kv_head);
  }

  // Stores one token's K and V (head_dim values each) of one KV head at a slot; d < head_dim
  // for KAt / VAt.
  void Write(size_t slot, size_t kv_head, const bf16* k, const bf16* v);
  bf16 KAt(size_t slot, size_t kv_head, size_t d) const;
  bf16 VAt(size_t slot, size_t kv_head, size_t d) const;

  // Seed layout: rows of head_dim, row = (block * kv_heads + kv_head) * block_size + offset.
  void ImportSeedLayout(const bf16* k_rows, const bf16* v_rows, ThreadPool& pool);
  void ExportSeedLayout(bf16* k_rows, bf16* v_rows) const;

 private:
  // [kv_head][block]: a sequence's consecutive blocks of one head are adjacent, so a split
  // of pages streams as one range (the seed's pool is [block][kv_head]).
  size_t PageOffset(size_t block, size_t kv_head) const {
    return (kv_head * num_blocks_ + block) * layout_.PageElems();
  }

  size_t num_blocks_, kv_heads_;
  KvPageLayout layout_;
  AlignedBuffer<bf16> k_, v_;
};

}  // namespace cpu
}  // namespace qwen3
