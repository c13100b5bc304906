// Shared by the attention tests (attention_test, attention_q8_test).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "base/bf16.h"
#include "base/rng.h"
#include "exec/cpu/attention.h"
#include "exec/cpu/kernels.h"

namespace qwen3::cpu {

// A zero-padded [16][padded_dim] q tile (rows past the group, dims past head_dim); row g has
// amplitude 0.5 * 2^(g % 5), so some rows have flat and some sharply peaked softmaxes.
inline std::vector<bf16> QTile(size_t head_dim, size_t group, uint64_t seed) {
  const CounterRng rng(seed, 3);
  const size_t padded = PaddedHeadDim(head_dim);
  std::vector<bf16> q(kTileM * padded, 0);
  for (size_t g = 0; g < group; ++g) {
    const float amp = std::ldexp(0.5f, static_cast<int>(g % 5));
    for (size_t d = 0; d < head_dim; ++d) {
      q[g * padded + d] = F32ToBf16(amp * (rng.Uniform(g * head_dim + d) * 2.0f - 1.0f));
    }
  }
  return q;
}

}  // namespace qwen3::cpu
