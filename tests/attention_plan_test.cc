#include "exec/cpu/attention_plan.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace qwen3::cpu {
namespace {

// A pass's metadata: row r of sequence seq[r] at length lens[r]; sequence s owns blocks
// [s * bps, (s + 1) * bps).
struct Pass {
  std::vector<int32_t> lens, table, slots;
  size_t bps;
  Pass(const std::vector<int32_t>& l, const std::vector<int>& seq, size_t block_size, size_t bps)
      : lens(l), bps(bps) {
    for (size_t r = 0; r < l.size(); ++r) {
      for (size_t b = 0; b < bps; ++b) table.push_back(static_cast<int32_t>(seq[r] * bps + b));
      const size_t pos = static_cast<size_t>(l[r]) - 1;
      slots.push_back(static_cast<int32_t>((seq[r] * bps + pos / block_size) * block_size +
                                           pos % block_size));
    }
  }
  DecodeBatch Batch() const { return {lens.size(), lens.data(), table.data(), bps, slots.data()}; }
  DecodeBatch Row(size_t r) const {
    return {1, lens.data() + r, table.data() + r * bps, bps, slots.data() + r};
  }
};

constexpr size_t kBlock = 32, kKvHeads = 2, kWorkers = 2;

// A row's split length and partials are those it would have alone: batch invariance.
TEST(AttentionPlanTest, PerRowSplitsAreEachRowsOwn) {
  const Pass p({4096, 1, 300, 33, 2048}, {0, 1, 2, 3, 4}, kBlock, 128);
  AttentionPlan plan, alone;
  const AttentionOptions o{0, true};
  PlanAttention(p.Batch(), kBlock, kKvHeads, 4, kWorkers, o, plan);
  for (size_t r = 0; r < p.lens.size(); ++r) {
    PlanAttention(p.Row(r), kBlock, kKvHeads, 4, kWorkers, o, alone);
    EXPECT_EQ(plan.row_pps[r], alone.row_pps[0]) << "row " << r;
    EXPECT_EQ(plan.Splits(p.Batch(), r), alone.Splits(p.Row(r), 0)) << "row " << r;
    EXPECT_EQ(plan.row_parts[r + 1] - plan.row_parts[r], kKvHeads * plan.Splits(p.Batch(), r));
  }
}

// One length for the batch without per-row splits; an explicit length wins over both.
TEST(AttentionPlanTest, BatchAndExplicitSplitLengths) {
  const Pass p({4096, 1, 300}, {0, 1, 2}, kBlock, 128);
  AttentionPlan plan;
  PlanAttention(p.Batch(), kBlock, kKvHeads, 4, kWorkers, {0, false}, plan);
  EXPECT_EQ(plan.row_pps[0], plan.row_pps[1]);
  EXPECT_EQ(plan.row_pps[1], plan.row_pps[2]);
  PlanAttention(p.Batch(), kBlock, kKvHeads, 4, kWorkers, {3, true}, plan);
  for (size_t pps : plan.row_pps) EXPECT_EQ(pps, 3u);
  EXPECT_EQ(plan.Splits(p.Batch(), 0), (4096u / kBlock + 2) / 3);
  EXPECT_EQ(PagesPerSplit(p.Batch(), kBlock, kKvHeads, kWorkers, {3, false}), 3u);
  EXPECT_EQ(SplitsOf(33, kBlock, 1), 2u);
}

// Consecutive positions of one sequence form query blocks of up to 16 / group rows; other
// sequences, or the same position twice, start a new block.
TEST(AttentionPlanTest, QueryBlocksGroupAPrefillChunk) {
  // Sequence 0 at 10..15 (6 rows), sequence 1 at 5, sequence 0 again at 16.
  const Pass p({10, 11, 12, 13, 14, 15, 5, 16}, {0, 0, 0, 0, 0, 0, 1, 0}, kBlock, 4);
  AttentionPlan plan;
  const size_t group = 4;  // 16 / 4 = 4 queries per block at most
  PlanAttention(p.Batch(), kBlock, kKvHeads, group, kWorkers, {1, true}, plan);
  std::vector<uint32_t> firsts, sizes;
  for (size_t k = 0; k + 1 < plan.block_items.size(); ++k) {
    const AttentionItem& it = plan.items[plan.block_items[k]];
    firsts.push_back(it.row0);
    sizes.push_back(it.queries);
  }
  EXPECT_EQ(firsts, (std::vector<uint32_t>{0, 4, 6, 7}));
  EXPECT_EQ(sizes, (std::vector<uint32_t>{4, 2, 1, 1}));
}

// Every (block, head, split) is an item once; the workers' ranges cover them in order; an
// item's pages are its split of its longest row's pages.
TEST(AttentionPlanTest, ItemsCoverEverySplitAndRangesCoverEveryItem) {
  const Pass p({100, 101, 102, 7, 64}, {0, 0, 0, 1, 2}, kBlock, 8);
  AttentionPlan plan;
  PlanAttention(p.Batch(), kBlock, kKvHeads, 2, kWorkers, {2, true}, plan);
  size_t expected = 0;
  for (size_t k = 0; k + 1 < plan.block_items.size(); ++k) {
    const AttentionItem& first = plan.items[plan.block_items[k]];
    const size_t last = first.row0 + first.queries - 1;
    expected += kKvHeads * plan.Splits(p.Batch(), last);
  }
  EXPECT_EQ(plan.items.size(), expected);
  ASSERT_EQ(plan.item_cost.size(), plan.items.size());
  for (size_t i = 0; i < plan.items.size(); ++i) {
    const auto [p0, p1] = plan.Pages(p.Batch(), plan.items[i]);
    EXPECT_LT(p0, p1);
    EXPECT_LE(p1 - p0, 2u);
    EXPECT_EQ(plan.item_cost[i], p1 - p0 + 1);
  }
  ASSERT_EQ(plan.bounds.size(), kWorkers + 1);
  EXPECT_EQ(plan.bounds.front(), 0u);
  EXPECT_EQ(plan.bounds.back(), plan.items.size());
  for (size_t w = 0; w < kWorkers; ++w) EXPECT_LE(plan.bounds[w], plan.bounds[w + 1]);
  size_t parts = 0;
  for (size_t r = 0; r < p.lens.size(); ++r) parts += kKvHeads * plan.Splits(p.Batch(), r);
  EXPECT_EQ(plan.parts(), parts);
}

}  // namespace
}  // namespace qwen3::cpu
