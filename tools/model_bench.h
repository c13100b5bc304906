// `qwen3-bench --model DIR`: the whole model from a checkpoint directory. Decode tokens/s at
// each batch (every user at --context tokens) as % of the memory-bandwidth limit (weights +
// the KV each step reads, over the read bandwidth measured before each step) and % of the
// roofline (max of that and the step's FLOPs over the path's peak dot rate,
// exec/cpu/peak_rate.h); prefill tokens/s as % of the compute limit (the FLOPs of the
// prompt over the peak dot rate). The JSON's "prefill" is the first batch's prefill.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace qwen3 {

struct ModelBenchOptions {
  std::string model_dir;
  std::string quantize;  // EngineOptions::quantize
  std::string kv_type = "bf16";  // EngineOptions::kv_type
  std::vector<size_t> batches = {1, 16};
  size_t context = 512;   // prompt tokens per user before the timed decode steps
  size_t steps = 20;      // timed decode steps per batch
  size_t max_rows = 128;  // prefill pass
  size_t threads = 0;
  double bw_gib = 2.5;
  std::string json_path;
  std::string trace_path;  // a Chrome/Perfetto trace of two decode steps of the first batch
  std::vector<size_t> attention_contexts;  // then attention alone at these contexts (tools/attention_contexts.h)
};

// Prints the tables; throws Error for bad options or checkpoints. The weights come from
// Engine::Open (serve = false, no tokenizer, options.threads workers).
void RunModelBench(const ModelBenchOptions& options);

}  // namespace qwen3
