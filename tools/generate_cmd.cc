#include "tools/generate_cmd.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "serve/engine.h"
#include "serve/generate_text.h"
#include "serve/model_source.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_cancel{false};

void OnSigint(int) { g_cancel.store(true); }

// Ctrl-C cancels the current answer instead of ending the process (while installed).
class SigintCancels {
 public:
  SigintCancels() {
    struct sigaction sa = {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, &old_);
  }
  ~SigintCancels() { sigaction(SIGINT, &old_, nullptr); }

 private:
  struct sigaction old_ = {};
};

// The engine for a text command: KV blocks for `users` sequences of max_seq tokens at once.
std::unique_ptr<Engine> Load(const TextModelOptions& o, size_t users, size_t max_seq,
                             std::unique_ptr<Tokenizer> tokenizer) {
  EngineOptions eo;
  eo.model_dir = o.model_dir;
  eo.tokenizer = o.tokenizer;
  eo.quantize = o.quantize;
  eo.device = o.device;
  eo.kv_type = o.kv_type;
  eo.threads = o.threads;
  eo.max_seq = max_seq;
  eo.block_size = o.block_size;
  eo.max_running = std::min<size_t>(users, 64);
  eo.max_queue = users;
  eo.max_batch_tokens = std::max<size_t>(256, eo.max_running);
  eo.kv_blocks = users * ((max_seq + o.block_size - 1) / o.block_size);
  return Engine::Open(eo, std::move(tokenizer));
}

GenerationRequest MakeRequest(const Engine& e, std::vector<int32_t> prompt,
                              const GenerateOptions& g) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.max_tokens = g.max_tokens;
  r.sampling = g.sampling;
  r.stop = g.stop_strings;
  r.stop_ids = e.eos_ids();
  return r;
}

struct Stats {
  size_t prompt_tokens = 0, cached_tokens = 0, generated_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

Stats StatsOf(const std::vector<TextResult>& res) {
  Stats s;
  for (const TextResult& r : res) {
    s.prompt_tokens += r.usage.prompt_tokens;
    s.cached_tokens += r.usage.cached_tokens;
    s.generated_tokens += r.usage.completion_tokens;
    s.prefill_seconds = std::max(s.prefill_seconds, r.ttft_seconds);
    s.decode_seconds = std::max(s.decode_seconds, r.total_seconds - r.ttft_seconds);
  }
  return s;
}

void PrintStats(std::ostream& err, const Stats& s) {
  char line[256];
  const size_t computed = s.prompt_tokens - s.cached_tokens;
  std::snprintf(line, sizeof(line),
                "[prefill %zu tokens (%zu cached) in %.2f s: %.1f tok/s | decode %zu tokens in "
                "%.2f s: %.1f tok/s]\n",
                s.prompt_tokens, s.cached_tokens, s.prefill_seconds,
                s.prefill_seconds > 0 ? computed / s.prefill_seconds : 0.0, s.generated_tokens,
                s.decode_seconds,
                s.decode_seconds > 0 ? s.generated_tokens / s.decode_seconds : 0.0);
  err << line << std::flush;
}

std::vector<std::string> ReadPrompts(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("--prompts-file " + path + ": cannot read");
  const bool jsonl = path.size() > 6 && path.substr(path.size() - 6) == ".jsonl";
  std::vector<std::string> prompts;
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    if (!jsonl) {
      prompts.push_back(line);
      continue;
    }
    try {
      prompts.push_back(nlohmann::json::parse(line).get<std::string>());
    } catch (const nlohmann::json::exception&) {
      throw Error("--prompts-file " + path + " line " + std::to_string(n) + ": expected a JSON string");
    }
  }
  return prompts;
}

// Streams text, the <think>...</think> part dimmed (on a terminal) or dropped.
class ThinkPrinter {
 public:
  ThinkPrinter(std::ostream& out, bool hide, bool tty) : out_(out), hide_(hide), tty_(tty) {}
  void Write(std::string_view chunk) {
    while (!chunk.empty()) {
      const std::string_view marker = thinking_ ? "</think>" : "<think>";
      const size_t at = chunk.find(marker);
      const std::string_view part = chunk.substr(0, at);
      if (!(thinking_ && hide_)) out_ << part;
      if (at == std::string_view::npos) break;
      if (!hide_) out_ << (thinking_ ? "</think>" : "<think>");
      if (tty_ && !hide_) out_ << (thinking_ ? "\x1b[0m" : "\x1b[2m");
      thinking_ = !thinking_;
      chunk.remove_prefix(at + marker.size());
    }
    out_ << std::flush;
  }
  void End() {
    if (thinking_ && tty_ && !hide_) out_ << "\x1b[0m";
    thinking_ = false;
    out_ << std::flush;
  }

 private:
  std::ostream& out_;
  bool hide_, tty_, thinking_ = false;
};

}  // namespace

