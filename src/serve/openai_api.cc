#include "serve/openai_api.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <random>

#include "base/error.h"
#include "generate/output_parser.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;

constexpr size_t kEngineMaxTopLogprobs = 20;  // Engine::Validate's
constexpr int kMaxJsonDepth = 64;  // arrays and objects in a body (tool schemas nest a few)

// A value as the client wrote it, for messages ("got ...").
std::string Shown(const json& v) {
  std::string s = DumpJson(v);
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

[[noreturn]] void BadValue(const std::string& param, const json& v, const std::string& expected) {
  BadRequest(param, "\"" + param + "\": expected " + expected + ", got " + Shown(v));
}

const json* Field(const json& body, const char* key) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

double Number(const json& body, const char* key, double lo, double hi, double def,
              const std::string& range) {
  const json* v = Field(body, key);
  if (!v) return def;
  if (!v->is_number()) BadValue(key, *v, "a number " + range);
  const double d = v->get<double>();
  if (!(d >= lo && d <= hi)) BadValue(key, *v, "a number " + range);
  return d;
}

int64_t Integer(const json& body, const char* key, int64_t lo, int64_t hi, int64_t def) {
  const json* v = Field(body, key);
  if (!v) return def;
  if (!v->is_number_integer() && !(v->is_number_float() && std::floor(v->get<double>()) == v->get<double>())) {
    BadValue(key, *v, "an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  const double d = v->get<double>();
  if (!(d >= static_cast<double>(lo) && d <= static_cast<double>(hi))) {
    BadValue(key, *v, "an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return v->is_number_unsigned() ? static_cast<int64_t>(std::min<uint64_t>(v->get<uint64_t>(), INT64_MAX))
                                 : v->get<int64_t>();
}

// Integer() whose upper bound is a `qwen3 serve` flag, named when the value is past it.
int64_t Limited(const json& body, const char* key, int64_t lo, int64_t hi, int64_t def,
                const char* flag) {
  const json* v = Field(body, key);
  if (v && v->is_number() && v->get<double>() > static_cast<double>(hi)) {
    BadValue(key, *v,
             "an integer in " + std::to_string(lo) + ".." + std::to_string(hi) + " (" + flag + ")");
  }
  return Integer(body, key, lo, hi, def);
}

bool Bool(const json& body, const char* key, bool def) {
  const json* v = Field(body, key);
  if (!v) return def;
  if (!v->is_boolean()) BadValue(key, *v, "true or false");
  return v->get<bool>();
}

std::string RandomHex(size_t n) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* kHex = "0123456789abcdef";
  std::string s(n, '0');
  for (char& c : s) c = kHex[rng() % 16];
  return s;
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string Content(const json& m, size_t i) {
  const std::string param = "messages[" + std::to_string(i) + "].content";
  const auto it = m.find("content");
  if (it == m.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (!it->is_array()) BadValue(param, *it, "a string or an array of text parts");
  std::string out;
  for (size_t k = 0; k < it->size(); ++k) {
    const json& p = (*it)[k];
    const std::string pp = param + "[" + std::to_string(k) + "]";
    if (!p.is_object()) BadValue(pp, p, "a content part object");
    const json* type = Field(p, "type");
    if (!type || !type->is_string() || *type != "text") {
      BadValue(pp + ".type", type ? *type : json(), "\"text\" (only text parts are supported)");
    }
    const json* text = Field(p, "text");
    if (!text || !text->is_string()) BadValue(pp + ".text", text ? *text : json(), "a string");
    out += text->get<std::string>();
  }
  return out;
}

std::vector<ChatMessage> Messages(const json& body, const ApiLimits& limits) {
  const json* msgs = Field(body, "messages");
  if (!msgs) BadRequest("messages", "\"messages\" is required: an array of messages");
  if (!msgs->is_array() || msgs->empty()) BadValue("messages", *msgs, "a non-empty array of messages");
  if (msgs->size() > limits.max_messages) {
    BadRequest("messages", "\"messages\": " + std::to_string(msgs->size()) +
                               " messages: expected at most " +
                               std::to_string(limits.max_messages) + " (--max-messages)");
  }
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < msgs->size(); ++i) {
    const json& m = (*msgs)[i];
    const std::string pre = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) BadValue(pre, m, "a message object");
    const json* role = Field(m, "role");
    if (!role || !role->is_string()) BadValue(pre + ".role", role ? *role : json(), "a string");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system turn
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      BadValue(pre + ".role", *role, "\"system\", \"developer\", \"user\", \"assistant\" or \"tool\"");
    }
    ChatMessage cm;
    cm.role = r;
    cm.content = Content(m, i);
    if (const json* rc = Field(m, "reasoning_content")) {
      if (!rc->is_string()) BadValue(pre + ".reasoning_content", *rc, "a string");
      if (r == "assistant") cm.reasoning_content = rc->get<std::string>();
    }
    if (const json* tc = Field(m, "tool_calls")) {
      if (r != "assistant") BadValue(pre + ".tool_calls", *tc, "no tool_calls on a " + r + " message");
      if (!tc->is_array()) BadValue(pre + ".tool_calls", *tc, "an array of tool calls");
      for (size_t k = 0; k < tc->size(); ++k) {
        const json& c = (*tc)[k];
        const std::string cp = pre + ".tool_calls[" + std::to_string(k) + "]";
        const json* fn = c.is_object() ? Field(c, "function") : nullptr;
        if (!fn || !fn->is_object()) BadValue(cp + ".function", fn ? *fn : c, "a function object");
        const json* name = Field(*fn, "name");
        if (!name || !name->is_string()) BadValue(cp + ".function.name", name ? *name : json(), "a string");
        const json* args = Field(*fn, "arguments");
        std::string a = "{}";
        if (args && args->is_string()) {
          a = args->get<std::string>();
        } else if (args && args->is_object()) {
          a = JinjaToJson(args->dump());
        } else if (args) {
          BadValue(cp + ".function.arguments", *args, "a JSON string (or object)");
        }
        cm.tool_calls.push_back({name->get<std::string>(), a});
      }
    }
    out.push_back(std::move(cm));
  }
  return out;
}

// Renders the chat prompt; tools_out says whether tools were rendered (and are parsed).
std::string RenderChat(const json& body, const ApiLimits& limits, bool& tools_out) {
  ChatTemplateOptions co;
  co.add_generation_prompt = Bool(body, "add_generation_prompt", true);
  if (const json* kw = Field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) BadValue("chat_template_kwargs", *kw, "an object");
    if (const json* et = Field(*kw, "enable_thinking")) {
      if (!et->is_boolean()) BadValue("chat_template_kwargs.enable_thinking", *et, "true or false");
      co.enable_thinking = et->get<bool>();
    }
  }
  std::string choice = "auto";
  if (const json* tc = Field(body, "tool_choice")) {
    if (!tc->is_string() || (*tc != "auto" && *tc != "none")) {
      BadValue("tool_choice", *tc, "\"auto\" or \"none\" (forced tool calls are not supported)");
    }
    choice = tc->get<std::string>();
  }
  tools_out = false;
  if (const json* tools = Field(body, "tools")) {
    if (!tools->is_array()) BadValue("tools", *tools, "an array of tools");
    for (size_t k = 0; k < tools->size(); ++k) {
      const json& t = (*tools)[k];
      const std::string tp = "tools[" + std::to_string(k) + "]";
      const json* fn = t.is_object() ? Field(t, "function") : nullptr;
      if (!fn || !fn->is_object() || !Field(*fn, "name") || !(*fn)["name"].is_string()) {
        BadValue(tp, t, "{\"type\": \"function\", \"function\": {\"name\": ..., ...}}");
      }
      if (choice != "none") co.tools.push_back(t.dump());
    }
    tools_out = !co.tools.empty();
  }
  try {
    return RenderQwen3Chat(Messages(body, limits), co);
  } catch (const Error& e) {
    BadRequest("messages", e.what());
  }
}

std::vector<std::vector<int32_t>> CompletionPrompts(const json& body, const Tokenizer& tok) {
  const json* p = Field(body, "prompt");
  if (!p) BadRequest("prompt", "\"prompt\" is required: a string or an array of token ids");
  const auto ids = [&](const json& a, const std::string& param) {
    std::vector<int32_t> out;
    for (const json& v : a) {
      if (!v.is_number_integer()) BadValue(param, v, "token ids (integers)");
      const int64_t id = v.get<int64_t>();
      if (id < 0 || static_cast<size_t>(id) >= tok.size()) {
        BadValue(param, v, "token ids in 0.." + std::to_string(tok.size() - 1));
      }
      out.push_back(static_cast<int32_t>(id));
    }
    return out;
  };
  std::vector<std::vector<int32_t>> out;
  if (p->is_string()) {
    out.push_back(tok.Encode(p->get<std::string>()));
  } else if (p->is_array() && !p->empty() && (*p)[0].is_number()) {
    out.push_back(ids(*p, "prompt"));
  } else if (p->is_array() && !p->empty()) {
    for (size_t i = 0; i < p->size(); ++i) {
      const json& e = (*p)[i];
      const std::string param = "prompt[" + std::to_string(i) + "]";
      if (e.is_string()) {
        out.push_back(tok.Encode(e.get<std::string>()));
      } else if (e.is_array()) {
        out.push_back(ids(e, param));
      } else {
        BadValue(param, e, "a string or an array of token ids");
      }
    }
  } else {
    BadValue("prompt", *p, "a string, an array of token ids, or an array of those");
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].empty()) BadRequest("prompt", "prompt " + std::to_string(i) + " is empty: expected text or token ids");
  }
  return out;
}

