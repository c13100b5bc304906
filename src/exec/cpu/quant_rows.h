// Activations quantized for the int8 kernels: each row in blocks of 16, x ~= scale * q with
// scale = max|x| / 127 and q = round-to-nearest-even(x * 127 / max|x|) in [-127, 127], plus
// the codes' sum per 16 (the offset term of Q8_0 / Q4_0 weights, taken in the integers) and
// scale * that sum per 16 and per 32 (the bias term of the weights' s * u + b). Blocks of
// 16 rather than llama.cpp's 32: on tiny-a's Q8_0 GGUF the worst replay step went from 8.4e-2
// to 6.5e-2 rel-L2 (docs/ACCURACY.md). Per row and block, so a row's codes
// never depend on the other rows of the pass (batch invariance). One implementation for every
// path's kernel (CpuKernels::quantize_row): the codes are the same bits everywhere.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/kernels.h"

namespace qwen3 {
class ThreadPool;
}

namespace qwen3::cpu {

class QuantizedRows {
 public:
  // Rows [0, rows) of x ([rows][lda] bf16), their first k values (k a multiple of 32), with
  // the path's quantize_row (every path gives the same bits).
  void Quantize(const CpuKernels& kernels, const bf16* x, size_t lda, size_t rows, size_t k,
                ThreadPool& pool);
  void Reserve(size_t rows, size_t k);
  // Row r from x's first k() values (after Reserve): for a caller that quantizes rows inside
  // its own dispatch. The same bits as Quantize.
  void QuantizeRow(const CpuKernels& kernels, const bf16* x, size_t r);
  // Row `to` = row `from` of src (same k; src may be this).
  void CopyRow(const QuantizedRows& src, size_t from, size_t to);
  QuantRows view() const;
  size_t k() const { return k_; }

 private:
  size_t k_ = 0, rows_cap_ = 0, k_cap_ = 0;
  AlignedBuffer<int8_t> q_;
  AlignedBuffer<float> scale_, bias16_, bias32_;
  AlignedBuffer<int32_t> sum16_;
};

}  // namespace qwen3::cpu
