// The benchmark's variants of the CPU executor (qwen3-bench), to measure what the seed's design
// choices are worth; the production executor has no such branches.
#pragma once

#include "exec/cpu/cpu_executor.h"

namespace qwen3 {

// out_proj / gate_up / down_proj write fp32 to a full-size scratch, then a separate epilogue
// pass over it: the schedule PR #387 replaced with fused epilogues.
class UnfusedEpilogueExecutor final : public cpu::CpuExecutor {
 public:
  using CpuExecutor::CpuExecutor;
  void Linear(Stage stage, std::span<const Weight* const> w, Act in, Act out, size_t n,
              Epilogue epi) override;

 private:
  AlignedBuffer<float> scratch_;  // [rows, the widest projection]
};

// Attention partials and merge dispatched once per user (query block), as before PR #387
// flattened them into one dispatch over the whole batch.
class PerUserAttentionExecutor final : public cpu::CpuExecutor {
 public:
  using CpuExecutor::CpuExecutor;
  void Attention(const KvCache& kv, const DecodeBatch& batch, const AttentionOptions& options,
                 Act out) override;
};

}  // namespace qwen3
