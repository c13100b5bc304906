#include "exec/rope_table.h"

#include <cmath>

#include "exec/finite.h"

namespace qwen3 {

RopeTable RopeTable::FromTables(const float* cos, const float* sin, size_t max_seq,
                                size_t head_dim) {
  RopeTable r;
  r.max_seq = max_seq;
  r.head_dim = head_dim;
  r.cos = CopyFinite(cos, max_seq * head_dim, "rope_cos");
  r.sin = CopyFinite(sin, max_seq * head_dim, "rope_sin");
  return r;
}

RopeTable RopeTable::FromTheta(double theta, size_t max_seq, size_t head_dim) {
  RopeTable r;
  r.max_seq = max_seq;
  r.head_dim = head_dim;
  r.cos = AlignedBuffer<float>(max_seq * head_dim);
  r.sin = AlignedBuffer<float>(max_seq * head_dim);
  const size_t half = head_dim / 2;
  for (size_t i = 0; i < half; ++i) {
    // fp32 inv_freq as transformers computes it, angle in fp32 as well.
    const float inv_freq = static_cast<float>(
        1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim)));
    for (size_t pos = 0; pos < max_seq; ++pos) {
      const float angle = static_cast<float>(pos) * inv_freq;
      const float c = std::cos(angle), s = std::sin(angle);
      r.cos[pos * head_dim + i] = r.cos[pos * head_dim + i + half] = c;
      r.sin[pos * head_dim + i] = r.sin[pos * head_dim + i + half] = s;
    }
  }
  return r;
}

}  // namespace qwen3
