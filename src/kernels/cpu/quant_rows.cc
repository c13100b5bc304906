#include "kernels/cpu/quant_rows.h"

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
  bias32_ = AlignedBuffer<float>(rows_cap_ * k_cap_ / 32);
}

void QuantizedRows::QuantizeRow(const bf16* x, size_t r) {
  int8_t* q = q_.data() + r * k_cap_;
  float* scale = scale_.data() + r * (k_cap_ / 16);
  float* bias16 = bias16_.data() + r * (k_cap_ / 16);
  float* bias32 = bias32_.data() + r * (k_cap_ / 32);
  for (size_t b = 0; b < k_ / 16; ++b) {
    float v[16], amax = 0;
    for (size_t i = 0; i < 16; ++i) {
      v[i] = Bf16ToF32(x[b * 16 + i]);
      amax = std::max(amax, std::fabs(v[i]));
    }
    const float inv = amax > 0 ? 127.0f / amax : 0.0f;
    scale[b] = amax / 127.0f;
    int32_t sum = 0;
    for (size_t i = 0; i < 16; ++i) {
      const int c = static_cast<int>(std::nearbyint(v[i] * inv));  // the default mode: RNE
      q[b * 16 + i] = static_cast<int8_t>(std::clamp(c, -127, 127));
      sum += q[b * 16 + i];
    }
    bias16[b] = scale[b] * static_cast<float>(sum);
    if (b % 2 == 1) bias32[b / 2] = bias16[b - 1] + bias16[b];
  }
}

void QuantizedRows::Quantize(const bf16* x, size_t lda, size_t rows, size_t k, ThreadPool& pool) {
  Reserve(rows, k);
  pool.Spmd(rows, [&](size_t r, size_t) { QuantizeRow(x + r * lda, r); }, "quantize_rows");
}

QuantRows QuantizedRows::view() const {
  return {q_.data(), k_cap_, scale_.data(), bias16_.data(), k_cap_ / 16, bias32_.data(),
          k_cap_ / 32};
}

}  // namespace qwen3::cpu
