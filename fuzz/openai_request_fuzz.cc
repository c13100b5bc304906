// OpenAI request bodies -> validated requests. The first byte picks the endpoint (0 chat
// completions, 1 completions, 2 /tokenize, 3 /detokenize, mod 4); the rest is the body. A body
// is refused with an ApiException (400, or 404 for another model) whose reply is valid JSON,
// or accepted with every field within the range ParseRequest promises.
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "serve/openai_api.h"
#include "tokenizer/tokenizer.h"

namespace qwen3::fuzz {
namespace {

const ApiContext& Context() {
  static const ApiContext ctx = [] {
    ApiContext c;
    c.model_name = "qwen3";
    c.tokenizer = &RealTokenizer();
    c.eos_ids = {151645, 151643};
    c.max_context = 4096;
    return c;
  }();
  return ctx;
}

void CheckAccepted(const ParsedRequest& r, ApiKind kind, const ApiContext& ctx) {
  const GenerationRequest& g = r.base;
  const SamplingOptions& s = g.sampling;
  FUZZ_CHECK(!r.prompts.empty() && (kind == ApiKind::kCompletion || r.prompts.size() == 1),
             std::to_string(r.prompts.size()) + " prompts");
  for (const auto& p : r.prompts) {
    FUZZ_CHECK(!p.empty(), "an empty prompt");
    FUZZ_CHECK(
        p.size() + g.max_tokens <= ctx.max_context,
        "prompt " + std::to_string(p.size()) + " + max_tokens " + std::to_string(g.max_tokens));
    for (int32_t id : p) {
      FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < ctx.tokenizer->size(),
                 "prompt id " + std::to_string(id));
    }
  }
  FUZZ_CHECK(g.max_tokens >= 1, "max_tokens 0");
  FUZZ_CHECK(s.temperature >= 0 && s.temperature <= 2,
             "temperature " + std::to_string(s.temperature));
  FUZZ_CHECK(s.top_p > 0 && s.top_p <= 1, "top_p " + std::to_string(s.top_p));
  FUZZ_CHECK(s.top_k >= 0, "top_k " + std::to_string(s.top_k));
  FUZZ_CHECK(s.min_p >= 0 && s.min_p < 1, "min_p " + std::to_string(s.min_p));
  FUZZ_CHECK(s.presence_penalty >= -2 && s.presence_penalty <= 2, "presence_penalty");
  FUZZ_CHECK(s.frequency_penalty >= -2 && s.frequency_penalty <= 2, "frequency_penalty");
  FUZZ_CHECK(s.repetition_penalty > 0 && s.repetition_penalty <= 100, "repetition_penalty");
  FUZZ_CHECK(g.stop.size() <= 16, std::to_string(g.stop.size()) + " stop strings");
  for (const std::string& x : g.stop)
    FUZZ_CHECK(!x.empty() && x.size() <= 256, "stop of " + std::to_string(x.size()));
  FUZZ_CHECK(r.n >= 1 && r.n <= 64, "n " + std::to_string(r.n));
  FUZZ_CHECK(!r.include_usage || r.stream, "include_usage without stream");
  FUZZ_CHECK(g.top_logprobs >= -1 && g.top_logprobs <= 20,
             "top_logprobs " + std::to_string(g.top_logprobs));
  FUZZ_CHECK((g.top_logprobs >= 0) == r.logprobs, "top_logprobs without logprobs");
  for (const auto& [id, bias] : g.logit_bias) {
    FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < ctx.tokenizer->size(),
               "logit_bias id " + std::to_string(id));
    FUZZ_CHECK(bias >= -100 && bias <= 100, "logit_bias " + std::to_string(bias));
  }
}

}  // namespace

int FuzzOpenaiRequest(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ApiContext& ctx = Context();
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 4) {
      case 0:
      case 1: {
        const ApiKind kind = data[0] % 4 == 0 ? ApiKind::kChat : ApiKind::kCompletion;
        CheckAccepted(ParseRequest(kind, body, ctx), kind, ctx);
        break;
      }
      case 2:
        DumpJson(Tokenize(body, ctx));
        break;
      default:
        DumpJson(Detokenize(body, ctx));
    }
  } catch (const ApiException& e) {
    const ApiError& err = e.error();
    FUZZ_CHECK(err.status == 400 || err.status == 404, "status " + std::to_string(err.status));
    FUZZ_CHECK(!err.message.empty(), "an error without a message");
    FUZZ_CHECK(nlohmann::json::accept(err.Body()), "error body is not JSON: " + err.Body());
  }
  return 0;
}

}  // namespace qwen3::fuzz
