#include "exec/cpu/quant_rows.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

void QuantizedRows::Reserve(size_t rows, size_t k) {
  QW_ASSERT(k % 32 == 0 && k > 0);
  k_ = k;
  if (rows <= rows_cap_ && k <= k_cap_) return;
  rows_cap_ = std::max(rows, rows_cap_);
  k_cap_ = std::max(k, k_cap_);
  q_ = AlignedBuffer<int8_t>(rows_cap_ * k_cap_);
  scale_ = AlignedBuffer<float>(rows_cap_ * k_cap_ / 16);
  bias16_ = AlignedBuffer<float>(rows_cap_ * k_cap_ / 16);
  sum16_ = AlignedBuffer<int32_t>(rows_cap_ * k_cap_ / 16);
  bias32_ = AlignedBuffer<float>(rows_cap_ * k_cap_ / 32);
}

void QuantizedRows::Quantize(const CpuKernels& kernels, const bf16* x, size_t lda, size_t rows,
                             size_t k, ThreadPool& pool) {
  Reserve(rows, k);
  pool.Spmd(rows, [&](size_t r, size_t) { QuantizeRow(kernels, x + r * lda, r); }, "quantize_rows");
}

void QuantizedRows::QuantizeRow(const CpuKernels& kernels, const bf16* x, size_t r) {
  QW_ASSERT(r < rows_cap_);
  const size_t l16 = k_cap_ / 16;
  kernels.quantize_row(x, k_, q_.data() + r * k_cap_, scale_.data() + r * l16,
                       sum16_.data() + r * l16, bias16_.data() + r * l16,
                       bias32_.data() + r * (k_cap_ / 32));
}

void QuantizedRows::CopyRow(const QuantizedRows& src, size_t from, size_t to) {
  QW_ASSERT(src.k_ == k_ && from < src.rows_cap_ && to < rows_cap_);
  const size_t k16 = k_ / 16, s16 = src.k_cap_ / 16, d16 = k_cap_ / 16;
  std::copy_n(src.q_.data() + from * src.k_cap_, k_, q_.data() + to * k_cap_);
  std::copy_n(src.scale_.data() + from * s16, k16, scale_.data() + to * d16);
  std::copy_n(src.sum16_.data() + from * s16, k16, sum16_.data() + to * d16);
  std::copy_n(src.bias16_.data() + from * s16, k16, bias16_.data() + to * d16);
  std::copy_n(src.bias32_.data() + from * (src.k_cap_ / 32), k_ / 32,
              bias32_.data() + to * (k_cap_ / 32));
}

QuantRows QuantizedRows::view() const {
  return {q_.data(), k_cap_, scale_.data(), bias16_.data(), sum16_.data(), k_cap_ / 16,
          bias32_.data(), k_cap_ / 32};
}

}  // namespace qwen3::cpu
