// The engine's weights of one decoder layer and of the LM head, packed once by an executor
// (exec/executor.h: opaque to the model), and the seed-layout constructors of the harness.
// Packing checks every value is finite and throws Error naming the tensor otherwise.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "exec/executor.h"
#include "model/config.h"
#include "model/layer_tensors.h"

namespace qwen3 {

struct LayerWeights {
  std::unique_ptr<Weight> input_norm, post_norm;  // [hidden]
  std::unique_ptr<Weight> q_norm, k_norm;         // [head_dim]
  std::unique_ptr<Weight> wq, wk, wv;             // hidden -> q_dim, kv_dim, kv_dim
  std::unique_ptr<Weight> wo;                     // q_dim -> hidden
  std::unique_ptr<Weight> w_gate_up;              // hidden -> gate | up (PackGateUp)
  std::unique_ptr<Weight> w_down;                 // intermediate -> hidden
  // An MoE layer instead of w_gate_up / w_down: the router and each expert's FFN.
  std::unique_ptr<Weight> router;                 // [experts, hidden] fp32 (PackRouter)
  std::vector<std::unique_ptr<Weight>> expert_gate_up, expert_down;

  bool moe() const { return router != nullptr; }

  static LayerWeights FromSeedLayout(const Qwen3Config& c, const LayerTensors& t, Executor& x);
  size_t bytes() const;
};

struct LmHeadWeights {
  std::unique_ptr<Weight> final_norm;  // [hidden]
  std::unique_ptr<Weight> weight;      // hidden -> rows (vocab, or fewer for the seed's modes)
  size_t rows = 0;

  // From lm_head [rows, hidden]; rows may be 0 (final norm only).
  static LmHeadWeights FromSeedLayout(const Qwen3Config& c, const LayerTensors& t, Executor& x);
  size_t bytes() const;
};

// The executor's shapes of a model.
ModelDims DimsOf(const Qwen3Config& c);

}  // namespace qwen3
