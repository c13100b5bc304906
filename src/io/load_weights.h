// A checkpoint's tensors packed into the model's weights by an executor (build_weights.h):
// BF16 tensors straight from the file mapping (or quantized, LoadOptions), F16/F32 ones rounded
// to bf16 first, norm weights in fp32; a GGUF file's quantized tensors as they are. A tied
// model stores its embedding once, as the packed LM head. Every tensor was checked when the
// checkpoint was opened; a NaN weight is an Error naming the tensor.
#pragma once

#include "exec/executor.h"
#include "io/build_weights.h"
#include "model/model_weights.h"

namespace qwen3 {

class GgufCheckpoint;
class HfCheckpoint;

ModelWeights LoadModelWeights(const HfCheckpoint& ck, Executor& executor,
                              const LoadOptions& options = {});
// A GGUF file's tensors (gguf_weights.cc).
ModelWeights LoadModelWeights(const GgufCheckpoint& ck, Executor& executor,
                              const LoadOptions& options = {});

}  // namespace qwen3
