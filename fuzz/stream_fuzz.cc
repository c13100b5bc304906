// Stop strings and SSE streaming over arbitrary token sequences: tokens go through the
// engine's per-token emission (serve/stop_strings.h + TakeCompleteUtf8, as Engine::Emit does)
// into RequestStreams, and ApiResponse turns them into SSE events or a JSON body, polled at
// fuzz-chosen points. The input is records separated by 0x1E, each a tag byte and a payload:
//   O <flags>   'c' completions (else chat), 's' stream, 't' thinking, 'o' tools, 'l' logprobs,
//               'u' include_usage, 'e' the last choice ends in an engine error
//   S <text>    a stop string            M <digits>  max_tokens
//   T <text>    tokens: the text encoded by the real tokenizer (special tokens parsed)
//   I <bytes>   tokens: little-endian u32s mod the vocabulary
//   N           the next choice's tokens follow
//   P <bytes>   poll pattern: after token k, poll the response if byte k % size is odd
// Checked: the streamed text of each choice is exactly the text before the first stop string
// (whole UTF-8, U+FFFD for invalid bytes); the output parser's deltas concatenate to its
// result; every SSE event is "data: <JSON>\n\n" with [DONE] last and one finish_reason per
// choice; the streamed completion text and (chat without tools) content and reasoning equal
// the non-stream body's.
#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "generate/output_parser.h"
#include "serve/openai_api.h"
#include "serve/request.h"
#include "serve/stop_strings.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3::fuzz {
namespace {

using json = nlohmann::json;

struct Input {
  bool completion = false, stream = false, thinking = false, tools = false, logprobs = false;
  bool usage = false, error_last = false;
  std::vector<std::string> stops;
  size_t max_tokens = 1 << 20;
  std::vector<std::vector<int32_t>> choices = {{}};
  std::string poll = "\x01";
};

Input Parse(std::string_view in, const Tokenizer& tok) {
  Input p;
  for (std::string_view rec : SplitRecords(in, '\x1e')) {
    if (rec.empty()) continue;
    const std::string_view v = rec.substr(1);
    switch (rec[0]) {
      case 'O':
        p.completion = v.find('c') != v.npos, p.stream = v.find('s') != v.npos;
        p.thinking = v.find('t') != v.npos, p.tools = v.find('o') != v.npos;
        p.logprobs = v.find('l') != v.npos, p.usage = v.find('u') != v.npos && p.stream;
        p.error_last = v.find('e') != v.npos;
        break;
      case 'S':
        // ParseRequest's limits: at most 16 stop strings of 1..256 bytes.
        if (!v.empty() && v.size() <= 256 && p.stops.size() < 16) p.stops.emplace_back(v);
        break;
      case 'M': {
        size_t m = 0;
        std::from_chars(v.data(), v.data() + v.size(), m);
        if (m >= 1) p.max_tokens = m;
        break;
      }
      case 'T':
        for (int32_t id : tok.Encode(v)) p.choices.back().push_back(id);
        break;
      case 'I':
        for (size_t i = 0; i + 4 <= v.size(); i += 4) {
          uint32_t x;
          std::memcpy(&x, v.data() + i, 4);
          p.choices.back().push_back(static_cast<int32_t>(x % tok.size()));
        }
        break;
      case 'N':
        if (p.choices.size() < 4) p.choices.emplace_back();
        break;
      case 'P':
        if (!v.empty()) p.poll = std::string(v);
        break;
      default:
        break;
    }
  }
  return p;
}

// What the client must get: the text before the earliest stop string found once a token
// completes it (searching all the text each time: no incremental trick), as the engine ends.
std::string Reference(const Tokenizer& tok, const std::vector<int32_t>& tokens, const Input& p,
                      const std::vector<int32_t>& eos) {
  std::string text;
  for (size_t k = 0; k < tokens.size(); ++k) {
    if (std::find(eos.begin(), eos.end(), tokens[k]) != eos.end()) break;
    if (!tok.IsSpecial(tokens[k])) text += tok.TokenBytes(tokens[k]);
    size_t cut = std::string::npos;
    for (const std::string& s : p.stops) cut = std::min(cut, text.find(s));
    if (cut != std::string::npos) return text.substr(0, cut);
    if (k + 1 >= p.max_tokens) break;
  }
  return text;
}

// One choice as the engine emits it (Engine::Emit and Finish): pushes an event per token and
// the finish event. Returns the text the events carry.
class Emitter {
 public:
  Emitter(const Tokenizer& tok, const Input& p, const std::vector<int32_t>& eos, RequestStream& out)
      : tok_(tok), p_(p), eos_(eos), out_(out) {}
  bool done() const { return done_; }
  const std::string& sent() const { return sent_; }

