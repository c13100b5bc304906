// Huge-page chunks shared by buffers too small for a mapping of their own (AlignedBuffer's
// Pages::kHuge). Packed weights are streamed from memory every step; in 4 KiB pages the
// hardware prefetchers stop at every page and the TLB misses every 4 KiB, and a matrix under
// 4 MiB (a 30B-A3B expert's 1.3-1.8 MB, a 0.6B model's projections) comes from malloc in
// exactly those pages. Measured on AMD EPYC Zen 5, 2 threads: 8 routed 30B-A3B experts per layer
// read at 46% of the probe bandwidth from 4 KiB pages, 79% from 2 MiB pages (docs/PERFORMANCE.md).
// Chunks are 2 MiB-aligned anonymous mappings advised to use transparent huge pages; slices are
// bump-allocated (never reused, so always zero), a full chunk gives back the pages past its last
// slice, and a chunk is unmapped when its last slice is released. Thread-safe.
#pragma once

#include <cstddef>

namespace qwen3 {

struct ArenaSlice {
  void* data = nullptr;   // 64-byte aligned, zeroed
  void* chunk = nullptr;  // the owner: pass to ReleaseArenaSlice
};

// The largest slice: bigger buffers get a mapping of their own.
constexpr size_t kArenaMaxSlice = size_t{4} << 20;
// bytes in (0, kArenaMaxSlice]; throws std::bad_alloc when the OS refuses a chunk.
ArenaSlice AllocateArenaSlice(size_t bytes);
void ReleaseArenaSlice(void* chunk);
// Bytes mapped for chunks now (tests).
size_t ArenaMappedBytes();

// bytes rounded up to whole 2 MiB pages.
size_t RoundToHugePages(size_t bytes);
// A fresh zeroed anonymous mapping of `bytes` (a multiple of 2 MiB), 2 MiB-aligned and advised
// to use transparent huge pages; munmap it. Throws std::bad_alloc.
void* MapHugePages(size_t bytes);

}  // namespace qwen3