int RunGenerate(const GenerateCmdOptions& o, std::ostream& out, std::ostream& err) {
  std::vector<std::string> texts = o.prompts;
  if (!o.prompts_file.empty()) {
    const std::vector<std::string> more = ReadPrompts(o.prompts_file);
    texts.insert(texts.end(), more.begin(), more.end());
  }
  if (texts.empty()) throw Error("generate: no prompt: pass --prompt TEXT or --prompts-file FILE");
  ValidateSampling(o.gen.sampling);
  // Tokenize first (a bad tokenizer fails before the weights load).
  auto tokenizer = ModelSource::Resolve(o.model.model_dir).OpenTokenizer(o.model.tokenizer);
  const Tokenizer& tok = *tokenizer;
  std::vector<std::vector<int32_t>> prompts;
  size_t longest = 0;
  for (const std::string& t : texts) {
    std::string text = t;
    if (o.chat_template) {
      std::vector<ChatMessage> msgs;
      if (!o.system.empty()) msgs.push_back({"system", o.system});
      msgs.push_back({"user", t});
      ChatTemplateOptions co;
      if (o.no_think) co.enable_thinking = false;
      text = RenderQwen3Chat(msgs, co);
    }
    prompts.push_back(tok.Encode(text));
    if (prompts.back().empty()) throw Error("generate: prompt " + std::to_string(prompts.size() - 1) + " is empty");
    longest = std::max(longest, prompts.back().size());
  }
  const size_t max_seq = o.model.max_seq ? o.model.max_seq : longest + o.gen.max_tokens;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (prompts[i].size() + o.gen.max_tokens > max_seq) {
      throw Error("generate: prompt " + std::to_string(i) + " has " +
                  std::to_string(prompts[i].size()) + " tokens + max_tokens " +
                  std::to_string(o.gen.max_tokens) + ": expected at most --max-seq " +
                  std::to_string(max_seq));
    }
  }
  std::unique_ptr<Engine> engine = Load(o.model, prompts.size(), max_seq, std::move(tokenizer));
  std::vector<GenerationRequest> requests;
  for (auto& p : prompts) requests.push_back(MakeRequest(*engine, std::move(p), o.gen));
  SigintCancels sigint;
  g_cancel = false;
  const bool stream = requests.size() == 1;
  const std::vector<TextResult> res = GenerateText(
      *engine, std::move(requests),
      [&](size_t, std::string_view chunk) {
        if (stream) out << chunk << std::flush;
      },
      &g_cancel);
  if (stream) {
    out << "\n";
  } else {
    for (size_t i = 0; i < res.size(); ++i) {
      out << "=== " << i << " (" << ToString(res[i].finish) << ", " << res[i].tokens.size()
          << " tokens)\n" << res[i].text << "\n";
    }
  }
  PrintStats(err, StatsOf(res));
  return 0;
}

int RunChat(const ChatCmdOptions& o, std::istream& in, std::ostream& out, std::ostream& err) {
  ValidateSampling(o.gen.sampling);
  std::unique_ptr<Engine> engine =
      Load(o.model, 1, o.model.max_seq ? o.model.max_seq : 4096,
           ModelSource::Resolve(o.model.model_dir).OpenTokenizer(o.model.tokenizer));
  const Tokenizer& tok = engine->tokenizer();
  std::vector<ChatMessage> messages;
  if (!o.system.empty()) messages.push_back({"system", o.system});
  const bool tty = isatty(STDOUT_FILENO) && &out == &std::cout;
  SigintCancels sigint;
  err << "qwen3 chat: " << o.model.model_dir << " | /reset clears the conversation, /exit or "
      << "Ctrl-D quits, Ctrl-C stops an answer\n";
  for (;;) {
    err << "> " << std::flush;
    std::string line;
    if (!std::getline(in, line)) break;
    if (line == "/exit") break;
    if (line == "/reset") {
      messages.resize(o.system.empty() ? 0 : 1);
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    ChatTemplateOptions co;
    if (o.no_think) co.enable_thinking = false;
    // The whole conversation is rendered each turn; its unchanged prefix is in the prefix cache
    // (from the previous turn's prompt and answer), so only the new part is computed.
    std::vector<int32_t> prompt = tok.Encode(RenderQwen3Chat(messages, co));
    if (prompt.size() + o.gen.max_tokens > engine->max_seq()) {
      err << "conversation too long (" << prompt.size() << " tokens + max_tokens " << o.gen.max_tokens
          << " > " << engine->max_seq() << "): /reset, or restart with a larger --max-seq\n";
      messages.pop_back();
      continue;
    }
    g_cancel = false;
    ThinkPrinter printer(out, o.hide_thinking, tty);
    std::vector<GenerationRequest> req;
    req.push_back(MakeRequest(*engine, std::move(prompt), o.gen));
    const std::vector<TextResult> res = GenerateText(
        *engine, std::move(req), [&](size_t, std::string_view chunk) { printer.Write(chunk); },
        &g_cancel);
    printer.End();
    out << "\n";
    if (res[0].finish == FinishReason::kCancelled) err << "[stopped]\n";
    messages.push_back({"assistant", res[0].text});
    PrintStats(err, StatsOf(res));
  }
  return 0;
}

}  // namespace qwen3
