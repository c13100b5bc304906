// Requests run to completion on an Engine, for the commands and tests that want whole answers
// (qwen3 generate / chat): each request is submitted on its own, all run concurrently in the
// engine's batch, and text streams to a callback as it is decoded.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/request.h"

namespace qwen3 {

class Engine;

struct TextResult {
  std::string text;
  std::vector<TokenOutput> tokens;  // generated (an eos that ended it included)
  FinishReason finish = FinishReason::kNone;
  std::string error;
  Usage usage;
  double ttft_seconds = 0, total_seconds = 0;  // from submission
};

// on_text(i, chunk) streams request i; cancel, when set, cancels every request still running.
// Throws Error for a request the engine refuses (before any runs).
std::vector<TextResult> GenerateText(
    Engine& engine, std::vector<GenerationRequest> requests,
    const std::function<void(size_t, std::string_view)>& on_text = nullptr,
    const std::atomic<bool>* cancel = nullptr);

}  // namespace qwen3
