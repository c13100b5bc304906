// How the CPU executor schedules a pass's attention (a pure function of the pass's metadata and
// the worker count): each row's split length, its partials, the work items and their balance
// over the workers.
//
// A work item is (query block, KV head, split of consecutive pages). A query block is
// consecutive rows of one sequence at consecutive positions with the same split length (a
// prefill chunk; a decode row is a block of one), up to 16 / group queries, so each K/V page is
// loaded once for all of them. Partials are indexed row, then KV head, then split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "exec/decode_batch.h"
#include "exec/executor.h"

namespace qwen3::cpu {

// The most pages one split holds (the attention kernel's page list).
constexpr size_t kMaxPagesPerSplit = 64;

struct AttentionItem {
  uint32_t row0, queries, kv_head, split;
};

struct AttentionPlan {
  size_t block_size = 0;
  std::vector<size_t> row_pps;    // per row: its split length (pages)
  std::vector<size_t> row_parts;  // partials of row b: [row_parts[b], row_parts[b + 1])
  std::vector<AttentionItem> items;
  std::vector<size_t> block_items;  // items of query block k: [block_items[k], [k + 1])
  std::vector<uint32_t> item_cost;  // per item: its pages + 1 (the softmax of its first page,
                                    // writing the partial)
  std::vector<size_t> bounds;       // the workers' item ranges, balanced by cost

  // Splits of row b (its pages / its split length, rounded up).
  size_t Splits(const DecodeBatch& batch, size_t b) const;
  // The pages [p0, p1) of an item's split: its block's last (longest) row's.
  std::pair<size_t, size_t> Pages(const DecodeBatch& batch, const AttentionItem& it) const;
  size_t parts() const { return row_parts.empty() ? 0 : row_parts.back(); }
};

// Splits of a sequence of seq_len tokens.
size_t SplitsOf(int32_t seq_len, size_t block_size, size_t pages_per_split);

// The split length of the whole batch: options.pages_per_split, or with per_row_splits the
// longest row's own choice, or one choice that keeps `workers` busy over all rows' pages.
size_t PagesPerSplit(const DecodeBatch& batch, size_t block_size, size_t kv_heads, size_t workers,
                     const AttentionOptions& options);
// The split length of row `row`: from its own length alone with per_row_splits (and automatic
// splits), else the batch's.
size_t RowPagesPerSplit(const DecodeBatch& batch, size_t row, size_t block_size, size_t kv_heads,
                        size_t workers, const AttentionOptions& options);

// Fills plan for batch (reusing its vectors' capacity). group: query heads per KV head.
void PlanAttention(const DecodeBatch& batch, size_t block_size, size_t kv_heads, size_t group,
                   size_t workers, const AttentionOptions& options, AttentionPlan& plan);

}  // namespace qwen3::cpu
