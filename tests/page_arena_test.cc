#include "base/page_arena.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "base/aligned_buffer.h"

namespace qwen3 {
namespace {

bool AllZero(const uint8_t* p, size_t n) {
  return std::all_of(p, p + n, [](uint8_t b) { return b == 0; });
}

TEST(PageArenaTest, SlicesAreAlignedZeroedDisjointAndTheChunkGoesWithTheLast) {
  const size_t before = ArenaMappedBytes();
  std::vector<ArenaSlice> slices;
  for (size_t bytes : {size_t{1}, size_t{100}, size_t{65536}, size_t{1} << 20, kArenaMaxSlice}) {
    const ArenaSlice s = AllocateArenaSlice(bytes);
    ASSERT_EQ(reinterpret_cast<uintptr_t>(s.data) % 64, 0u) << bytes;
    EXPECT_TRUE(AllZero(static_cast<uint8_t*>(s.data), bytes)) << bytes;
    std::memset(s.data, 0xab, bytes);  // disjoint: the other slices stay as written
    slices.push_back(s);
  }
  EXPECT_GT(ArenaMappedBytes(), before);
  for (size_t i = 0; i < slices.size(); ++i) {
    EXPECT_EQ(static_cast<uint8_t*>(slices[i].data)[0], 0xab) << i;
  }
  for (const ArenaSlice& s : slices) ReleaseArenaSlice(s.chunk);
  EXPECT_EQ(ArenaMappedBytes(), before);  // every chunk unmapped with its last slice
}

// A chunk that can take no more slices gives back the pages past its last slice: the huge
// page that slice ends in was faulted in whole (where THP gave one), its tail is not kept.
TEST(PageArenaTest, AFullChunkKeepsNoPagesPastItsLastSlice) {
  const size_t slice = (size_t{3} << 20) + 64, page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<ArenaSlice> slices;
  void* chunk = nullptr;
  uintptr_t end = 0;
  for (int i = 0; i < 40; ++i) {
    const ArenaSlice s = AllocateArenaSlice(slice);
    slices.push_back(s);
    if (chunk != nullptr && s.chunk != chunk) break;  // the first chunk is full now
    std::memset(s.data, 1, slice);  // faults in the huge page it ends in
    chunk = s.chunk;
    end = reinterpret_cast<uintptr_t>(s.data) + slice;
  }
  ASSERT_NE(end, 0u);
  const uintptr_t tail = (end + page - 1) / page * page;
  const uintptr_t huge_end = (end + (size_t{2} << 20) - 1) / (size_t{2} << 20) * (size_t{2} << 20);
  std::vector<unsigned char> resident((huge_end - tail) / page);
  ASSERT_EQ(mincore(reinterpret_cast<void*>(tail), huge_end - tail, resident.data()), 0);
  for (size_t i = 0; i < resident.size(); ++i) EXPECT_EQ(resident[i] & 1, 0) << "page " << i;
  for (const ArenaSlice& s : slices) ReleaseArenaSlice(s.chunk);
}

TEST(PageArenaTest, SlicesPastTheMaximumAreRefused) {
  EXPECT_THROW(AllocateArenaSlice(0), std::bad_alloc);
  EXPECT_THROW(AllocateArenaSlice(kArenaMaxSlice + 1), std::bad_alloc);
}

// Pages::kHuge buffers from 64 KiB up to the own-mapping size come from the arena; the
// default placement and bigger buffers do not. Moves keep the slice; the last owner frees it.
TEST(PageArenaTest, HugeBuffersBelowTheMappingSizeShareChunks) {
  const size_t before = ArenaMappedBytes();
  {
    AlignedBuffer<float> plain(1 << 18);  // 1 MiB, default placement
    EXPECT_EQ(ArenaMappedBytes(), before);
    AlignedBuffer<float> big(size_t{4} << 20, Pages::kHuge);  // 16 MiB: its own mapping
    EXPECT_EQ(ArenaMappedBytes(), before);
    AlignedBuffer<uint8_t> small(1000, Pages::kHuge);  // under 64 KiB: aligned_alloc
    EXPECT_EQ(ArenaMappedBytes(), before);
    AlignedBuffer<float> a(1 << 18, Pages::kHuge);
    if (kHugeBuffersShareChunks) {
      EXPECT_GT(ArenaMappedBytes(), before);
    } else {  // AddressSanitizer builds: from the heap, bounds checked
      EXPECT_EQ(ArenaMappedBytes(), before);
    }
    a[5] = 3.0f;
    AlignedBuffer<float> b(std::move(a));
    EXPECT_EQ(b[5], 3.0f);
    AlignedBuffer<float> c(1 << 18, Pages::kHuge);
    EXPECT_TRUE(AllZero(reinterpret_cast<const uint8_t*>(c.data()), c.size() * sizeof(float)));
    c = std::move(b);
    EXPECT_EQ(c[5], 3.0f);
  }
  EXPECT_EQ(ArenaMappedBytes(), before);
}

// Loading packs on several threads: slices allocated, written and freed concurrently never
// overlap (each thread's pattern survives) and all chunks go back.
TEST(PageArenaTest, ConcurrentSlicesDoNotOverlap) {
  const size_t before = ArenaMappedBytes();
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &bad] {
      std::vector<AlignedBuffer<uint8_t>> held;
      for (int i = 0; i < 30; ++i) {
        const size_t bytes = (size_t{64} << 10) + static_cast<size_t>((i * 7919 + t * 104729) % (1 << 20));
        held.emplace_back(bytes, Pages::kHuge);
        std::memset(held.back().data(), t + 1, bytes);
        if (i % 3 == 2) held.erase(held.begin());
      }
      for (const auto& h : held) {
        if (!std::all_of(h.begin(), h.end(), [t](uint8_t v) { return v == t + 1; })) ++bad[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << t;
  EXPECT_EQ(ArenaMappedBytes(), before);
}

}  // namespace
}  // namespace qwen3
