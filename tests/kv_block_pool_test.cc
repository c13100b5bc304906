// The KV block pool: reference counts, growth all or nothing, the prefix cache (hits, misses,
// collisions, LRU eviction order), and its invariants after random use.
#include "serve/kv_block_pool.h"

#include <gtest/gtest.h>

#include <numeric>

#include "base/rng.h"
#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

std::vector<int32_t> Tokens(size_t n, int32_t first) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

TEST(KvBlockPoolTest, GrowIsAllOrNothing) {
  KvBlockPool pool(4, 16);
  SeqBlocks a, b;
  EXPECT_TRUE(pool.Grow(a, 33));  // 3 blocks
  EXPECT_EQ(a.blocks.size(), 3u);
  EXPECT_EQ(pool.NumFree(), 1u);
  EXPECT_FALSE(pool.Grow(b, 17));  // needs 2
  EXPECT_TRUE(b.blocks.empty());
  EXPECT_EQ(pool.NumFree(), 1u);
  EXPECT_TRUE(pool.Grow(a, 48));  // still 3
  EXPECT_TRUE(pool.Grow(a, 49));
  EXPECT_EQ(pool.NumFree(), 0u);
  pool.Release(a);
  EXPECT_EQ(pool.NumFree(), 4u);
  EXPECT_TRUE(a.blocks.empty());
  pool.CheckConsistency();
}

TEST(KvBlockPoolTest, FullBlocksAreCachedAndShared) {
  KvBlockPool pool(8, 4);
  const std::vector<int32_t> prompt = Tokens(10, 100);  // 2 full blocks + 2
  SeqBlocks a;
  ASSERT_EQ(pool.TakeCachedPrefix(a, prompt, prompt.size() - 1), 0u);
  ASSERT_TRUE(pool.Grow(a, prompt.size()));
  pool.CommitFull(a, prompt, 6);  // only block 0 is computed in full
  SeqBlocks b;
  EXPECT_EQ(pool.TakeCachedPrefix(b, prompt, prompt.size() - 1), 4u);
  EXPECT_EQ(b.blocks[0], a.blocks[0]);
  EXPECT_EQ(pool.RefCount(a.blocks[0]), 2);
  pool.Release(b);
  pool.CommitFull(a, prompt, 10);
  EXPECT_EQ(pool.TakeCachedPrefix(b, prompt, prompt.size() - 1), 8u);
  EXPECT_EQ(b.blocks, std::vector<int32_t>(a.blocks.begin(), a.blocks.begin() + 2));
  pool.Release(b);
  const std::vector<int32_t> a_blocks = a.blocks;
  pool.Release(a);
  EXPECT_EQ(pool.NumFree(), 8u);
  EXPECT_EQ(pool.NumCached(), 2u) << "full blocks stay cached after their sequence ends";
  // After the owner is gone, a new sequence still finds them; max_tokens caps the take.
  SeqBlocks c;
  EXPECT_EQ(pool.TakeCachedPrefix(c, prompt, 7), 4u);
  EXPECT_EQ(c.blocks[0], a_blocks[0]);
  pool.Release(c);
  // A different first block: nothing matches (the key chains through the parent).
  std::vector<int32_t> other = prompt;
  other[0] = 7;
  EXPECT_EQ(pool.TakeCachedPrefix(c, other, other.size()), 0u);
  pool.CheckConsistency();
}

TEST(KvBlockPoolTest, EmptyBlocksAreUsedBeforeCachedOnesAndLruEvictsFirst) {
  KvBlockPool pool(4, 2);
  const std::vector<int32_t> p1 = Tokens(2, 10), p2 = Tokens(2, 20);
  SeqBlocks a, b;
  ASSERT_TRUE(pool.Grow(a, 2));
  pool.CommitFull(a, p1, 2);
  ASSERT_TRUE(pool.Grow(b, 2));
  pool.CommitFull(b, p2, 2);
  pool.Release(a);  // p1 freed first: evicted first
  pool.Release(b);
  EXPECT_EQ(pool.NumCached(), 2u);
  SeqBlocks c;
  ASSERT_TRUE(pool.Grow(c, 4));  // two empty blocks: no eviction
  EXPECT_EQ(pool.NumCached(), 2u);
  SeqBlocks d;
  ASSERT_TRUE(pool.Grow(d, 2));  // evicts p1 (least recently freed)
  EXPECT_EQ(pool.NumCached(), 1u);
  SeqBlocks probe;
  EXPECT_EQ(pool.TakeCachedPrefix(probe, p1, 2), 0u);
  EXPECT_EQ(pool.TakeCachedPrefix(probe, p2, 2), 2u);
  pool.Release(probe);
  pool.Release(c);
  pool.Release(d);
  pool.CheckConsistency();
}

TEST(KvBlockPoolTest, DuplicateContentStaysUnregistered) {
  KvBlockPool pool(4, 2);
  const std::vector<int32_t> p = Tokens(2, 1);
  SeqBlocks a, b;
  ASSERT_TRUE(pool.Grow(a, 2));
  ASSERT_TRUE(pool.Grow(b, 2));
  pool.CommitFull(a, p, 2);
  pool.CommitFull(b, p, 2);  // computed twice in one step: only one is the cache's
  pool.Release(a);
  pool.Release(b);
  EXPECT_EQ(pool.NumCached(), 1u);
  pool.CheckConsistency();
}

TEST(KvBlockPoolTest, RandomUseKeepsInvariants) {
  KvBlockPool pool(32, 4);
  std::vector<SeqBlocks> seqs(8);
  std::vector<std::vector<int32_t>> toks(8);
  const CounterRng rng(5, 0);
  for (uint64_t step = 0; step < 3000; ++step) {
    const size_t i = rng.Bits(step * 3) % seqs.size();
    switch (rng.Bits(step * 3 + 1) % 3) {
      case 0: {  // a new sequence over a few shared prefixes
        pool.Release(seqs[i]);
        toks[i] = Tokens(1 + rng.Bits(step * 3 + 2) % 20, static_cast<int32_t>(rng.Bits(step) % 3));
        const size_t hit = pool.TakeCachedPrefix(seqs[i], toks[i], toks[i].size() - 1);
        EXPECT_EQ(hit % 4, 0u);
        if (!pool.Grow(seqs[i], toks[i].size())) pool.Release(seqs[i]);
        break;
      }
      case 1:
        if (!seqs[i].blocks.empty()) pool.CommitFull(seqs[i], toks[i], toks[i].size());
        break;
      default:
        pool.Release(seqs[i]);
    }
    pool.CheckConsistency();
  }
  for (SeqBlocks& s : seqs) pool.Release(s);
  EXPECT_EQ(pool.NumFree(), 32u);
  pool.CheckConsistency();
}

TEST(KvBlockPoolTest, BadSizesAreErrors) {
  EXPECT_TRUE(ThrowsError([] { KvBlockPool(0, 16); }, {"0 blocks"}));
  EXPECT_TRUE(ThrowsError([] { KvBlockPool(4, 0); }, {"block size 0"}));
}

}  // namespace
}  // namespace qwen3
