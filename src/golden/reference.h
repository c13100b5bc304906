// The golden decode layer (spec §4, decode_layer.py golden_decode_layer): the same math as the
// engine written as plain loops over the seed's own layouts, with the seed's rounding points
// (bf16 normed activations, q/k after RoPE, softmax numerators, attention output, SiLU.up
// output, next hidden, final normed; fp32 everywhere else). It shares no kernel code with the
// engine: a bug in a kernel cannot hide in the reference.
#pragma once

#include <vector>

#include "model/layer_tensors.h"

namespace qwen3 {

class ThreadPool;

struct GoldenOutputs {
  std::vector<bf16> next_hidden;  // [batch, hidden]
  std::vector<float> out;         // [batch, vocab]; columns >= t.lm_rows are 0
};

// Writes the current tokens' K/V into t.k_cache / t.v_cache (seed layout), as the kernel does.
// The pool only splits independent output columns across threads.
GoldenOutputs GoldenDecodeLayer(const LayerShape& shape, LayerTensors& t, ThreadPool& pool);

}  // namespace qwen3
