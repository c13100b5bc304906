// The fused single-layer decode program (spec §3), written once as a fixed sequence of stage
// calls on an Executor (exec/executor.h), which runs each over the whole batch:
//
//   input_rmsnorm -> qkv_proj -> qk_norm_rope_cache -> attention (split-KV partials + merge)
//   -> out_proj(+residual) -> post_rmsnorm -> gate_up_silu -> down_proj(+residual)
//   [-> final_rmsnorm -> lm_head]
//
// In a mixture-of-experts layer the FFN (gate_up_silu, down_proj) is one MoE stage: router,
// top-k, the routed experts over their rows, their weighted sum plus the residual.
//
// Everything is validated before the first stage runs, so a bad input throws Error and leaves
// the KV cache untouched.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/bf16.h"
#include "exec/executor.h"
#include "model/config.h"
#include "model/layer_weights.h"

namespace qwen3 {

class DecodeLayer {
 public:
  struct Options {
    size_t max_batch = 16;
    size_t max_seq = 4096;
    // KV pages per attention split; 1 is the seed's one partial per (user, KV head, block),
    // 0 picks automatically (AttentionOptions).
    size_t pages_per_split = 0;
    // With pages_per_split = 0: true picks each row's split length from its own length alone
    // (as if it ran by itself), so a row's attention never depends on the other rows of its
    // pass (batch invariance: the serving engine's law); false picks one length for the batch.
    bool per_row_splits = false;
  };
  static constexpr size_t kMaxPagesPerSplit = 64;

  // Reserves the executor's activations for max_batch rows.
  DecodeLayer(const Qwen3Config& config, const Options& options, Executor& executor);

  // Throws Error on the first bad value: batch outside 1..max_batch, a seq_len outside
  // 1..max_seq (or past the rope table), a block_table entry outside the pool, a slot that is
  // not where block_table puts the current token, two users writing one slot, NaN/Inf hidden
  // (hidden may be null: not checked).
  void Validate(const DecodeBatch& batch, const KvCache& kv, const RopeTable& rope,
                const bf16* hidden) const;

  // The seed's interface: hidden, next_hidden [batch, hidden] bf16 host rows (may not alias).
  // Writes each user's current K/V into kv at its slot.
  void Run(const LayerWeights& w, const RopeTable& rope, KvCache& kv, const DecodeBatch& batch,
           const bf16* hidden, bf16* next_hidden, StageTimes* times = nullptr);
  // The layer on the executor's resident hidden rows (Act::kHidden, replaced by the output).
  // chosen (MoE layers; may be null): each row's experts, [batch, experts_used].
  void Forward(const LayerWeights& w, const RopeTable& rope, KvCache& kv, const DecodeBatch& batch,
               StageTimes* times = nullptr, int32_t* chosen = nullptr);

  // Final RMSNorm + LM head of host rows: logits[b * ld_logits + v] for v < lm.rows (fp32);
  // other columns untouched.
  void RunLmHead(const LmHeadWeights& lm, const bf16* hidden, size_t batch, float* logits,
                 size_t ld_logits, StageTimes* times = nullptr);
  // The same for rows of the resident hidden (Act::kHidden), in the order given.
  void LmHead(const LmHeadWeights& lm, std::span<const uint32_t> rows, float* logits,
              size_t ld_logits, StageTimes* times = nullptr);

  const Options& options() const { return options_; }
  AttentionOptions attention_options() const {
    return {options_.pages_per_split, options_.per_row_splits};
  }

 private:
  void ProgramStages(const LayerWeights& w, const RopeTable& rope, KvCache& kv,
                     const DecodeBatch& batch, int32_t* chosen);
  void MoeFfn(const LayerWeights& w, size_t n, int32_t* chosen);

  Qwen3Config config_;
  Options options_;
  Executor& x_;
  mutable std::vector<std::pair<int32_t, size_t>> validate_slots_;  // Validate's scratch
  std::vector<const Weight*> expert_ptrs_;  // [2 * experts]: gate_up, then down (MoeFfn)
};

}  // namespace qwen3
