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
  pool.Spmd(
      rows,
      [&](size_t r, size_t) {
        kernels.quantize_row(x + r * lda, k, q_.data() + r * k_cap_,
                             scale_.data() + r * (k_cap_ / 16), sum16_.data() + r * (k_cap_ / 16),
                             bias16_.data() + r * (k_cap_ / 16),
                             bias32_.data() + r * (k_cap_ / 32));
      },
      "quantize_rows");
}

QuantRows QuantizedRows::view() const {
  return {q_.data(), k_cap_, scale_.data(), bias16_.data(), sum16_.data(), k_cap_ / 16,
          bias32_.data(), k_cap_ / 32};
}

}  // namespace qwen3::cpu