std::string TokenText(const Tokenizer& tok, int32_t id) { return tok.TokenBytes(id); }

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

std::string CheckApiLimits(const ApiLimits& l) {
  const auto at_least_1 = [](const char* flag, size_t v) {
    return v == 0 ? std::string(flag) + " 0: expected at least 1" : std::string();
  };
  for (const std::string& e :
       {at_least_1("--max-messages", l.max_messages), at_least_1("--max-n", l.max_n),
        at_least_1("--max-stop-bytes", l.max_stop_bytes)}) {
    if (!e.empty()) return e;
  }
  if (l.max_top_logprobs > kEngineMaxTopLogprobs) {
    return "--max-top-logprobs " + std::to_string(l.max_top_logprobs) + ": expected 0.." +
           std::to_string(kEngineMaxTopLogprobs);
  }
  return "";
}

std::string ApiError::Body() const {
  json e = {{"message", message}, {"type", type}, {"param", param.empty() ? json() : json(param)},
            {"code", code.empty() ? json() : json(code)}};
  return DumpJson(json{{"error", e}});
}

void BadRequest(const std::string& param, const std::string& message) {
  ApiError e;
  e.status = 400;
  e.message = message;
  e.param = param;
  throw ApiException(e);
}

std::string DumpJson(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json ParseJsonBody(const std::string& body) {
  json j;
  try {
    // Deeper values are refused while parsing: nlohmann parses and frees them iteratively,
    // but dumps them recursively (an error message quotes a value), and a body of 4M '['
    // overflowed the HTTP thread's stack.
    j = json::parse(body, [](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) {
        BadRequest("", "the body nests deeper than " + std::to_string(kMaxJsonDepth) + " levels");
      }
      return true;
    });
  } catch (const json::exception& e) {
    // Not only parse_error: a number past double's range (1e400) is out_of_range.
    BadRequest("", std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) BadRequest("", "the body is " + std::string(j.type_name()) + ": expected a JSON object");
  return j;
}

ParsedRequest ParseRequest(ApiKind kind, const std::string& text, const ApiContext& ctx) {
  const json body = ParseJsonBody(text);
  ParsedRequest r;
  r.kind = kind;
  if (const json* m = Field(body, "model")) {
    if (!m->is_string()) BadValue("model", *m, "a string");
    if (*m != ctx.model_name) {
      ApiError e;
      e.status = 404;
      e.type = "not_found_error";
      e.param = "model";
      e.code = "model_not_found";
      e.message = "The model `" + m->get<std::string>() + "` does not exist: this server serves `" +
                  ctx.model_name + "`";
      throw ApiException(e);
    }
  }
  const Tokenizer& tok = *ctx.tokenizer;
  if (kind == ApiKind::kChat) {
    const std::string prompt = RenderChat(body, ctx.limits, r.tools);
    // Decided from the prompt: thinking off leaves an empty think block at its end.
    const std::string closed = "<think>\n\n</think>\n\n";
    r.thinking = !(prompt.size() >= closed.size() &&
                   prompt.compare(prompt.size() - closed.size(), closed.size(), closed) == 0);
    r.prompts.push_back(tok.Encode(prompt));
  } else {
    r.prompts = CompletionPrompts(body, tok);
    if (Bool(body, "echo", false)) BadRequest("echo", "\"echo\": true is not supported");
    if (const json* s = Field(body, "suffix")) BadValue("suffix", *s, "null (suffix is not supported)");
  }
  GenerationRequest& g = r.base;
  const ApiLimits& lim = ctx.limits;
  const int64_t max_context = static_cast<int64_t>(ctx.max_context);
  size_t longest = 0;
  for (const auto& p : r.prompts) longest = std::max(longest, p.size());
  if (lim.max_prompt_tokens > 0 && longest > lim.max_prompt_tokens) {
    BadRequest(kind == ApiKind::kChat ? "messages" : "prompt",
               "the prompt is " + std::to_string(longest) + " tokens: expected at most " +
                   std::to_string(lim.max_prompt_tokens) + " (--max-prompt-tokens)");
  }
  const char* mt_key = Field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const int64_t cap = lim.max_tokens > 0 ? static_cast<int64_t>(lim.max_tokens) : INT32_MAX;
  const int64_t room = max_context - static_cast<int64_t>(longest);
  const int64_t def = std::min(cap, std::max<int64_t>(1, room));
  const int64_t mt = lim.max_tokens > 0 ? Limited(body, mt_key, 1, cap, def, "--max-tokens")
                                         : Integer(body, mt_key, 1, cap, def);
  if (static_cast<int64_t>(longest) + mt > max_context) {
    BadRequest(mt_key, "This model's maximum context length is " + std::to_string(max_context) +
                           " tokens. However, you requested " + std::to_string(longest + mt) +
                           " tokens (" + std::to_string(longest) + " in the prompt, " +
                           std::to_string(mt) + " in the completion).");
  }
  g.max_tokens = static_cast<size_t>(mt);
  SamplingOptions& s = g.sampling;
  s.temperature = static_cast<float>(Number(body, "temperature", 0, 2, 1.0, "in [0, 2]"));
  s.top_p = static_cast<float>(Number(body, "top_p", 1e-9, 1, 1.0, "in (0, 1]"));
  const int64_t top_k = Integer(body, "top_k", -1, INT32_MAX, 0);
  s.top_k = top_k < 0 ? 0 : static_cast<int>(top_k);
  s.min_p = static_cast<float>(Number(body, "min_p", 0, 0.999999, 0.0, "in [0, 1)"));
  s.presence_penalty = static_cast<float>(Number(body, "presence_penalty", -2, 2, 0, "in [-2, 2]"));
  s.frequency_penalty = static_cast<float>(Number(body, "frequency_penalty", -2, 2, 0, "in [-2, 2]"));
  s.repetition_penalty =
      static_cast<float>(Number(body, "repetition_penalty", 1e-6, 100, 1.0, "in (0, 100]"));
  if (Field(body, "seed")) {
    s.seed = static_cast<uint64_t>(Integer(body, "seed", INT64_MIN, INT64_MAX, 0));
  } else {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    s.seed = rng();
  }
  if (const json* stop = Field(body, "stop")) {
    std::vector<std::string> stops;
    if (stop->is_string()) {
      stops.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      for (const json& e : *stop) {
        if (!e.is_string()) BadValue("stop", *stop, "a string or an array of strings");
        stops.push_back(e.get<std::string>());
      }
    } else {
      BadValue("stop", *stop, "a string or an array of strings");
    }
    if (stops.size() > lim.max_stops) {
      BadValue("stop", *stop,
               "at most " + std::to_string(lim.max_stops) + " strings (--max-stops)");
    }
    for (const std::string& x : stops) {
      if (x.empty() || x.size() > lim.max_stop_bytes) {
        BadValue("stop", *stop,
                 "non-empty strings of at most " + std::to_string(lim.max_stop_bytes) +
                     " bytes (--max-stop-bytes)");
      }
    }
    g.stop = std::move(stops);
  }
  g.stop_ids = Bool(body, "ignore_eos", false) ? std::vector<int32_t>{} : ctx.eos_ids;
  r.n = static_cast<size_t>(Limited(body, "n", 1, static_cast<int64_t>(lim.max_n), 1, "--max-n"));
  if (ctx.max_choices > 0 && r.prompts.size() * r.n > ctx.max_choices) {
    BadRequest(r.prompts.size() > 1 ? "prompt" : "n",
               std::to_string(r.prompts.size()) + " prompt(s) x n " + std::to_string(r.n) + " = " +
                   std::to_string(r.prompts.size() * r.n) + " choices: expected at most " +
                   std::to_string(ctx.max_choices) + " (--max-queue)");
  }
  r.stream = Bool(body, "stream", false);
  if (const json* so = Field(body, "stream_options")) {
    if (!r.stream) BadValue("stream_options", *so, "stream_options only with \"stream\": true");
    if (!so->is_object()) BadValue("stream_options", *so, "an object");
    r.include_usage = Bool(*so, "include_usage", false);
  }
  const int64_t max_top = static_cast<int64_t>(lim.max_top_logprobs);
  if (kind == ApiKind::kChat) {
    r.logprobs = Bool(body, "logprobs", false);
    const json* tl = Field(body, "top_logprobs");
    if (tl && !r.logprobs) BadValue("top_logprobs", *tl, "top_logprobs only with \"logprobs\": true");
    g.top_logprobs = r.logprobs ? static_cast<int>(Limited(body, "top_logprobs", 0, max_top, 0,
                                                           "--max-top-logprobs"))
                                : -1;
  } else {
    const json* lp = Field(body, "logprobs");
    if (lp && lp->is_boolean()) {
      BadValue("logprobs", *lp, "an integer in 0.." + std::to_string(max_top) + " (completions)");
    }
    r.logprobs = lp != nullptr;
    g.top_logprobs = r.logprobs ? static_cast<int>(Limited(body, "logprobs", 0, max_top, 0,
                                                           "--max-top-logprobs"))
                                : -1;
  }
  if (const json* lb = Field(body, "logit_bias")) {
    if (!lb->is_object()) BadValue("logit_bias", *lb, "an object of token id -> bias");
    for (const auto& [k, v] : lb->items()) {
      char* end = nullptr;
      const long id = std::strtol(k.c_str(), &end, 10);
      if (k.empty() || *end != '\0' || id < 0 || static_cast<size_t>(id) >= tok.size()) {
        BadValue("logit_bias", json(k), "token ids in 0.." + std::to_string(tok.size() - 1) + " as keys");
      }
      if (!v.is_number() || !(v.get<double>() >= -100 && v.get<double>() <= 100)) {
        BadValue("logit_bias[" + k + "]", v, "a number in [-100, 100]");
      }
      g.logit_bias.push_back({static_cast<int32_t>(id), v.get<float>()});
    }
  }
  return r;
}

json Tokenize(const std::string& text, const ApiContext& ctx) {
  const json body = ParseJsonBody(text);
  std::vector<int32_t> ids;
  if (Field(body, "messages")) {
    bool tools = false;
    ids = ctx.tokenizer->Encode(RenderChat(body, ctx.limits, tools));
  } else if (const json* p = Field(body, "prompt")) {
    if (!p->is_string()) BadValue("prompt", *p, "a string");
    ids = ctx.tokenizer->Encode(p->get<std::string>(), Bool(body, "add_special_tokens", true));
  } else {
    BadRequest("prompt", "\"prompt\" (a string) or \"messages\" is required");
  }
  return {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", ctx.max_context}};
}

json Detokenize(const std::string& text, const ApiContext& ctx) {
  const json body = ParseJsonBody(text);
  const json* t = Field(body, "tokens");
  if (!t || !t->is_array()) BadValue("tokens", t ? *t : json(), "an array of token ids");
  std::vector<int32_t> ids;
  for (const json& v : *t) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 ||
        static_cast<size_t>(v.get<int64_t>()) >= ctx.tokenizer->size()) {
      BadValue("tokens", v, "token ids in 0.." + std::to_string(ctx.tokenizer->size() - 1));
    }
    ids.push_back(v.get<int32_t>());
  }
  return {{"prompt", ctx.tokenizer->Decode(ids)}};
}

