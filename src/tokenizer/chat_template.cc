#include "tokenizer/chat_template.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "base/error.h"

namespace qwen3 {
namespace {

std::string_view LStrip(std::string_view s) {
  while (!s.empty() && s.front() == '\n') s.remove_prefix(1);
  return s;
}
std::string_view RStrip(std::string_view s) {
  while (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  return s;
}
bool StartsWith(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }
bool EndsWith(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Python's s.split(sep)[-1] and s.split(sep)[0].
std::string_view AfterLast(std::string_view s, std::string_view sep) {
  const size_t at = s.rfind(sep);
  return at == std::string_view::npos ? s : s.substr(at + sep.size());
}
std::string_view BeforeFirst(std::string_view s, std::string_view sep) {
  const size_t at = s.find(sep);
  return at == std::string_view::npos ? s : s.substr(0, at);
}

}  // namespace

std::string RenderQwen3Chat(const std::vector<ChatMessage>& messages,
                            const ChatTemplateOptions& options) {
  if (messages.empty()) throw Error("chat: no messages: expected at least one");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      throw Error("chat: message " + std::to_string(i) + " has role \"" + r +
                  "\": expected system, user, assistant or tool");
    }
  }
  std::string out;
  if (messages[0].role == "system") {
    out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
  }
  // The last real user query (not a tool response wrapped as one).
  size_t last_query = messages.size() - 1;
  for (size_t k = messages.size(); k-- > 0;) {
    const ChatMessage& m = messages[k];
    if (m.role == "user" &&
        !(StartsWith(m.content, "<tool_response>") && EndsWith(m.content, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool last = i + 1 == messages.size();
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    } else if (m.role == "assistant") {
      std::string_view content = m.content;
      std::string_view reasoning;
      if (m.reasoning_content) {
        reasoning = *m.reasoning_content;
      } else if (content.find("</think>") != std::string_view::npos) {
        reasoning = LStrip(AfterLast(RStrip(BeforeFirst(m.content, "</think>")), "<think>"));
        content = LStrip(AfterLast(m.content, "</think>"));
      }
      if (i > last_query && (last || !reasoning.empty())) {
        out += "<|im_start|>assistant\n<think>\n";
        out += RStrip(LStrip(reasoning));
        out += "\n</think>\n\n";
        out += LStrip(content);
      } else {
        out += "<|im_start|>assistant\n";
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (m.role == "tool") {
      if (i == 0 || messages[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
      if (last || messages[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (options.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (options.enable_thinking.has_value() && !*options.enable_thinking) {
      out += "<think>\n\n</think>\n\n";
    }
  }
  return out;
}

void CheckQwen3ChatTemplate(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("tokenizer config " + path + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(s.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("tokenizer config " + path + ": not valid JSON: " + e.what());
  }
  const std::string t = j.value("chat_template", std::string());
  // The markers of Qwen3's template: ChatML turns, the think-block handling, the switch.
  for (const char* marker : {"<|im_start|>", "last_query_index", "reasoning_content",
                             "enable_thinking is defined and enable_thinking is false"}) {
    if (t.find(marker) == std::string::npos) {
      throw Error("tokenizer config " + path +
                  ": chat_template is not Qwen3's (no \"" + marker +
                  "\"): only Qwen3's template is rendered");
    }
  }
}

}  // namespace qwen3
