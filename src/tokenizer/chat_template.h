// Qwen3's chat template (tokenizer_config.json "chat_template"), rendered natively: system /
// user / assistant / tool turns, the reasoning of assistant turns after the last user query
// kept in <think> blocks (earlier ones dropped), add_generation_prompt, and enable_thinking =
// false opening an empty think block. Tool definitions go in the system turn's "# Tools"
// block (each as jinja's `tool | tojson`), an assistant's tool_calls follow its content as
// <tool_call> blocks, and consecutive tool messages share one user turn of <tool_response>s.
// tests/chat_template_test.cc checks it against @huggingface/jinja rendering the real
// template.
//
// What the template does, summarized (read from the template; jinja = @huggingface/jinja
// 0.5.11, Python = transformers' jinja2 with its own tojson = json.dumps(ensure_ascii=False)):
// - tools non-empty: the first turn is "<|im_start|>system\n" + (messages[0].content + "\n\n"
//   if messages[0] is a system message) + the tools block; otherwise a leading system
//   message is its own turn. A system message later in the conversation is a plain turn.
// - An assistant turn is "<|im_start|>assistant\n" + [think block] + content, then per call
//   "\n" (omitted before the first call when content is empty) + "<tool_call>\n{\"name\": \""
//   + name + "\", \"arguments\": " + arguments + "}\n</tool_call>", then "<|im_end|>\n".
//   Here `content` is what follows the last </think> when reasoning_content is unset and
//   the content has one. Name and arguments are inserted verbatim (no escaping).
// - tojson writes ", " and ": " separators, keys in insertion order, strings as
//   JSON.stringify does (only ", \ and control characters escaped; non-ASCII, <, >, &, '
//   and U+2028/9 kept as they are) and numbers as JavaScript prints doubles (1.0 -> 1,
//   1e5 -> 100000, 1e21 -> 1e+21, 1e-7 -> 1e-7, integers past 2^53 rounded). Python prints
//   floats as 1.0, 100000.0, 1e+21, 1e-07 and keeps big integers exact; only numbers differ.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qwen3 {

// An assistant message's tool call (OpenAI: {"type": "function", "function": {"name": ...,
// "arguments": "<JSON text>"}}).
struct ToolCall {
  std::string name;
  // As the client sent it: JSON text (OpenAI sends a string), rendered verbatim as the
  // template renders string arguments. A client that sent an object (the transformers
  // convention) gets the template's `arguments | tojson` from JinjaToJson(its JSON text).
  std::string arguments;
};

struct ChatMessage {
  ChatMessage() = default;
  ChatMessage(std::string r, std::string c, std::optional<std::string> reasoning = std::nullopt,
              std::vector<ToolCall> calls = {})
      : role(std::move(r)),
        content(std::move(c)),
        reasoning_content(std::move(reasoning)),
        tool_calls(std::move(calls)) {}

  std::string role;  // system, user, assistant, tool
  std::string content;  // a null content (OpenAI, beside tool_calls) is ""
  std::optional<std::string> reasoning_content;  // assistant only
  std::vector<ToolCall> tool_calls;              // assistant only
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::optional<bool> enable_thinking;  // unset = the template's default (thinking on)
  // Each tool definition as JSON text: an OpenAI tool object, e.g. {"type": "function",
  // "function": {"name": ..., "description": ..., "parameters": {...}}}. Rendered as
  // jinja's `tool | tojson`. Empty = no tools block (as the template's `if tools`). The
  // "= {}" keeps -Wmissing-field-initializers quiet for {add_generation_prompt, thinking}.
  std::vector<std::string> tools = {};
};

// Throws Error for an unknown role, tool_calls on a message that is not an assistant's, a
// tool that is not a JSON object, or an empty conversation.
std::string RenderQwen3Chat(const std::vector<ChatMessage>& messages,
                            const ChatTemplateOptions& options);

// JSON text re-serialized as @huggingface/jinja's `tojson` filter writes it (see above).
// Throws Error if json_text is not valid JSON.
std::string JinjaToJson(std::string_view json_text);

// Checks that a tokenizer_config.json's chat_template is Qwen3's (the one rendered here);
// throws Error naming the file otherwise.
void CheckQwen3ChatTemplate(const std::string& tokenizer_config_path);
// The same check on the template text itself (e.g. a GGUF's tokenizer.chat_template); errors
// start with source.
void CheckQwen3ChatTemplateText(const std::string& template_text, const std::string& source);

}  // namespace qwen3
