#include "base/page_arena.h"

#include <sys/mman.h>

#include <cstdint>
#include <mutex>
#include <new>
#include <unordered_map>

namespace qwen3 {
namespace {

constexpr size_t kHuge = size_t{2} << 20;
// 32 MiB: at most one slice's worth (< 4 MiB) left unused at a chunk's end, and an untouched
// tail costs nothing (pages are committed on first touch).
constexpr size_t kChunkBytes = size_t{32} << 20;
constexpr size_t kAlign = 64;
constexpr size_t kSmallPage = 4096;

struct Chunk {
  size_t used = 0;  // bytes handed out (bump pointer)
  size_t live = 0;  // slices not yet released
};

struct Arena {
  std::mutex mu;
  std::unordered_map<void*, Chunk> chunks;
  void* current = nullptr;  // the chunk slices come from
  size_t mapped = 0;
};

Arena& TheArena() {
  static Arena* arena = new Arena;  // never destroyed: buffers may outlive static destructors
  return *arena;
}

}  // namespace

size_t RoundToHugePages(size_t bytes) { return (bytes + kHuge - 1) / kHuge * kHuge; }

void* MapHugePages(size_t bytes) {
  // Over-map by 2 MiB and trim both ends to a 2 MiB-aligned range.
  void* p = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t base = reinterpret_cast<uintptr_t>(p);
  const uintptr_t aligned = (base + kHuge - 1) / kHuge * kHuge;
  if (aligned > base) munmap(p, aligned - base);
  const size_t tail = base + kHuge - aligned;
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advice only
  return reinterpret_cast<void*>(aligned);
}

ArenaSlice AllocateArenaSlice(size_t bytes) {
  if (bytes == 0 || bytes > kArenaMaxSlice) throw std::bad_alloc();
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  if (a.current == nullptr || a.chunks[a.current].used + rounded > kChunkBytes) {
    // The old chunk stays mapped while its slices live; it takes no new ones. The rest of the
    // huge page its last slice ends in was faulted in with it: given back (the kernel splits
    // that one page), so a chunk holds at most 4 KiB it does not use.
    if (a.current != nullptr) {
      const size_t used = (a.chunks[a.current].used + kSmallPage - 1) / kSmallPage * kSmallPage;
      if (used < kChunkBytes) {
        madvise(static_cast<char*>(a.current) + used, kChunkBytes - used, MADV_DONTNEED);
      }
    }
    a.current = MapHugePages(kChunkBytes);
    a.chunks[a.current] = {};
    a.mapped += kChunkBytes;
  }
  Chunk& c = a.chunks[a.current];
  void* data = static_cast<char*>(a.current) + c.used;
  c.used += rounded;
  ++c.live;
  return {data, a.current};
}

void ReleaseArenaSlice(void* chunk) {
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  const auto it = a.chunks.find(chunk);
  if (it == a.chunks.end() || it->second.live == 0) return;  // a bug; nothing safe to do
  if (--it->second.live > 0) return;
  // Empty: unmapped, the current one too (its used bytes are dirty, so it cannot start over).
  munmap(chunk, kChunkBytes);
  a.chunks.erase(it);
  a.mapped -= kChunkBytes;
  if (a.current == chunk) a.current = nullptr;
}

size_t ArenaMappedBytes() {
  Arena& a = TheArena();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.mapped;
}

}  // namespace qwen3
