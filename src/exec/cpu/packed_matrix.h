// A bf16 matrix packed once, at load, as the B operand of MatmulBlockFn: logical [k, n]
// (k = input features, n = outputs), padded with zeros to k_tiles * 32 x n_blocks * 16, in
// TileOrder (kernels.h): a matmul call over 4 column blocks streams one linear range. Padding
// is none on Qwen3 shapes (K, N multiples of 32 and 16).
#pragma once

#include <cstddef>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/kernels.h"

namespace qwen3 {
class ThreadPool;
}

namespace qwen3::cpu {

class PackedMatrix {
 public:
  PackedMatrix() = default;
  // From src[k][n] (row-major [in, out], x @ W: the seed's layout).
  static PackedMatrix FromInOut(const bf16* src, size_t k, size_t n, const std::string& name,
                                ThreadPool& pool);
  // From src[n][k] (row-major [out, in]: nn.Linear, lm_head).
  static PackedMatrix FromOutIn(const bf16* src, size_t n, size_t k, const std::string& name,
                                ThreadPool& pool);
  // Two [in, out] matrices of the same shape [k, n] (n a multiple of 32) as one [k, 2n]:
  // column group g of 64 holds columns [32g, 32g + 32) of a, then the same of b. One matmul
  // call over a group computes both (gate and up in one K loop, spec §3 stage 9).
  static PackedMatrix FromInOutInterleaved(const bf16* a, const bf16* b, size_t k, size_t n,
                                           const std::string& name_a, const std::string& name_b,
                                           ThreadPool& pool);
  // The same from two [out, in] matrices [n][k] (nn.Linear: gate_proj, up_proj).
  static PackedMatrix FromOutInInterleaved(const bf16* a, const bf16* b, size_t n, size_t k,
                                           const std::string& name_a, const std::string& name_b,
                                           ThreadPool& pool);

  size_t k() const { return k_; }
  size_t n() const { return n_; }
  size_t k_tiles() const { return k_tiles_; }
  size_t n_blocks() const { return n_blocks_; }
  size_t bytes() const { return data_.size() * sizeof(bf16); }
  BBlock Block(size_t j) const { return order().Block(data_.data(), j); }
  TileOrder order() const { return {k_tiles_, n_blocks_}; }
  // Element (k, n) of the logical matrix (tests and diagnostics).
  bf16 At(size_t k, size_t n) const;

 private:
  // at(k, n) returns the element, and the tensor name and source [row, col] to report.
  template <typename Source>
  static PackedMatrix Pack(size_t k, size_t n, Source at, ThreadPool& pool);
  // a, b: [k][n] (out_in false) or [n][k] (true), interleaved by 32 columns into [k, 2n].
  static PackedMatrix PackInterleaved(const bf16* a, const bf16* b, size_t k, size_t n,
                                      const std::string& name_a, const std::string& name_b,
                                      bool out_in, ThreadPool& pool);

  size_t k_ = 0, n_ = 0, k_tiles_ = 0, n_blocks_ = 0;
  AlignedBuffer<bf16> data_;
};

}  // namespace qwen3::cpu
