// A generation request as the engine sees it (token ids in, tokens and text out), and the
// stream through which its output reaches whoever asked (an HTTP handler, the CLI): the engine
// thread pushes events and never blocks; the consumer waits on them with a timeout and may
// cancel at any time (the request leaves the engine at the next step boundary).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "generate/sampler.h"

namespace qwen3 {

enum class FinishReason : uint8_t {
  kNone,       // still running
  kEos,        // an end-of-sequence token (not part of the text)
  kStop,       // a stop string (not part of the text)
  kLength,     // max_tokens
  kCancelled,  // the consumer cancelled (client gone, Ctrl-C, shutdown)
  kError,      // the engine failed the request (message in the event)
};
const char* ToString(FinishReason r);

struct GenerationRequest {
  std::vector<int32_t> prompt;
  size_t max_tokens = 256;
  SamplingOptions sampling;          // seed included
  std::vector<std::string> stop;     // the text ends before the first one
  std::vector<int32_t> stop_ids;     // end-of-sequence ids (empty: ignore_eos)
  int top_logprobs = -1;             // -1: no logprobs; 0..20: the chosen token's + that many
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logits before sampling
  uint64_t sampler_stream = 0;       // the draw's stream: choice i of a request uses i
};

struct TopLogprob {
  int32_t token;
  float logprob;
};
struct TokenOutput {
  int32_t token;
  float logprob = 0;              // when logprobs were asked
  std::vector<TopLogprob> top;    // top_logprobs most likely, best first
};

struct Usage {
  size_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

// What the consumer receives: merged events since its last Wait.
struct StreamEvent {
  std::string text;                 // complete UTF-8, never part of a stop string
  std::vector<TokenOutput> tokens;  // tokens generated since the last event
  FinishReason finish = FinishReason::kNone;
  std::string error;                // for kError
  Usage usage;                      // valid when finish != kNone
  bool finished() const { return finish != FinishReason::kNone; }
};

class RequestStream {
 public:
  // Consumer: waits up to timeout for output; false when nothing arrived. After an event
  // with finished(), no more come.
  bool Wait(StreamEvent& out, std::chrono::milliseconds timeout);
  void Cancel();
  bool cancelled() const;

  // Engine side.
  void Push(StreamEvent&& e);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  bool cancelled_ = false;
};

}  // namespace qwen3
