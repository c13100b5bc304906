// `qwen3 generate` and `qwen3 chat`: a checkpoint directory + its tokenizer on the serving
// Engine (several prompts decode as one continuous batch; chat turns reuse the conversation's
// cached prefix), and the console (streamed text, the <think> part apart, a closing speed line,
// Ctrl-C).
#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>
#include <vector>

#include "generate/sampler.h"

namespace qwen3 {

struct GenerateOptions {
  size_t max_tokens = 256;
  std::vector<std::string> stop_strings;  // the text ends before the first one
  SamplingOptions sampling;
};

struct TextModelOptions {
  std::string model_dir;
  std::string tokenizer;  // empty: model_dir/tokenizer.json
  std::string quantize;   // EngineOptions::quantize
  std::string device = "cpu";  // EngineOptions::device
  std::string kv_type = "bf16";  // EngineOptions::kv_type
  size_t threads = 0;
  size_t max_seq = 0;     // 0: what the prompts need (generate) / 4096 (chat)
  size_t block_size = 64;
};

struct GenerateCmdOptions {
  TextModelOptions model;
  std::vector<std::string> prompts;
  std::string prompts_file;   // one prompt per line (.jsonl: one JSON string per line)
  bool chat_template = false;  // wrap each prompt as a user turn
  std::string system;
  bool no_think = false;
  GenerateOptions gen;
};

struct ChatCmdOptions {
  TextModelOptions model;
  std::string system;
  bool no_think = false, hide_thinking = false;
  GenerateOptions gen;
};

// Return the process exit code; throw Error for bad input (before anything runs).
int RunGenerate(const GenerateCmdOptions& o, std::ostream& out, std::ostream& err);
int RunChat(const ChatCmdOptions& o, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace qwen3