// ---- Replies ----

struct ApiResponse::Choice {
  Choice(bool thinking, bool tools) : parser(thinking, tools) {}
  OutputParser parser;
  std::string text;                  // completions: all text
  std::vector<TokenOutput> tokens;
  FinishReason finish = FinishReason::kNone;
  std::string error;
  qwen3::Usage usage;
  std::vector<std::string> call_ids;  // tool calls streamed so far
  size_t text_offset = 0;             // completions logprobs: bytes before the next token
};

ApiResponse::ApiResponse(const ParsedRequest& req, std::vector<std::shared_ptr<RequestStream>> streams,
                         const ApiContext& ctx)
    : req_(req), ctx_(ctx), streams_(std::move(streams)),
      id_((req.kind == ApiKind::kChat ? "chatcmpl-" : "cmpl-") + RandomHex(24)),
      created_(static_cast<int64_t>(std::time(nullptr))) {
  for (size_t i = 0; i < streams_.size(); ++i) {
    choices_.push_back(std::make_unique<Choice>(req.kind == ApiKind::kChat && req.thinking,
                                                req.kind == ApiKind::kChat && req.tools));
  }
}

ApiResponse::~ApiResponse() { Cancel(); }

void ApiResponse::Cancel() {
  for (auto& s : streams_) s->Cancel();  // a no-op for finished requests
}

