// qwen3-bench --attention-contexts: the attention stage alone (one layer's partials and merge,
// CpuExecutor::Attention) at each context length and batch size, with the KV cache in bf16 and
// in q8_0 side by side, against the read bandwidth measured before each rep: attention is a
// pure stream of the KV bytes, so its roofline is bytes / bandwidth.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <vector>

#include "exec/cpu/kernels.h"
#include "exec/executor.h"

namespace qwen3 {

class ThreadPool;
class ReadBandwidthProbe;

struct AttentionContextsOptions {
  std::vector<size_t> contexts;  // tokens per user
  std::vector<size_t> batches;
  size_t block_size = 128;
  size_t reps = 10;
};

// Prints the table; returns its rows as JSON ({kv_type, batch, context, ms, ms_min, ms_max,
// kv_bytes, gbs, pct_bw}).
nlohmann::json RunAttentionContexts(const ModelDims& dims, const cpu::CpuKernels& kernels,
                                    ThreadPool& pool, ReadBandwidthProbe& probe,
                                    const AttentionContextsOptions& options);

}  // namespace qwen3
