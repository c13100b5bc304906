#include "exec/cpu/attention_plan.h"

#include <algorithm>

#include "exec/cpu/kernels.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {
namespace {

size_t Pages(int32_t seq_len, size_t block_size) {
  return (static_cast<size_t>(seq_len) + block_size - 1) / block_size;
}

// Splits of about 1/8 of a worker's share of the pages: short enough to balance, long enough
// that a split's fixed work stays small.
size_t AutoPagesPerSplit(size_t pages, size_t workers) {
  constexpr size_t kItemsPerWorker = 8;
  return std::clamp<size_t>(pages / (kItemsPerWorker * workers), 1, kMaxPagesPerSplit);
}

}  // namespace

size_t SplitsOf(int32_t seq_len, size_t block_size, size_t pages_per_split) {
  return (Pages(seq_len, block_size) + pages_per_split - 1) / pages_per_split;
}

size_t PagesPerSplit(const DecodeBatch& batch, size_t block_size, size_t kv_heads, size_t workers,
                     const AttentionOptions& o) {
  if (o.pages_per_split > 0) return o.pages_per_split;
  if (o.per_row_splits) {
    size_t longest = 1;
    for (size_t b = 0; b < batch.batch; ++b) {
      longest = std::max(longest, RowPagesPerSplit(batch, b, block_size, kv_heads, workers, o));
    }
    return longest;
  }
  size_t pages = 0;
  for (size_t b = 0; b < batch.batch; ++b) pages += Pages(batch.seq_lens[b], block_size);
  return AutoPagesPerSplit(pages * kv_heads, workers);
}

size_t RowPagesPerSplit(const DecodeBatch& batch, size_t row, size_t block_size, size_t kv_heads,
                        size_t workers, const AttentionOptions& o) {
  if (o.pages_per_split > 0 || !o.per_row_splits) {
    return PagesPerSplit(batch, block_size, kv_heads, workers, o);
  }
  return AutoPagesPerSplit(Pages(batch.seq_lens[row], block_size) * kv_heads, workers);
}

size_t AttentionPlan::Splits(const DecodeBatch& batch, size_t b) const {
  return SplitsOf(batch.seq_lens[b], block_size, row_pps[b]);
}

std::pair<size_t, size_t> AttentionPlan::Pages(const DecodeBatch& batch,
                                               const AttentionItem& it) const {
  const size_t last = it.row0 + it.queries - 1;
  const size_t pages = cpu::Pages(batch.seq_lens[last], block_size);
  const size_t p0 = it.split * row_pps[last];
  return {p0, std::min(pages, p0 + row_pps[last])};
}

void PlanAttention(const DecodeBatch& batch, size_t bs, size_t kv_heads, size_t group,
                   size_t workers, const AttentionOptions& o, AttentionPlan& plan) {
  const size_t n = batch.batch;
  plan.block_size = bs;
  plan.row_pps.resize(n);
  if (o.per_row_splits && o.pages_per_split == 0) {
    for (size_t b = 0; b < n; ++b) {
      plan.row_pps[b] = RowPagesPerSplit(batch, b, bs, kv_heads, workers, o);
    }
  } else {
    std::fill(plan.row_pps.begin(), plan.row_pps.end(),
              PagesPerSplit(batch, bs, kv_heads, workers, o));
  }
  // Whether row b continues the query block that ends with row b - 1: the next position of the
  // same sequence (the same pages), with the same split length.
  const auto continues = [&](size_t b) {
    if (batch.seq_lens[b] != batch.seq_lens[b - 1] + 1 || plan.row_pps[b] != plan.row_pps[b - 1]) {
      return false;
    }
    const int32_t* prev = batch.block_table + (b - 1) * batch.max_blocks_per_seq;
    const int32_t* cur = batch.block_table + b * batch.max_blocks_per_seq;
    return std::equal(prev, prev + cpu::Pages(batch.seq_lens[b - 1], bs), cur);
  };
  const size_t max_queries = std::max<size_t>(1, kTileM / group);
  plan.items.clear();
  plan.block_items.clear();
  plan.row_parts.clear();
  size_t parts = 0;
  for (size_t b = 0; b < n; ++b) {
    plan.row_parts.push_back(parts);
    parts += kv_heads * plan.Splits(batch, b);
  }
  plan.row_parts.push_back(parts);
  for (size_t b0 = 0; b0 < n;) {
    size_t queries = 1;
    while (b0 + queries < n && queries < max_queries && continues(b0 + queries)) ++queries;
    plan.block_items.push_back(plan.items.size());
    const size_t splits = plan.Splits(batch, b0 + queries - 1);  // the longest row's
    for (size_t kvh = 0; kvh < kv_heads; ++kvh) {
      for (size_t s = 0; s < splits; ++s) {
        plan.items.push_back({static_cast<uint32_t>(b0), static_cast<uint32_t>(queries),
                              static_cast<uint32_t>(kvh), static_cast<uint32_t>(s)});
      }
    }
    b0 += queries;
  }
  plan.block_items.push_back(plan.items.size());
  // Static ranges balanced by pages (rows of a pass differ in length).
  plan.item_cost.resize(plan.items.size());
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const auto [p0, p1] = plan.Pages(batch, plan.items[i]);
    plan.item_cost[i] = static_cast<uint32_t>(p1 - p0 + 1);
  }
  BalancedRanges(plan.item_cost, workers, plan.bounds);
}

}  // namespace qwen3::cpu
