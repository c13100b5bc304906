#include "exec/cpu/kv_cache.h"

#include <algorithm>

#include "base/error.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

void CheckKvShape(size_t num_blocks, size_t head_dim, size_t block_size) {
  if (num_blocks == 0) throw Error("KV cache: num_blocks = 0: expected at least 1");
  if (block_size == 0 || block_size % kTileK != 0 || block_size > kMaxBlockSize) {
    throw Error("KV cache: block_size = " + std::to_string(block_size) +
                ": expected a multiple of 32 up to " + std::to_string(kMaxBlockSize));
  }
  if (head_dim == 0 || head_dim > kMaxHeadDim) {
    throw Error("KV cache: head_dim = " + std::to_string(head_dim) + ": expected 1.." +
                std::to_string(kMaxHeadDim));
  }
}

PagedKvCache::PagedKvCache(size_t num_blocks, size_t kv_heads, size_t head_dim, size_t block_size)
    : num_blocks_(num_blocks), kv_heads_(kv_heads), layout_{block_size, head_dim} {
  CheckKvShape(num_blocks, head_dim, block_size);
  // Zeroed: the padding lanes of every page stay zero, as only real dims are ever written.
  const size_t elems = num_blocks * kv_heads * layout_.PageElems();
  k_ = AlignedBuffer<bf16>(elems);
  v_ = AlignedBuffer<bf16>(elems);
}

void PagedKvCache::Write(size_t slot, size_t kv_head, const bf16* k, const bf16* v) {
  QW_DASSERT(slot < num_slots() && kv_head < kv_heads_);
  const size_t bs = layout_.block_size, t = slot % bs;
  bf16* kp = KPage(slot / bs, kv_head);
  bf16* vp = VPage(slot / bs, kv_head);
  const size_t dim = layout_.head_dim;
  // Tile by tile, not KIndex per element (the TileOrder arithmetic per element was most of a
  // prefill's q/k norm + RoPE + cache stage). K^T: token t is column t % 16 of column block
  // t / 16, its dims pairs down the tile's rows. V: token t is k-row t of k-tile t / 32, its
  // dims 16 per column block, every other element.
  const TileOrder ko = layout_.KOrder(), vo = layout_.VOrder();
  for (size_t d0 = 0; d0 < dim; d0 += kTileK) {
    bf16* tile = kp + ko.Tile(t / kTileN, d0 / kTileK) + (t % kTileN) * 2;
    const size_t count = std::min(kTileK, dim - d0);  // even: head_dim is
    for (size_t e = 0; e < count; e += 2) {
      tile[e / 2 * kTileK] = k[d0 + e];
      tile[e / 2 * kTileK + 1] = k[d0 + e + 1];
    }
  }
  for (size_t d0 = 0; d0 < dim; d0 += kTileN) {
    bf16* tile = vp + vo.Tile(d0 / kTileN, t / kTileK) + (t % kTileK) / 2 * kTileK + t % 2;
    const size_t count = std::min(kTileN, dim - d0);
    for (size_t e = 0; e < count; ++e) tile[e * 2] = v[d0 + e];
  }
}

bf16 PagedKvCache::KAt(size_t slot, size_t kv_head, size_t d) const {
  const size_t bs = layout_.block_size;
  return KPage(slot / bs, kv_head)[layout_.KIndex(slot % bs, d)];
}

bf16 PagedKvCache::VAt(size_t slot, size_t kv_head, size_t d) const {
  const size_t bs = layout_.block_size;
  return VPage(slot / bs, kv_head)[layout_.VIndex(slot % bs, d)];
}

void PagedKvCache::ImportSeedLayout(const bf16* k_rows, const bf16* v_rows, ThreadPool& pool) {
  const size_t bs = layout_.block_size, dim = layout_.head_dim;
  pool.Spmd(num_blocks_ * kv_heads_, [&](size_t page, size_t) {  // page: the seed's order
    bf16* kp = KPage(page / kv_heads_, page % kv_heads_);
    bf16* vp = VPage(page / kv_heads_, page % kv_heads_);
    for (size_t t = 0; t < bs; ++t) {
      const size_t row = (page * bs + t) * dim;
      for (size_t d = 0; d < dim; ++d) {
        kp[layout_.KIndex(t, d)] = k_rows[row + d];
        vp[layout_.VIndex(t, d)] = v_rows[row + d];
      }
    }
  });
}

void PagedKvCache::ExportSeedLayout(bf16* k_rows, bf16* v_rows) const {
  const size_t bs = layout_.block_size, dim = layout_.head_dim;
  for (size_t page = 0; page < num_blocks_ * kv_heads_; ++page) {  // page: the seed's order
    const bf16* kp = KPage(page / kv_heads_, page % kv_heads_);
    const bf16* vp = VPage(page / kv_heads_, page % kv_heads_);
    for (size_t t = 0; t < bs; ++t) {
      const size_t row = (page * bs + t) * dim;
      for (size_t d = 0; d < dim; ++d) {
        k_rows[row + d] = kp[layout_.KIndex(t, d)];
        v_rows[row + d] = vp[layout_.VIndex(t, d)];
      }
    }
  }
}

}  // namespace qwen3::cpu
