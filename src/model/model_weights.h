// All weights of a Qwen3 model, packed once for the cube: one LayerWeights per decoder layer,
// the final norm + LM head, and the token embedding. Built from a Hugging Face checkpoint
// (io/hf_checkpoint.h): BF16 tensors are packed straight from the file mapping, F16/F32 ones
// are rounded to bf16 first (norm weights are kept in fp32). A tied model stores its embedding
// once, as the packed LM head, and looks embedding rows up there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "model/config.h"
#include "model/layer_weights.h"

namespace qwen3 {

class HfCheckpoint;
class ThreadPool;

struct ModelWeights {
  Qwen3Config config;
  std::vector<LayerWeights> layers;
  LmHeadWeights lm;              // final norm + [hidden -> vocab]
  AlignedBuffer<bf16> embed;     // [vocab, hidden]; empty when tied (rows come from lm.weight)

  static ModelWeights FromCheckpoint(const HfCheckpoint& ck, ThreadPool& pool);

  // out[hidden] = embedding row of token (0 <= token < vocab, checked by the caller).
  void Embed(int32_t token, bf16* out) const;
  // Bytes the engine keeps resident for the weights.
  size_t bytes() const;
};

}  // namespace qwen3
