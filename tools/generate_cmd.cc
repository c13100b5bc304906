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
#include "io/hf_checkpoint.h"
#include "kernels/cpu/cpu_path.h"
#include "kernels/cpu/kernels.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
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

// Everything a text command loads: tokenizer, weights, model.
struct TextModel {
  std::unique_ptr<ThreadPool> pool;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ModelWeights> weights;
  std::unique_ptr<Model> model;
  std::vector<int32_t> eos;
};

std::string TokenizerPath(const TextModelOptions& o) {
  if (!o.tokenizer.empty()) return o.tokenizer;
  const fs::path p = fs::path(o.model_dir) / "tokenizer.json";
  if (!fs::exists(p)) {
    throw Error("model directory " + o.model_dir +
                ": no tokenizer.json: pass --tokenizer FILE (a Qwen3 tokenizer.json)");
  }
  return p.string();
}

std::unique_ptr<Tokenizer> LoadTokenizer(const TextModelOptions& o) {
  return std::make_unique<Tokenizer>(Tokenizer::FromFile(TokenizerPath(o)));
}

// The weights and model, with the tokenizer already loaded (generate sizes max_seq by it).
TextModel Load(const TextModelOptions& o, std::unique_ptr<Tokenizer> tokenizer, size_t users,
               size_t max_seq) {
  TextModel m;
  m.tokenizer = std::move(tokenizer);
  const fs::path config = fs::path(o.model_dir) / "tokenizer_config.json";
  if (fs::exists(config)) CheckQwen3ChatTemplate(config.string());
  const HfCheckpoint ck = HfCheckpoint::Open(o.model_dir);
  m.pool = std::make_unique<ThreadPool>(o.threads);
  m.weights = std::make_unique<ModelWeights>(ModelWeights::FromCheckpoint(ck, *m.pool));
  Model::Options mo;
  mo.max_users = users;
  mo.max_seq = max_seq;
  m.model = std::make_unique<Model>(*m.weights, mo, cpu::GetCpuKernels(cpu::SelectCpuPath()),
                                    *m.pool);
  for (const char* t : {"<|im_end|>", "<|endoftext|>"}) {
    const int32_t id = m.tokenizer->TokenId(t);
    if (id >= 0) m.eos.push_back(id);
  }
  return m;
}

void PrintStats(std::ostream& err, const GenerateStats& s) {
  char line[256];
  std::snprintf(line, sizeof(line),
                "[prefill %zu tokens in %.2f s: %.1f tok/s | decode %zu tokens in %.2f s: %.1f "
                "tok/s, %zu steps]\n",
                s.prompt_tokens, s.prefill_seconds,
                s.prefill_seconds > 0 ? s.prompt_tokens / s.prefill_seconds : 0.0,
                s.generated_tokens, s.decode_seconds,
                s.decode_seconds > 0 ? s.generated_tokens / s.decode_seconds : 0.0, s.steps);
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
  std::unique_ptr<Tokenizer> tokenizer = LoadTokenizer(o.model);
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
  TextModel m = Load(o.model, std::move(tokenizer), prompts.size(),
                     o.model.max_seq ? o.model.max_seq : longest + o.gen.max_tokens);
  GenerateOptions gen = o.gen;
  if (gen.eos_ids.empty()) gen.eos_ids = m.eos;
  Generator g(*m.model, *m.tokenizer);
  SigintCancels sigint;
  g_cancel = false;
  GenerateStats stats;
  const bool stream = prompts.size() == 1;
  const std::vector<Generation> res = g.Generate(
      prompts, gen,
      [&](size_t, std::string_view chunk) {
        if (stream) out << chunk << std::flush;
      },
      &g_cancel, &stats);
  if (stream) {
    out << "\n";
  } else {
    for (size_t i = 0; i < res.size(); ++i) {
      out << "=== " << i << " (" << res[i].finish_reason << ", " << res[i].tokens.size()
          << " tokens)\n" << res[i].text << "\n";
    }
  }
  PrintStats(err, stats);
  return 0;
}

int RunChat(const ChatCmdOptions& o, std::istream& in, std::ostream& out, std::ostream& err) {
  ValidateSampling(o.gen.sampling);
  TextModel m = Load(o.model, LoadTokenizer(o.model), 1, o.model.max_seq ? o.model.max_seq : 4096);
  GenerateOptions gen = o.gen;
  if (gen.eos_ids.empty()) gen.eos_ids = m.eos;
  Generator g(*m.model, *m.tokenizer);
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
    std::vector<int32_t> prompt = m.tokenizer->Encode(RenderQwen3Chat(messages, co));
    if (prompt.size() + gen.max_tokens > m.model->options().max_seq) {
      err << "conversation too long (" << prompt.size() << " tokens + max_tokens " << gen.max_tokens
          << " > " << m.model->options().max_seq << "): /reset, or restart with a larger --max-seq\n";
      messages.pop_back();
      continue;
    }
    g_cancel = false;
    ThinkPrinter printer(out, o.hide_thinking, tty);
    GenerateStats stats;
    const std::vector<Generation> res = g.Generate(
        {prompt}, gen, [&](size_t, std::string_view chunk) { printer.Write(chunk); }, &g_cancel,
        &stats);
    printer.End();
    out << "\n";
    if (res[0].finish_reason == "cancelled") err << "[stopped]\n";
    messages.push_back({"assistant", res[0].text});
    PrintStats(err, stats);
  }
  return 0;
}

}  // namespace qwen3
