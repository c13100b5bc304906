#include "kernels/cpu/vec.h"

#include <cmath>

namespace qwen3::cpu {
namespace {

template <typename T>
float Load(const T* x, size_t i) {
  if constexpr (sizeof(T) == sizeof(bf16)) {
    return Bf16ToF32(x[i]);
  } else {
    return x[i];
  }
}

template <typename T>
void RmsNormToBf16Impl(const T* x, const float* weight, size_t n, float eps, bf16* out) {
  float sq = 0.0f;
  for (size_t i = 0; i < n; ++i) sq += Load(x, i) * Load(x, i);
  const float inv = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  for (size_t i = 0; i < n; ++i) out[i] = F32ToBf16(Load(x, i) * inv * weight[i]);
}

}  // namespace

void RmsNormToBf16(const bf16* x, const float* weight, size_t n, float eps, bf16* out) {
  RmsNormToBf16Impl(x, weight, n, eps, out);
}

void RmsNormToBf16(const float* x, const float* weight, size_t n, float eps, bf16* out) {
  RmsNormToBf16Impl(x, weight, n, eps, out);
}

void RmsNormInPlace(float* x, const float* weight, size_t n, float eps) {
  float sq = 0.0f;
  for (size_t i = 0; i < n; ++i) sq += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(sq / static_cast<float>(n) + eps);
  for (size_t i = 0; i < n; ++i) x[i] = x[i] * inv * weight[i];
}

void RopeHalfInPlace(float* x, const float* cos, const float* sin, size_t n) {
  const size_t half = n / 2;
  for (size_t i = 0; i < half; ++i) {
    const float lo = x[i], hi = x[i + half];
    x[i] = lo * cos[i] - hi * sin[i];
    x[i + half] = hi * cos[i + half] + lo * sin[i + half];
  }
}

}  // namespace qwen3::cpu