  void Emit(int32_t token, bool last, bool error_at_end) {
    ++count_;
    FinishReason finish = FinishReason::kNone;
    if (std::find(eos_.begin(), eos_.end(), token) != eos_.end()) {
      finish = FinishReason::kEos;
    } else {
      const size_t before = text_.size();
      if (!tok_.IsSpecial(token)) text_ += tok_.TokenBytes(token);
      const size_t stop_at = FindStopString(text_, before, p_.stops);
      if (stop_at != std::string::npos) {
        text_.resize(stop_at);
        finish = FinishReason::kStop;
      } else if (count_ >= p_.max_tokens || (last && !error_at_end)) {
        finish = FinishReason::kLength;
      }
    }
    const bool done = finish != FinishReason::kNone;
    const size_t limit = done ? text_.size() : text_.size() - StopHeldBack(text_, p_.stops);
    StreamEvent e;
    emitted_ = TakeCompleteUtf8(text_, emitted_, limit, done, e.text);
    sent_ += e.text;
    TokenOutput t;
    t.token = token;
    t.logprob = -0.25f * static_cast<float>(count_ % 7);
    t.top = {{token, t.logprob}, {static_cast<int32_t>((token * 7 + 1) % tok_.size()), -9.5f}};
    e.tokens.push_back(std::move(t));
    out_.Push(std::move(e));
    if (done) Finish(finish, "");
    if (!done && last && error_at_end) Finish(FinishReason::kError, "the engine failed");
  }

 private:
  void Finish(FinishReason reason, const std::string& error) {
    StreamEvent e;
    e.finish = reason;
    e.error = error;
    e.usage.prompt_tokens = 3;
    e.usage.completion_tokens = count_;
    out_.Push(std::move(e));
    done_ = true;
  }

  const Tokenizer& tok_;
  const Input& p_;
  const std::vector<int32_t>& eos_;
  RequestStream& out_;
  std::string text_, sent_;
  size_t emitted_ = 0, count_ = 0;
  bool done_ = false;
};

// Runs the input through an ApiResponse with stream on or off; returns the SSE text or body.
std::string Respond(const Input& p, bool stream, const ApiContext& ctx,
                    std::vector<std::string>* sent) {
  ParsedRequest req;
  req.kind = p.completion ? ApiKind::kCompletion : ApiKind::kChat;
  req.n = p.choices.size();
  req.stream = stream;
  req.include_usage = stream && p.usage;
  req.logprobs = p.logprobs;
  req.thinking = p.thinking;
  req.tools = p.tools;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < p.choices.size(); ++i)
    streams.push_back(std::make_shared<RequestStream>());
  ApiResponse response(req, streams, ctx);
  std::vector<Emitter> emitters;
  for (size_t i = 0; i < p.choices.size(); ++i)
    emitters.emplace_back(*ctx.tokenizer, p, ctx.eos_ids, *streams[i]);
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < p.choices.size(); ++i) {
    // A choice without tokens still samples one: the end of sequence.
    const std::vector<int32_t> tokens =
        p.choices[i].empty() ? std::vector<int32_t>{ctx.eos_ids[0]} : p.choices[i];
    const bool error_at_end = p.error_last && i + 1 == p.choices.size();
    for (size_t t = 0; t < tokens.size() && !emitters[i].done(); ++t, ++k) {
      emitters[i].Emit(tokens[t], t + 1 == tokens.size(), error_at_end);
      if (p.poll[k % p.poll.size()] & 1) response.Poll(out, std::chrono::milliseconds(0));
    }
  }
  int guard = 0;
  while (!response.Poll(out, std::chrono::milliseconds(0)))
    FUZZ_CHECK(++guard < 16, "Poll never finishes");
  if (sent) {
    for (const Emitter& e : emitters) sent->push_back(e.sent());
  }
  return stream ? out : response.Body();
}

std::vector<json> SseEvents(const std::string& sse) {
  std::vector<json> events;
  bool done = false;
  for (size_t pos = 0; pos < sse.size();) {
    FUZZ_CHECK(!done, "an event after [DONE]");
    FUZZ_CHECK(sse.compare(pos, 6, "data: ") == 0,
               "an event without \"data: \" at byte " + std::to_string(pos));
    const size_t end = sse.find("\n\n", pos);
    FUZZ_CHECK(end != std::string::npos, "an event without its blank line");
    const std::string payload = sse.substr(pos + 6, end - pos - 6);
    if (payload == "[DONE]") {
      done = true;
    } else {
      FUZZ_CHECK(json::accept(payload), "an event that is not JSON: " + payload);
      events.push_back(json::parse(payload));
    }
    pos = end + 2;
  }
  FUZZ_CHECK(done, "no [DONE]");
  return events;
}

