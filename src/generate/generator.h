// Text generation over a Model: a batch of prompts (token ids) decoded together, one user
// each — prefill all, then one decode step for every unfinished sequence per step — sampled
// by Sampler, stopped by eos ids, stop strings or max_tokens, and streamed as text: each
// chunk handed to on_text is valid UTF-8 and never part of a stop string.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "generate/sampler.h"

namespace qwen3 {

class Model;
class Tokenizer;

struct GenerateOptions {
  size_t max_tokens = 256;
  std::vector<int32_t> eos_ids;          // e.g. <|im_end|>, <|endoftext|>
  std::vector<std::string> stop_strings;  // the text ends before the first one
  SamplingOptions sampling;
};

struct Generation {
  std::string text;             // without the stop string / eos token
  std::vector<int32_t> tokens;  // generated ids (including an eos id that ended it)
  std::string finish_reason;    // "eos", "stop", "length" or "cancelled"
};

struct GenerateStats {
  size_t prompt_tokens = 0, generated_tokens = 0, steps = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

class Generator {
 public:
  Generator(Model& model, const Tokenizer& tokenizer);

  // prompts.size() <= the model's max_users; each prompt + max_tokens must fit in its
  // max_seq (checked first: an Error, nothing run). on_text(i, chunk) streams sequence i;
  // cancel, when set, ends every sequence after the current step ("cancelled").
  std::vector<Generation> Generate(
      const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& options,
      const std::function<void(size_t, std::string_view)>& on_text = nullptr,
      const std::atomic<bool>* cancel = nullptr, GenerateStats* stats = nullptr);

 private:
  Model& model_;
  const Tokenizer& tok_;
};

}  // namespace qwen3
