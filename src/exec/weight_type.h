// The weight types an executor holds matrices in: bf16, and llama.cpp's quantized block formats
// (GGUF Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K; --quantize makes Q8_0 or Q4_0).
#pragma once

#include <string>

namespace qwen3 {

enum class WeightType { kBf16, kQ8_0, kQ4_0, kQ4_K, kQ6_K, kQ4_1, kQ5_0, kQ5_1, kQ5_K };
constexpr int kNumWeightTypes = 9;
const char* ToString(WeightType type);  // "bf16", "q8_0", "q4_0", "q4_k", "q6_k", "q4_1", ...
// "q8_0" or "q4_0" (the --quantize targets); anything else throws Error naming the value.
WeightType ParseQuantizeType(const std::string& name);

}  // namespace qwen3