// The direct check of the output parser on this text in these chunks.
void CheckParser(const std::vector<std::string>& chunks, bool thinking, bool tools) {
  OutputParser parser(thinking, tools);
  std::string reasoning, content, whole;
  std::vector<std::string> args;
  const auto add = [&](const OutputDelta& d) {
    reasoning += d.reasoning;
    content += d.content;
    for (const ToolCallDelta& t : d.tool_calls) {
      if (args.size() <= t.index) args.resize(t.index + 1);
      args[t.index] += t.arguments;
    }
  };
  for (const std::string& c : chunks) {
    add(parser.Push(c));
    whole += c;
  }
  add(parser.Finish());
  const ParsedOutput& r = parser.result();
  FUZZ_CHECK(reasoning == r.reasoning,
             "streamed reasoning \"" + reasoning + "\" != \"" + r.reasoning + "\"");
  if (r.malformed_tool_call) return;
  FUZZ_CHECK(content == r.content, "streamed content \"" + content + "\" != \"" + r.content + "\"");
  FUZZ_CHECK(args.size() == r.tool_calls.size(),
             "streamed " + std::to_string(args.size()) + " calls");
  for (size_t i = 0; i < args.size(); ++i) {
    FUZZ_CHECK(args[i] == r.tool_calls[i].arguments, "call " + std::to_string(i) + " arguments");
    FUZZ_CHECK(json::accept(args[i]), "call arguments are not JSON: " + args[i]);
  }
  const ParsedOutput once = ParseOutput(whole, thinking, tools);
  if (!once.malformed_tool_call) {
    FUZZ_CHECK(once.reasoning == r.reasoning && once.content == r.content &&
                   once.tool_calls.size() == r.tool_calls.size(),
               "the result depends on how the text was chunked");
  }
}

}  // namespace

int FuzzStream(const uint8_t* data, size_t size) {
  static const ApiContext ctx = [] {
    ApiContext c;
    c.model_name = "qwen3";
    c.tokenizer = &RealTokenizer();
    c.eos_ids = {151645, 151643};
    c.max_context = 1 << 20;
    return c;
  }();
  const Tokenizer& tok = *ctx.tokenizer;
  const Input p = Parse(std::string_view(reinterpret_cast<const char*>(data), size), tok);

  std::vector<std::string> sent;
  const std::string sse = Respond(p, true, ctx, &sent);
  for (size_t i = 0; i < p.choices.size(); ++i) {
    if (p.error_last && i + 1 == p.choices.size()) continue;  // held-back text is dropped
    const std::vector<int32_t> tokens =
        p.choices[i].empty() ? std::vector<int32_t>{ctx.eos_ids[0]} : p.choices[i];
    const std::string want = SanitizeUtf8(Reference(tok, tokens, p, ctx.eos_ids));
    FUZZ_CHECK(sent[i] == want, "choice " + std::to_string(i) + " streamed \"" + sent[i] +
                                    "\", expected \"" + want + "\"");
  }
  // The parser over the streamed text, in the fuzz's own chunks (a byte of P per chunk size).
  for (const std::string& s : sent) {
    std::vector<std::string> chunks;
    for (size_t pos = 0, k = 0; pos < s.size(); ++k) {
      size_t n = 1 + static_cast<uint8_t>(p.poll[k % p.poll.size()]) % 8;
      while (pos + n < s.size() && (s[pos + n] & 0xC0) == 0x80) ++n;  // whole characters
      chunks.push_back(s.substr(pos, n));
      pos += n;
    }
    CheckParser(chunks, p.thinking && !p.completion, p.tools && !p.completion);
  }

  const std::vector<json> events = SseEvents(sse);
  if (p.error_last) return 0;  // the body is the error
  const json body = json::parse(Respond(p, false, ctx, nullptr));
  std::vector<std::string> text(p.choices.size()), content(p.choices.size()),
      reasoning(p.choices.size());
  std::vector<int> finishes(p.choices.size(), 0);
  for (const json& e : events) {
    for (const json& c : e.at("choices")) {
      const size_t i = c.at("index").get<size_t>();
      FUZZ_CHECK(i < p.choices.size(), "choice index " + std::to_string(i));
      FUZZ_CHECK(finishes[i] == 0,
                 "an event for choice " + std::to_string(i) + " after its finish");
      if (!c.at("finish_reason").is_null()) ++finishes[i];
      if (p.completion) {
        text[i] += c.at("text").get<std::string>();
      } else {
        const json& d = c.at("delta");
        if (d.contains("content")) content[i] += d["content"].get<std::string>();
        if (d.contains("reasoning_content"))
          reasoning[i] += d["reasoning_content"].get<std::string>();
      }
    }
  }
  for (size_t i = 0; i < p.choices.size(); ++i) {
    FUZZ_CHECK(finishes[i] == 1, "choice " + std::to_string(i) + " has " +
                                     std::to_string(finishes[i]) + " finish_reasons");
    const json& c = body.at("choices").at(i);
    if (p.completion) {
      FUZZ_CHECK(text[i] == c.at("text").get<std::string>(), "streamed text != body text");
      FUZZ_CHECK(text[i] == sent[i], "the SSE text != the engine's text");
    } else if (!p.tools) {
      const json& m = c.at("message");
      FUZZ_CHECK(content[i] == m.at("content").get<std::string>(),
                 "streamed content != body content");
      if (p.thinking)
        FUZZ_CHECK(reasoning[i] == m.at("reasoning_content").get<std::string>(), "reasoning");
    }
  }
  return 0;
}

}  // namespace qwen3::fuzz
