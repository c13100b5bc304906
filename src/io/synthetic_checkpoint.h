// Synthetic Qwen3 checkpoints in the Hugging Face layout (config.json, bf16 safetensors with
// HF tensor names, sharded with model.safetensors.index.json past max_shard_bytes), so the
// whole load -> forward path runs on real shapes without downloads. Values are seeded
// (CounterRng per tensor name): the same seed writes the same bytes. Tensors are generated
// while being written, never all in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "base/rng.h"
#include "model/config.h"

namespace qwen3 {

struct SyntheticCheckpointOptions {
  uint64_t seed = 0;
  size_t max_shard_bytes = 4'000'000'000;  // transformers' save_pretrained("4GB") style
};

struct SyntheticCheckpointInfo {
  size_t tensors = 0, shards = 0, bytes = 0;
};

// The config.json text of c (transformers 4 layout).
std::string HfConfigJson(const Qwen3Config& c);

// The synthetic values of the HF tensor `name` (before the checkpoint rounds them to bf16):
// linears and the embedding uniform with std ~0.02 (transformers' initializer_range), norm
// weights around 1, an MoE router with std 3 / sqrt(hidden) (router logits of std ~3, as
// trained routers: decisive, few near-ties). The GGUF writer of make-checkpoint uses the same.
class SyntheticValues {
 public:
  SyntheticValues(const std::string& name, size_t hidden, uint64_t seed);
  float operator()(size_t i) const;

 private:
  CounterRng rng_;
  float scale_, offset_;
};

// Writes the checkpoint into dir, which must not exist or be empty. The directory appears
// complete or not at all (written as dir.partial, then renamed).
SyntheticCheckpointInfo WriteSyntheticCheckpoint(const Qwen3Config& c,
                                                 const SyntheticCheckpointOptions& options,
                                                 const std::string& dir);

}  // namespace qwen3
