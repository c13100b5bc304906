// RoPE rotation tables in fp32, host memory: row pos holds the rotation of position pos.
#pragma once

#include <cstddef>

#include "base/aligned_buffer.h"

namespace qwen3 {

// cos/sin [max_seq, head_dim] fp32; row pos is the rotation of position pos.
struct RopeTable {
  size_t max_seq = 0, head_dim = 0;
  AlignedBuffer<float> cos, sin;

  // The seed passes the tables as inputs (random in its test).
  static RopeTable FromTables(const float* cos, const float* sin, size_t max_seq, size_t head_dim);
  // Real Qwen3: inv_freq[i] = theta^(-2i/head_dim), angle = pos * inv_freq, half repeated.
  static RopeTable FromTheta(double theta, size_t max_seq, size_t head_dim);
};

}  // namespace qwen3
