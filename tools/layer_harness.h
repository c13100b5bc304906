// The seed harness (decode_layer.py's test_decode_layer) as a reusable object: synthetic
// inputs from a seed, the engine's packed weights and paged KV cache, one decode step of the
// layer + final RMSNorm + LM head, and the golden check. qwen3-layer is a thin CLI over it;
// the tests drive it directly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "golden/compare.h"
#include "golden/reference.h"
#include "exec/cpu/cpu_executor.h"
#include "exec/cpu/kv_cache.h"
#include "model/decode_layer.h"
#include "model/layer_tensors.h"
#include "runtime/thread_pool.h"

namespace qwen3 {

struct LayerHarnessOptions {
  std::string config = "14b";  // preset or path to a config.json
  int vocab = 0;               // > 0 overrides the config's vocab
  size_t batch = 16;
  bool all_max_seq = false;       // every seq_len = max_seq, else random 1..max_seq
  std::vector<int32_t> seq_lens;  // explicit seq_lens (one per user), overrides both
  LmHeadMode lm_head = LmHeadMode::kFull;
  uint64_t seed = 0;
  size_t threads = 0;  // 0 = all cores
  size_t max_seq = 4096;
  size_t block_size = 128;
  size_t kv_blocks = 0;        // KV pool size; 0 = batch * ceil(max_seq / block_size)
  size_t pages_per_split = 0;  // 0 = automatic (cpu::PagesPerSplit)
};

struct HarnessCheck {
  CompareResult logits;       // out [batch, vocab] vs golden (the seed's check)
  CompareResult next_hidden;  // the layer's output vs golden (checked in every mode)
  bool pass() const { return logits.pass() && next_hidden.pass(); }
};

class LayerHarness {
 public:
  // Throws Error for bad options before anything is allocated.
  explicit LayerHarness(const LayerHarnessOptions& options);

  const Qwen3Config& config() const { return shape_.config; }
  const LayerShape& shape() const { return shape_; }
  cpu::CpuPath path() const { return executor_->kernels().path; }
  size_t threads() const { return pool_->NumWorkers(); }
  DecodeBatch batch() const;
  LayerTensors& tensors() { return tensors_; }
  cpu::PagedKvCache& kv_cache() { return static_cast<cpu::PagedKvCache&>(*kv_); }
  DecodeLayer& layer() { return *layer_; }
  const LayerWeights& weights() const { return weights_; }

  ThreadPool& pool() { return *pool_; }
  const cpu::CpuKernels& kernels() const { return executor_->kernels(); }
  cpu::CpuExecutor& executor() { return *executor_; }
  DecodeLayer::Options layer_options() const;
  // The split length the step runs with (options.pages_per_split, or the automatic choice).
  size_t PagesPerSplit() const;

  // One decode step: layer, then final RMSNorm + LM head (per the mode).
  void Step(StageTimes* times = nullptr) { StepWith(*layer_, times); }
  // The same step through another program instance (the benchmark's variants).
  void StepWith(DecodeLayer& layer, StageTimes* times = nullptr);
  const std::vector<float>& out() const { return out_; }                 // [batch, vocab]
  const std::vector<bf16>& next_hidden() const { return next_hidden_; }  // [batch, hidden]

  // Runs the golden on the harness's seed-layout tensors and compares with the last Step.
  HarnessCheck Check(double rtol, double atol);

 private:
  LayerShape shape_;
  LayerHarnessOptions options_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<cpu::CpuExecutor> executor_;
  LayerTensors tensors_;
  LayerWeights weights_;
  LmHeadWeights lm_head_;
  RopeTable rope_;
  std::unique_ptr<KvCache> kv_;
  std::unique_ptr<DecodeLayer> layer_;
  std::vector<bf16> next_hidden_;
  std::vector<float> out_;
};

}  // namespace qwen3
