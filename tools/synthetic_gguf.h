// `qwen3 make-checkpoint --gguf TYPE`: a synthetic Qwen3 (or Qwen3-MoE) model written directly
// as one GGUF file of a quantized type, as llama.cpp's convert + llama-quantize would lay it
// out, so both engines can be measured on the same file without a bf16 copy first (a 30B-A3B
// in bf16 is 61 GB; its Q4_K_M ~17 GB). The values are make-checkpoint's (SyntheticValues, by
// HF tensor name), quantized row by row; the tokenizer and chat template come from a
// tokenizer.json (and tokenizer_config.json) beside it, padded to the vocabulary as
// convert_hf_to_gguf pads them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "model/config.h"

namespace qwen3 {

class ThreadPool;

struct SyntheticGgufOptions {
  uint64_t seed = 0;
  // bf16 | q8_0 | q4_0 (output Q6_K, as llama-quantize) | q4_k_m (Q4_K, with Q6_K for the
  // output and for attn_v / ffn_down(_exps) of llama-quantize's "more bits" layers).
  std::string type = "q4_k_m";
  std::string tokenizer;  // tokenizer.json or its directory; empty: no tokenizer metadata
};

struct SyntheticGgufInfo {
  size_t tensors = 0, bytes = 0;
};

SyntheticGgufInfo WriteSyntheticGguf(const Qwen3Config& c, const SyntheticGgufOptions& options,
                                     const std::string& path, ThreadPool& pool);

}  // namespace qwen3
