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

// Round to nearest even for |y| <= 2^22 by adding and subtracting 1.5 * 2^23: the default
// rounding mode does it, in plain adds the compiler vectorizes (std::nearbyint was a libm call
// per element: 26% of the int8 matmul's time at 0.6B b16). No FMA can fold it: this file is
// built for the x86-64 baseline.
inline float RoundEven(float y) {
  constexpr float kMagic = 12582912.0f;
  return (y + kMagic) - kMagic;
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
    int32_t c[16], sum = 0;
    for (size_t i = 0; i < 16; ++i) {  // |v * inv| <= 127 (+ rounding): no clamp needed past it
      c[i] = std::clamp(static_cast<int32_t>(RoundEven(v[i] * inv)), -127, 127);
      sum += c[i];
    }
    for (size_t i = 0; i < 16; ++i) q[b * 16 + i] = static_cast<int8_t>(c[i]);
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