json ApiResponse::Envelope() const {
  return {{"id", id_},
          {"object", req_.kind == ApiKind::kChat ? (req_.stream ? "chat.completion.chunk" : "chat.completion")
                                                 : "text_completion"},
          {"created", created_},
          {"model", ctx_.model_name}};
}

json ApiResponse::Usage() const {
  // Prompt tokens once per prompt (n choices share it), completions summed.
  size_t prompt = 0, completion = 0, cached = 0;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const qwen3::Usage& u = choices_[i]->usage;
    if (i % req_.n == 0) {
      prompt += u.prompt_tokens;
      cached += u.cached_tokens;
    }
    completion += u.completion_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion},
          {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

namespace {

const char* FinishString(FinishReason f, bool tool_calls) {
  switch (f) {
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "abort";
    case FinishReason::kError: return "error";
    default: return tool_calls ? "tool_calls" : "stop";
  }
}

json ChatLogprobs(const std::vector<TokenOutput>& tokens, const Tokenizer& tok) {
  json content = json::array();
  for (const TokenOutput& t : tokens) {
    const std::string s = TokenText(tok, t.token);
    json top = json::array();
    for (const TopLogprob& p : t.top) {
      const std::string ps = TokenText(tok, p.token);
      top.push_back({{"token", ps}, {"logprob", p.logprob}, {"bytes", Bytes(ps)}});
    }
    content.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", Bytes(s)}, {"top_logprobs", top}});
  }
  return {{"content", content}};
}

json CompletionLogprobs(const std::vector<TokenOutput>& tokens, const Tokenizer& tok, size_t& offset) {
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  for (const TokenOutput& t : tokens) {
    const std::string s = TokenText(tok, t.token);
    toks.push_back(s);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const TopLogprob& p : t.top) top[SanitizeUtf8(TokenText(tok, p.token))] = p.logprob;
    tops.push_back(top);
    offs.push_back(offset);
    offset += s.size();
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

void Sse(std::string& out, const json& j) { out += "data: " + DumpJson(j) + "\n\n"; }

}  // namespace

void ApiResponse::OnEvent(size_t i, StreamEvent& e, std::string& out) {
  Choice& c = *choices_[i];
  const Tokenizer& tok = *ctx_.tokenizer;
  const std::vector<TokenOutput> new_tokens = e.tokens;
  for (TokenOutput& t : e.tokens) c.tokens.push_back(std::move(t));
  if (req_.kind == ApiKind::kCompletion) {
    c.text += e.text;
    if (req_.stream && (!e.text.empty() || (req_.logprobs && !new_tokens.empty()))) {
      json ch = {{"index", i}, {"text", e.text}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
      if (req_.logprobs) ch["logprobs"] = CompletionLogprobs(new_tokens, tok, c.text_offset);
      json j = Envelope();
      j["choices"] = json::array({ch});
      Sse(out, j);
    }
  } else {
    OutputDelta d = c.parser.Push(e.text);
    if (e.finished()) {
      OutputDelta rest = c.parser.Finish();
      d.reasoning += rest.reasoning;
      d.content += rest.content;
      for (ToolCallDelta& t : rest.tool_calls) d.tool_calls.push_back(std::move(t));
    }
    if (req_.stream && (!d.empty() || (req_.logprobs && !new_tokens.empty()))) {
      json delta = json::object();
      if (!d.reasoning.empty()) delta["reasoning_content"] = d.reasoning;
      if (!d.content.empty()) delta["content"] = d.content;
      if (!d.tool_calls.empty()) {
        json calls = json::array();
        for (const ToolCallDelta& t : d.tool_calls) {
          json call = {{"index", t.index}};
          if (!t.name.empty()) {
            c.call_ids.push_back("call_" + RandomHex(24));
            call["id"] = c.call_ids.back();
            call["type"] = "function";
            call["function"] = {{"name", t.name}, {"arguments", t.arguments}};
          } else {
            call["function"] = {{"arguments", t.arguments}};
          }
          calls.push_back(call);
        }
        delta["tool_calls"] = calls;
      }
      json ch = {{"index", i}, {"delta", delta}, {"logprobs", nullptr}, {"finish_reason", nullptr}};
      if (req_.logprobs) ch["logprobs"] = ChatLogprobs(new_tokens, tok);
      json j = Envelope();
      j["choices"] = json::array({ch});
      Sse(out, j);
    }
  }
  if (e.finished()) {
    c.finish = e.finish;
    c.error = e.error;
    c.usage = e.usage;
    if (req_.stream) {
      const bool calls = req_.kind == ApiKind::kChat && !c.parser.result().tool_calls.empty();
      json ch = {{"index", i}, {"logprobs", nullptr}, {"finish_reason", FinishString(c.finish, calls)}};
      if (req_.kind == ApiKind::kChat) {
        ch["delta"] = json::object();
      } else {
        ch["text"] = "";
      }
      json j = Envelope();
      j["choices"] = json::array({ch});
      Sse(out, j);
    }
  }
}

bool ApiResponse::Poll(std::string& out, std::chrono::milliseconds timeout) {
  if (done_) return true;
  if (req_.stream && !started_ && req_.kind == ApiKind::kChat) {
    for (size_t i = 0; i < choices_.size(); ++i) {
      json j = Envelope();
      j["choices"] = json::array({{{"index", i},
                                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                                   {"logprobs", nullptr},
                                   {"finish_reason", nullptr}}});
      Sse(out, j);
    }
  }
  started_ = true;
  bool waited = false;
  size_t open = 0;
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (choices_[i]->finish != FinishReason::kNone) continue;
    StreamEvent e;
    // The first open choice waits; the others are read if they have output.
    const auto t = waited ? std::chrono::milliseconds(0) : timeout;
    waited = true;
    if (streams_[i]->Wait(e, t)) OnEvent(i, e, out);
    if (choices_[i]->finish == FinishReason::kNone) ++open;
  }
  if (open > 0) return false;
  done_ = true;
  if (req_.stream) {
    if (const auto err = EngineError()) out += "data: " + err->Body() + "\n\n";
    if (req_.include_usage) {
      json j = Envelope();
      j["choices"] = json::array();
      j["usage"] = Usage();
      Sse(out, j);
    }
    out += "data: [DONE]\n\n";
  }
  return true;
}

std::optional<ApiError> ApiResponse::EngineError() const {
  for (const auto& c : choices_) {
    if (c->finish == FinishReason::kError) {
      ApiError err;
      err.status = 500;
      err.type = "internal_error";
      err.message = c->error;
      return err;
    }
  }
  return std::nullopt;
}

std::string ApiResponse::Body() const {
  if (const auto err = EngineError()) return err->Body();
  json j = Envelope();
  json choices = json::array();
  const Tokenizer& tok = *ctx_.tokenizer;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const Choice& c = *choices_[i];
    if (req_.kind == ApiKind::kCompletion) {
      size_t offset = 0;
      choices.push_back({{"index", i},
                         {"text", c.text},
                         {"logprobs", req_.logprobs ? CompletionLogprobs(c.tokens, tok, offset) : json()},
                         {"finish_reason", FinishString(c.finish, false)}});
      continue;
    }
    const ParsedOutput& p = c.parser.result();
    json msg = {{"role", "assistant"}, {"content", p.content}};
    if (req_.thinking) msg["reasoning_content"] = p.reasoning;
    if (!p.tool_calls.empty()) {
      json calls = json::array();
      for (const ParsedToolCall& t : p.tool_calls) {
        calls.push_back({{"id", "call_" + RandomHex(24)},
                         {"type", "function"},
                         {"function", {{"name", t.name}, {"arguments", t.arguments}}}});
      }
      msg["tool_calls"] = calls;
      if (p.content.empty()) msg["content"] = nullptr;
    }
    choices.push_back({{"index", i},
                       {"message", msg},
                       {"logprobs", req_.logprobs ? ChatLogprobs(c.tokens, tok) : json()},
                       {"finish_reason", FinishString(c.finish, !p.tool_calls.empty())}});
  }
  j["choices"] = choices;
  j["usage"] = Usage();
  return DumpJson(j);
}

}  // namespace qwen3
