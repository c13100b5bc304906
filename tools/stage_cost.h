// What each decode stage must move and compute at least, the two sides of qwen3-bench's
// roofline: a stage takes at least max(bytes / read bandwidth, FLOPs / peak dot rate).
#pragma once

#include <array>
#include <cstddef>

#include "model/config.h"
#include "model/decode_layer.h"

namespace qwen3 {

// Bytes each stage must move at least (weights, KV of every context token, activations,
// partials), for GB/s and % of bandwidth; lm_rows = 0 leaves the LM head out.
std::array<double, kNumStages> StageBytes(const Qwen3Config& config, const DecodeBatch& batch,
                                          size_t lm_rows, size_t pages_per_split,
                                          size_t block_size);

// FLOPs each stage must do (useful work, no padding): 2 * rows * K * N per projection;
// attention q.K^T and P.V, 2 * 2 * heads * head_dim per context token per user; the
// elementwise stages at a nominal few FLOPs per element (norms 4, head norm + RoPE 7, SiLU.up 5,
// residual 1, merge 2), which keeps them far below their bytes: they are memory-bound anyway.
// lm_rows = 0 leaves the LM head out.
// An MoE layer (moe_layer) has no dense FFN: its router and each row's experts_used experts
// (2 H I_moe for gate and for up, 2 I_moe H for down, SiLU.up and the weighted sum) count as
// moe_router and moe_experts.
std::array<double, kNumStages> StageFlops(const Qwen3Config& config, const DecodeBatch& batch,
                                          size_t lm_rows, bool moe_layer = false);

}  // namespace qwen3
