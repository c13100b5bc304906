// A Hugging Face checkpoint's tensors packed into the model's weights (io produces host
// tensors, the executor packs them): BF16 tensors are packed straight from the file mapping (or quantized,
// LoadOptions), F16/F32 ones are rounded to bf16 first, norm weights are kept in fp32, and a tied model stores its
// embedding once, as the packed LM head. Every tensor was checked at HfCheckpoint::Open; a NaN
// weight is an Error naming the tensor.
#pragma once

#include <optional>

#include "exec/executor.h"
#include "model/model_weights.h"

namespace qwen3 {

class GgufCheckpoint;
class HfCheckpoint;

struct LoadOptions {
  // Quantize every projection and the LM head at load (--quantize q8_0|q4_0), with
  // llama.cpp's block formats; the embedding table of an untied model stays bf16 (it is read a
  // row per token, not streamed).
  std::optional<WeightType> quantize;
};

ModelWeights LoadModelWeights(const HfCheckpoint& ck, Executor& executor,
                              const LoadOptions& options = {});
// A GGUF file's tensors (gguf_weights.cc): quantized ones repacked as they are (--quantize
// applies to its float tensors only).
ModelWeights LoadModelWeights(const GgufCheckpoint& ck, Executor& executor,
                              const LoadOptions& options = {});

}  // namespace qwen3
