// A Hugging Face checkpoint's tensors packed into the model's weights (io produces tensors,
// model consumes them): BF16 tensors are packed straight from the file mapping, F16/F32 ones
// are rounded to bf16 first, norm weights are kept in fp32, and a tied model stores its
// embedding once, as the packed LM head. Every tensor was checked at HfCheckpoint::Open; a NaN
// weight is an Error naming the tensor.
#pragma once

#include "model/model_weights.h"

namespace qwen3 {

class HfCheckpoint;
class ThreadPool;

ModelWeights LoadModelWeights(const HfCheckpoint& ck, ThreadPool& pool);

}  // namespace qwen3
