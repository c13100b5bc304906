// Qwen3's chat template over arbitrary conversations. The input is records separated by 0x1E,
// each a tag byte and its payload (fields inside a payload separated by 0x1F), so seeds read
// as conversations:
//   S U A T <content>        a system / user / assistant / tool message
//   X <role> 1F <content>    a message with any role (unknown ones must be refused)
//   R <text>                 reasoning_content of the last message
//   C <name> 1F <arguments>  a tool call on the last message
//   F <json>                 a tool definition (JSON text, maybe invalid)
//   O <flags>                'n': no generation prompt, 't' / 'f': enable_thinking true / false
//   J <json>                 JinjaToJson of the text (valid JSON must give valid JSON)
//   K <text>                 CheckQwen3ChatTemplateText of the text
// Rendering returns or throws Error; a rendered prompt opens with a turn and holds every user
// message's content verbatim.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/error.h"
#include "fuzz/fuzz_targets.h"
#include "fuzz/fuzz_util.h"
#include "tokenizer/chat_template.h"

namespace qwen3::fuzz {

int FuzzChatTemplate(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<ChatMessage> messages;
  ChatTemplateOptions options;
  for (std::string_view rec : SplitRecords(in, '\x1e')) {
    if (rec.empty()) continue;
    const char tag = rec[0];
    const std::string_view payload = rec.substr(1);
    const std::vector<std::string_view> fields = SplitRecords(payload, '\x1f');
    const std::string second =
        fields.size() > 1 ? std::string(payload.substr(fields[0].size() + 1)) : "";
    switch (tag) {
      case 'S':
        messages.emplace_back("system", std::string(payload));
        break;
      case 'U':
        messages.emplace_back("user", std::string(payload));
        break;
      case 'A':
        messages.emplace_back("assistant", std::string(payload));
        break;
      case 'T':
        messages.emplace_back("tool", std::string(payload));
        break;
      case 'X':
        messages.emplace_back(std::string(fields[0]), second);
        break;
      case 'R':
        if (!messages.empty()) messages.back().reasoning_content = std::string(payload);
        break;
      case 'C':
        if (!messages.empty())
          messages.back().tool_calls.push_back({std::string(fields[0]), second});
        break;
      case 'F':
        options.tools.emplace_back(payload);
        break;
      case 'O':
        for (char f : payload) {
          if (f == 'n') options.add_generation_prompt = false;
          if (f == 't') options.enable_thinking = true;
          if (f == 'f') options.enable_thinking = false;
        }
        break;
      case 'J':
        try {
          const std::string out = JinjaToJson(payload);
          FUZZ_CHECK(nlohmann::json::accept(out), "JinjaToJson wrote invalid JSON: " + out);
        } catch (const Error&) {
          FUZZ_CHECK(!nlohmann::json::accept(payload), "JinjaToJson refused valid JSON");
        }
        break;
      case 'K':
        try {
          CheckQwen3ChatTemplateText(std::string(payload), "fuzz");
        } catch (const Error&) {
        }
        break;
      default:
        break;
    }
  }
  std::string prompt;
  try {
    prompt = RenderQwen3Chat(messages, options);
  } catch (const Error&) {
    return 0;
  }
  FUZZ_CHECK(prompt.rfind("<|im_start|>", 0) == 0, "the prompt does not open a turn");
  for (const ChatMessage& m : messages) {
    if (m.role == "user")
      FUZZ_CHECK(prompt.find(m.content) != std::string::npos, "user content lost");
  }
  return 0;
}

}  // namespace qwen3::fuzz
