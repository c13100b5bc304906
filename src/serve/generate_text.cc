#include "serve/generate_text.h"

#include <chrono>
#include <memory>

#include "serve/engine.h"

namespace qwen3 {

std::vector<TextResult> GenerateText(Engine& engine, std::vector<GenerationRequest> requests,
                                     const std::function<void(size_t, std::string_view)>& on_text,
                                     const std::atomic<bool>* cancel) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::vector<std::shared_ptr<RequestStream>> streams;
  try {
    for (GenerationRequest& r : requests) {
      streams.push_back(engine.Submit({std::move(r)}).front());
    }
  } catch (...) {
    for (auto& s : streams) s->Cancel();
    throw;
  }
  std::vector<TextResult> out(streams.size());
  size_t open = streams.size();
  bool cancelled = false;
  while (open > 0) {
    if (cancel && cancel->load() && !cancelled) {
      cancelled = true;
      for (auto& s : streams) s->Cancel();
    }
    bool waited = false;
    for (size_t i = 0; i < streams.size(); ++i) {
      TextResult& r = out[i];
      if (r.finish != FinishReason::kNone) continue;
      StreamEvent e;
      // The first open stream waits, the others are read if they have output: their tokens
      // come in the same steps, so nothing spins.
      const auto timeout = std::chrono::milliseconds(waited ? 0 : 50);
      waited = true;
      if (!streams[i]->Wait(e, timeout)) continue;
      const double t = std::chrono::duration<double>(Clock::now() - t0).count();
      if (r.tokens.empty() && !e.tokens.empty()) r.ttft_seconds = t;
      r.text += e.text;
      for (TokenOutput& tok : e.tokens) r.tokens.push_back(std::move(tok));
      if (on_text && !e.text.empty()) on_text(i, e.text);
      if (e.finished()) {
        r.finish = e.finish;
        r.error = e.error;
        r.usage = e.usage;
        r.total_seconds = t;
        --open;
      }
    }
  }
  return out;
}

}  // namespace qwen3
