// Next-token choice from fp32 logits: greedy, or temperature sampling narrowed by top-k,
// top-p and min-p, after the penalties: repetition over the prompt and the tokens generated so
// far (vLLM's), presence and frequency over the generated tokens only (OpenAI's). Ids at or past `allowed` (the padded rows of the LM head beyond the
// tokenizer's vocab) are never chosen. Sampling is reproducible: the draw of step s of
// sequence u is a pure function of (seed, u, s).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace qwen3 {

struct SamplingOptions {
  float temperature = 0.0f;  // 0 = greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  float min_p = 0.0f;        // 0 = off
  float repetition_penalty = 1.0f;  // > 1 discourages repeats (logit / p if > 0, * p if < 0)
  float presence_penalty = 0.0f;    // subtracted once from every token generated so far
  float frequency_penalty = 0.0f;   // subtracted per occurrence in the generated tokens
  uint64_t seed = 0;
};

// Throws Error naming the first out-of-range option.
void ValidateSampling(const SamplingOptions& o);

class Sampler {
 public:
  Sampler(const SamplingOptions& options, size_t allowed);
  // logits [vocab]; history: the sequence so far (prompt + generated), of which the first
  // prompt_len are the prompt; stream/step pick the random draw. The logits are not modified.
  int32_t Sample(std::span<const float> logits, std::span<const int32_t> history,
                 size_t prompt_len, uint64_t stream, uint64_t step);

 private:
  SamplingOptions o_;
  size_t allowed_;
  std::vector<float> work_;
  std::vector<int32_t> ids_;
  std::vector<uint8_t> seen_;
  std::vector<int32_t> counts_;
  std::vector<double> probs_;
};

}  // namespace qwen3
