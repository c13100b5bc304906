// Row-wise vector ops of the decode layer (spec §3), fp32 math with the seed's rounding points.
// These are O(batch x hidden) per step, far below the matmuls, so they are plain loops.
#pragma once

#include <cstddef>

#include "base/bf16.h"

namespace qwen3::cpu {

// out = bf16(x * rsqrt(mean(x^2) + eps) * weight) over n elements (input, post and final
// RMSNorm; x is bf16 hidden or the fp32 residual).
void RmsNormToBf16(const bf16* x, const float* weight, size_t n, float eps, bf16* out);
void RmsNormToBf16(const float* x, const float* weight, size_t n, float eps, bf16* out);

// In place, fp32: x = x * rsqrt(mean(x^2) + eps) * weight (per-head q/k norm).
void RmsNormInPlace(float* x, const float* weight, size_t n, float eps);

// Half-rotation RoPE (NeoX, spec §3 stage 4) in place over one head of n = 2 * half values:
// lo' = lo * cos[:half] - hi * sin[:half]; hi' = hi * cos[half:] + lo * sin[half:].
void RopeHalfInPlace(float* x, const float* cos, const float* sin, size_t n);

}  // namespace qwen3::cpu
