// A bf16 matrix packed once, at load, as the B operand of MatmulBlockFn: logical [k, n]
// (k = input features, n = outputs), padded with zeros to k_tiles * 32 x n_blocks * 16.
// Column block j's k-tiles are contiguous, tile (j, t) at data + (j * k_tiles + t) * 512, so a
// matmul streams each block's weights linearly. Padding costs < 1% on model shapes.
#pragma once

#include <cstddef>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "kernels/cpu/kernels.h"

namespace qwen3 {
class ThreadPool;
}

namespace qwen3::cpu {

class PackedMatrix {
 public:
  static constexpr size_t kTileElems = kTileK * kTileN;

  PackedMatrix() = default;
  // From src[k][n] (row-major [in, out], x @ W: the seed's layout).
  static PackedMatrix FromInOut(const bf16* src, size_t k, size_t n, const std::string& name,
                                ThreadPool& pool);
  // From src[n][k] (row-major [out, in]: nn.Linear, lm_head).
  static PackedMatrix FromOutIn(const bf16* src, size_t n, size_t k, const std::string& name,
                                ThreadPool& pool);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  size_t k_tiles() const { return k_tiles_; }
  size_t n_blocks() const { return n_blocks_; }
  size_t bytes() const { return data_.size() * sizeof(bf16); }
  BBlock Block(size_t j) const {
    return {data_.data() + j * k_tiles_ * kTileElems, kTileElems, kTileK};
  }
  // Element (k, n) of the logical matrix (tests and diagnostics).
  bf16 At(size_t k, size_t n) const;

 private:
  template <bool kInOut>
  static PackedMatrix Pack(const bf16* src, size_t k, size_t n, const std::string& name,
                           ThreadPool& pool);

  size_t k_ = 0, n_ = 0, k_tiles_ = 0, n_blocks_ = 0;
  AlignedBuffer<bf16> data_;
};

}  // namespace qwen3::cpu
