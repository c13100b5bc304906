#include "generate/generator.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Per sequence: the decoded text so far, how much of it was streamed, and the stop check.
struct Stream {
  std::string text;
  size_t emitted = 0;
  bool done = false;
};

// Length of the longest suffix of text that is a proper prefix of some stop string: that
// much must be held back, since the next token may complete the stop string.
size_t HeldBack(std::string_view text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops) {
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k) {
      if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace

Generator::Generator(Model& model, const Tokenizer& tokenizer) : model_(model), tok_(tokenizer) {}

std::vector<Generation> Generator::Generate(
    const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o,
    const std::function<void(size_t, std::string_view)>& on_text, const std::atomic<bool>* cancel,
    GenerateStats* stats) {
  const size_t n = prompts.size();
  if (n == 0) throw Error("generate: no prompts: expected at least one");
  if (n > model_.options().max_users) {
    throw Error("generate: " + std::to_string(n) + " prompts: expected at most " +
                std::to_string(model_.options().max_users) + " (the model's users)");
  }
  if (o.max_tokens == 0) throw Error("generate: max_tokens = 0: expected at least 1");
  for (const std::string& s : o.stop_strings) {
    if (s.empty()) throw Error("generate: an empty stop string: expected text");
  }
  for (size_t i = 0; i < n; ++i) {
    if (prompts[i].size() + o.max_tokens > model_.options().max_seq) {
      throw Error("generate: prompt " + std::to_string(i) + " has " +
                  std::to_string(prompts[i].size()) + " tokens + max_tokens " +
                  std::to_string(o.max_tokens) + ": expected at most max_seq = " +
                  std::to_string(model_.options().max_seq));
    }
  }
  // Never sample ids the tokenizer cannot decode (the LM head's padded rows).
  const size_t vocab = model_.vocab();
  Sampler sampler(o.sampling, std::min(vocab, tok_.size()));

  std::vector<int32_t> users(n);
  for (size_t i = 0; i < n; ++i) {
    users[i] = static_cast<int32_t>(i);
    model_.Reset(i);
  }
  std::vector<float> logits(n * vocab);
  GenerateStats st;
  for (const auto& p : prompts) st.prompt_tokens += p.size();
  const auto t0 = Clock::now();
  model_.Prefill(users, prompts, logits.data());
  st.prefill_seconds = Since(t0);

  std::vector<Generation> out(n);
  std::vector<Stream> streams(n);
  std::vector<std::vector<int32_t>> history = prompts;
  std::vector<size_t> active(n), row(n);  // row: this step's logits row of sequence i
  for (size_t i = 0; i < n; ++i) active[i] = row[i] = i;
  std::vector<int32_t> step_users, step_tokens;
  const auto t1 = Clock::now();
  for (uint64_t step = 0; !active.empty(); ++step) {
    step_users.clear();
    step_tokens.clear();
    for (size_t i : active) {
      const int32_t id = sampler.Sample(
          std::span<const float>(logits.data() + row[i] * vocab, vocab), history[i], i, step);
      Generation& g = out[i];
      Stream& s = streams[i];
      g.tokens.push_back(id);
      history[i].push_back(id);
      if (std::find(o.eos_ids.begin(), o.eos_ids.end(), id) != o.eos_ids.end()) {
        g.finish_reason = "eos";
        s.done = true;
      } else {
        const size_t before = s.text.size();
        s.text += tok_.TokenBytes(id);
        size_t stop_at = std::string::npos;
        for (const std::string& stop : o.stop_strings) {
          // Earlier steps found none: a stop now ends inside the new bytes.
          const size_t from = before >= stop.size() - 1 ? before - (stop.size() - 1) : 0;
          const size_t at = s.text.find(stop, from);
          if (at != std::string::npos) stop_at = std::min(stop_at, at);
        }
        if (stop_at != std::string::npos) {
          s.text.resize(stop_at);
          g.finish_reason = "stop";
          s.done = true;
        } else if (g.tokens.size() >= o.max_tokens) {
          g.finish_reason = "length";
          s.done = true;
        } else if (cancel && cancel->load()) {
          g.finish_reason = "cancelled";
          s.done = true;
        }
      }
      // Stream what is final: not a possible start of a stop string, valid UTF-8 (U+FFFD for
      // an invalid subpart, exactly as the whole text will be sanitized at the end).
      const size_t limit = s.done ? s.text.size() : s.text.size() - HeldBack(s.text, o.stop_strings);
      std::string chunk;
      s.emitted = TakeCompleteUtf8(s.text, s.emitted, limit, s.done, chunk);
      if (on_text && !chunk.empty()) on_text(i, chunk);
      if (!s.done) {
        step_users.push_back(static_cast<int32_t>(i));
        step_tokens.push_back(id);
      }
    }
    active.clear();
    for (size_t k = 0; k < step_users.size(); ++k) {
      active.push_back(static_cast<size_t>(step_users[k]));
      row[step_users[k]] = k;
    }
    if (!step_users.empty()) {
      model_.Decode(step_users, step_tokens, logits.data());
      ++st.steps;
    }
  }
  st.decode_seconds = Since(t1);
  for (size_t i = 0; i < n; ++i) {
    out[i].text = SanitizeUtf8(streams[i].text);
    st.generated_tokens += out[i].tokens.size();
  }
  if (stats) *stats = st;
  return out;
}

}  // namespace qwen3
