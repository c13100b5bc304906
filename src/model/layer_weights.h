// The engine's weights of one decoder layer and of the LM head, packed once for the cube
// (kernels/cpu/weight_matrix.h: bf16 or quantized, per matrix), and the RoPE tables. Built from the seed-layout tensors;
// construction checks every value is finite and throws Error naming the tensor otherwise.
#pragma once

#include <cstddef>

#include "base/aligned_buffer.h"
#include "kernels/cpu/weight_matrix.h"
#include "model/config.h"
#include "model/layer_tensors.h"

namespace qwen3 {

class ThreadPool;

struct LayerWeights {
  AlignedBuffer<float> input_norm, post_norm;  // [hidden]
  AlignedBuffer<float> q_norm, k_norm;         // [head_dim]
  cpu::WeightMatrix wq, wk, wv;                // hidden -> q_dim, kv_dim, kv_dim
  cpu::WeightMatrix wo;                        // q_dim -> hidden
  cpu::WeightMatrix w_gate_up;                 // hidden -> 2 x intermediate, interleaved by 32
  cpu::WeightMatrix w_down;                    // intermediate -> hidden

  static LayerWeights FromSeedLayout(const Qwen3Config& c, const LayerTensors& t, ThreadPool& pool);
  size_t bytes() const;
};

struct LmHeadWeights {
  AlignedBuffer<float> final_norm;  // [hidden]
  cpu::WeightMatrix weight;         // hidden -> rows (vocab, or fewer for the seed's modes)
  size_t rows = 0;

  // From lm_head [rows, hidden]; rows may be 0 (final norm only).
  static LmHeadWeights FromSeedLayout(const Qwen3Config& c, const LayerTensors& t,
                                      ThreadPool& pool);
};

// cos/sin [max_seq, head_dim] fp32; row pos is the rotation of position pos.
struct RopeTable {
  size_t max_seq = 0, head_dim = 0;
  AlignedBuffer<float> cos, sin;

  // The seed passes the tables as inputs (random in its test).
  static RopeTable FromTables(const float* cos, const float* sin, size_t max_seq, size_t head_dim);
  // Real Qwen3: inv_freq[i] = theta^(-2i/head_dim), angle = pos * inv_freq, half repeated.
  static RopeTable FromTheta(double theta, size_t max_seq, size_t head_dim);
};

// Copies n fp32 values, throwing Error naming `name` and the index of a NaN/Inf.
AlignedBuffer<float> CopyFinite(const float* src, size_t n, const std::string& name);
// Copies a [rows, cols] bf16 matrix, throwing Error naming `name` and [row, col] of a NaN/Inf.
AlignedBuffer<bf16> CopyFiniteBf16(const bf16* src, size_t rows, size_t cols,
                                   const std::string& name);

}  // namespace qwen3
