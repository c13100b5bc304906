// An MoE router's decision for one row, shared by every executor so they route alike:
// transformers' Qwen3MoeSparseMoeBlock (and llama.cpp's qwen3moe graph) — softmax in fp32 over
// all experts' logits, the k most probable (ties: the lower expert id, where torch.topk leaves
// the order unspecified), their probabilities renormalized to sum 1 when norm.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qwen3 {

// ids[0..k) and weights[0..k): the chosen experts by descending probability. probs is scratch
// of `experts` floats. k in 1..experts.
void RouteTopK(const float* logits, size_t experts, size_t k, bool norm, float* probs,
               int32_t* ids, float* weights);

}  // namespace qwen3
