// A zero-initialized, 64-byte aligned array. Large ones (>= 4 MiB: weights, KV cache) are fresh
// anonymous mappings, 2 MiB aligned and advised to use transparent huge pages, so streaming them
// does not walk the page tables every 4 KiB (THP is often in "madvise" mode). Their zero pages
// come from the kernel on first touch: a 12 GB KV pool costs nothing until requests fill it
// (and opening the server does not spend seconds writing zeros).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sys/mman.h>
#include <span>
#include <utility>

namespace qwen3 {

template <typename T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t count) : size_(count) {
    if (count == 0) return;
    const size_t bytes = count * sizeof(T);
    if (bytes >= kMapped) {
      constexpr size_t kHuge = size_t{2} << 20;
      const size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
      // Over-map by 2 MiB and trim both ends to a 2 MiB-aligned range.
      void* p = mmap(nullptr, rounded + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      const uintptr_t base = reinterpret_cast<uintptr_t>(p);
      const uintptr_t aligned = (base + kHuge - 1) / kHuge * kHuge;
      if (aligned > base) munmap(p, aligned - base);
      const size_t tail = base + rounded + kHuge - (aligned + rounded);
      if (tail > 0) munmap(reinterpret_cast<void*>(aligned + rounded), tail);
      data_ = reinterpret_cast<T*>(aligned);
      mapped_ = rounded;
      madvise(data_, rounded, MADV_HUGEPAGE);  // advice only: failure is fine
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
        mapped_(std::exchange(other.mapped_, 0)) {}
  AlignedBuffer& operator=(AlignedBuffer&& other) noexcept {
    if (this != &other) {
      Release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      mapped_ = std::exchange(other.mapped_, 0);
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
  static constexpr size_t kMapped = size_t{4} << 20;
  void Release() {
    if (mapped_ > 0) {
      munmap(data_, mapped_);
    } else {
      std::free(data_);
    }
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_ = 0;  // bytes of the mapping (0: from aligned_alloc)
};

}  // namespace qwen3
