// A zero-initialized, 64-byte aligned array. Large ones (>= 4 MiB: weights, KV cache) are fresh
// anonymous mappings, 2 MiB aligned and advised to use transparent huge pages, so streaming them
// does not walk the page tables every 4 KiB (THP is often in "madvise" mode). Their zero pages
// come from the kernel on first touch: a 12 GB KV pool costs nothing until requests fill it
// (and opening the server does not spend seconds writing zeros). Smaller ones built with
// Pages::kHuge (packed weights: an MoE expert, a small model's projection) share huge-page
// chunks (page_arena.h); the rest come from aligned_alloc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <span>
#include <utility>

#include "base/page_arena.h"

namespace qwen3 {

// kHuge: data streamed every step, in huge pages whatever its size (from 64 KiB; below that
// a page walk per buffer is noise).
enum class Pages { kAny, kHuge };

// Not under AddressSanitizer: it checks the bounds of heap buffers, not of slices of a mapping,
// and the tests' tiny models have only small matrices.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kHugeBuffersShareChunks = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kHugeBuffersShareChunks = false;
#else
inline constexpr bool kHugeBuffersShareChunks = true;
#endif
#else
inline constexpr bool kHugeBuffersShareChunks = true;
#endif

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t count, Pages pages = Pages::kAny) : size_(count) {
    if (count == 0) return;
    const size_t bytes = count * sizeof(T);
    if (pages == Pages::kHuge && bytes >= kArenaMin && bytes < kMapped && kHugeBuffersShareChunks) {
      const ArenaSlice s = AllocateArenaSlice(bytes);
      data_ = static_cast<T*>(s.data);
      chunk_ = s.chunk;
      return;
    }
    if (bytes >= kMapped) {
      mapped_ = RoundToHugePages(bytes);
      data_ = static_cast<T*>(MapHugePages(mapped_));
      return;
    }
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, rounded));
    if (data_ == nullptr) throw std::bad_alloc();
    std::memset(static_cast<void*>(data_), 0, rounded);
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        mapped_(std::exchange(other.mapped_, 0)),
        chunk_(std::exchange(other.chunk_, nullptr)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
      Release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      mapped_ = std::exchange(other.mapped_, 0);
      chunk_ = std::exchange(other.chunk_, nullptr);
    }
    return *this;
  }
  ~AlignedBuffer() { Release(); }

  T* data() { return data_; }
  const T* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  std::span<T> span() { return {data_, size_}; }
  std::span<const T> span() const { return {data_, size_}; }

 private:
  static constexpr size_t kMapped = kArenaMaxSlice;
  static constexpr size_t kArenaMin = size_t{64} << 10;
  void Release() {
    if (chunk_ != nullptr) {
      ReleaseArenaSlice(chunk_);
    } else if (mapped_ > 0) {
      munmap(data_, mapped_);
    } else {
      std::free(data_);
    }
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes of the mapping (0: from aligned_alloc or the arena)
  void* chunk_ = nullptr;  // the arena chunk holding data_ (Pages::kHuge below kMapped)
};

}  // namespace qwen3
