#include "exec/stage.h"

namespace qwen3 {

const char* ToString(Stage stage) {
  static constexpr const char* kNames[kNumStages] = {
      "input_rmsnorm", "qkv_proj",        "qk_norm_rope_cache",
      "attention",     "attention_merge", "out_proj_residual",
      "post_rmsnorm",  "gate_up_silu",    "down_proj_residual",
      "final_rmsnorm", "lm_head",         "moe_router",
      "moe_experts"};
  const size_t i = static_cast<size_t>(stage);
  return i < kNumStages ? kNames[i] : "?";
}

double StageTimes::Total() const {
  double total = 0;
  for (double s : seconds) total += s;
  return total;
}

}  // namespace qwen3
