// Qwen3's chat template (tokenizer_config.json "chat_template"), rendered natively: system /
// user / assistant / tool turns, the reasoning of assistant turns after the last user query
// kept in <think> blocks (earlier ones dropped), add_generation_prompt, and enable_thinking =
// false opening an empty think block. tests/chat_template_test.cc checks it against
// @huggingface/jinja rendering the real template. Tool definitions and tool_calls are not
// supported (an Error says so rather than rendering them wrong).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace qwen3 {

struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(std::string r, std::string c, std::optional<std::string> reasoning = std::nullopt)
      : role(std::move(r)), content(std::move(c)), reasoning_content(std::move(reasoning)) {}

  std::string role;  // system, user, assistant, tool
  std::string content;
  std::optional<std::string> reasoning_content;  // assistant only
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::optional<bool> enable_thinking;  // unset = the template's default (thinking on)
};

// Throws Error for an unknown role or an empty conversation.
std::string RenderQwen3Chat(const std::vector<ChatMessage>& messages,
                            const ChatTemplateOptions& options);

// Checks that a tokenizer_config.json's chat_template is Qwen3's (the one rendered here);
// throws Error naming the file otherwise.
void CheckQwen3ChatTemplate(const std::string& tokenizer_config_path);

}  // namespace qwen3
