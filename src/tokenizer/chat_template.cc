#include "tokenizer/chat_template.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>
#include <system_error>

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

// JSON.stringify of a string: " and backslash escaped, and the C0 controls (\b \t \n \f \r
// short, the rest \u00xx in lower-case hex); everything else, DEL and non-ASCII included,
// kept. The input is valid UTF-8 (nlohmann's parser checks), so the output is too. Python's
// json.dumps with ensure_ascii=False escapes the same set the same way.
void AppendJsString(std::string& out, std::string_view s) {
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

// A number as JavaScript prints it (ECMA-262 Number::toString, which JSON.stringify uses):
// the shortest digits d1..dk that round-trip, with decimal exponent n (value = 0.d1..dk ×
// 10^n), written as an integer (k <= n <= 21), a decimal (0 < n <= 21 or -6 < n <= 0), or
// d1.d2..dk e±(n-1). Every JSON number is a double in JavaScript, so integers past 2^53
// round and 1.0 prints as 1. Non-finite values (1e400 parses to Infinity) print as null;
// -0 prints as 0.
void AppendJsNumber(std::string& out, double v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  if (v == 0) {
    out += '0';
    return;
  }
  char buf[64];
  // Shortest round-trip form, as "d[.ddd]e±XX".
  const std::to_chars_result r =
      std::to_chars(buf, buf + sizeof(buf), std::fabs(v), std::chars_format::scientific);
  QW_ASSERT(r.ec == std::errc());
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  const size_t e_at = sci.find('e');
  QW_ASSERT(e_at != std::string_view::npos);
  std::string digits;
  for (const char c : sci.substr(0, e_at)) {
    if (c != '.') digits += c;
  }
  int exp10 = 0;
  const std::string_view e_text = sci.substr(e_at + 1);
  const std::from_chars_result fr = std::from_chars(
      e_text.data() + (e_text.front() == '+' ? 1 : 0), e_text.data() + e_text.size(), exp10);
  QW_ASSERT(fr.ec == std::errc());
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;
  if (v < 0) out += '-';
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, static_cast<size_t>(n));
    out += '.';
    out += digits.substr(static_cast<size_t>(n));
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<size_t>(-n), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out += digits.substr(1);
    }
    out += 'e';
    out += n - 1 < 0 ? '-' : '+';
    out += std::to_string(std::abs(n - 1));
  }
}

// @huggingface/jinja 0.5.11's toJSON (dist/index.js) with tojson's defaults: no indent,
// separators ", " and ": ", keys in the object's order. nlohmann::ordered_json keeps the
// text's order (a repeated key keeps its first place and its last value, as JSON.parse does).
void AppendJinjaJson(std::string& out, const nlohmann::ordered_json& j) {
  using T = nlohmann::ordered_json::value_t;
  switch (j.type()) {
    case T::null: out += "null"; return;
    case T::boolean: out += j.get<bool>() ? "true" : "false"; return;
    case T::number_integer: AppendJsNumber(out, static_cast<double>(j.get<int64_t>())); return;
    case T::number_unsigned: AppendJsNumber(out, static_cast<double>(j.get<uint64_t>())); return;
    case T::number_float: AppendJsNumber(out, j.get<double>()); return;
    case T::string: AppendJsString(out, j.get_ref<const std::string&>()); return;
    case T::array: {
      out += '[';
      bool first = true;
      for (const auto& x : j) {
        if (!first) out += ", ";
        first = false;
        AppendJinjaJson(out, x);
      }
      out += ']';
      return;
    }
    case T::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, x] : j.items()) {
        if (!first) out += ", ";
        first = false;
        AppendJsString(out, key);
        out += ": ";
        AppendJinjaJson(out, x);
      }
      out += '}';
      return;
    }
    case T::binary:
    case T::discarded:
      break;
  }
  QW_ASSERT(!"Bug: the JSON parser made a binary or discarded value");
}

const char* JsonTypeName(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return "null";
    case nlohmann::ordered_json::value_t::boolean: return "a boolean";
    case nlohmann::ordered_json::value_t::string: return "a string";
    case nlohmann::ordered_json::value_t::array: return "an array";
    case nlohmann::ordered_json::value_t::object: return "an object";
    default: return "a number";
  }
}

}  // namespace

std::string JinjaToJson(std::string_view json_text) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("tojson: not valid JSON: ") + e.what());
  }
  std::string out;
  AppendJinjaJson(out, j);
  return out;
}

std::string RenderQwen3Chat(const std::vector<ChatMessage>& messages,
                            const ChatTemplateOptions& options) {
  if (messages.empty()) throw Error("chat: no messages: expected at least one");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant" && r != "tool") {
      throw Error("chat: message " + std::to_string(i) + " has role \"" + r +
                  "\": expected system, user, assistant or tool");
    }
    if (r != "assistant" && !messages[i].tool_calls.empty()) {
      throw Error("chat: message " + std::to_string(i) + " has role \"" + r +
                  "\" and tool_calls: expected tool_calls only on assistant messages");
    }
  }
  // Every tool as `tool | tojson`, checked before anything is rendered.
  std::vector<std::string> tools_json;
  for (size_t t = 0; t < options.tools.size(); ++t) {
    nlohmann::ordered_json j;
    try {
      j = nlohmann::ordered_json::parse(options.tools[t]);
    } catch (const nlohmann::json::exception& e) {
      throw Error("chat: tool " + std::to_string(t) + " is not valid JSON (" + e.what() +
                  "): expected an OpenAI tool object, {\"type\": \"function\", \"function\": "
                  "{\"name\": ..., \"parameters\": ...}}");
    }
    if (!j.is_object()) {
      throw Error("chat: tool " + std::to_string(t) + " is " + JsonTypeName(j) +
                  ": expected an OpenAI tool object, {\"type\": \"function\", \"function\": "
                  "{\"name\": ..., \"parameters\": ...}}");
    }
    AppendJinjaJson(tools_json.emplace_back(), j);
  }
  std::string out;
  if (!tools_json.empty()) {
    out += "<|im_start|>system\n";
    if (messages[0].role == "system") out += messages[0].content + "\n\n";
    out +=
        "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
        "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    for (const std::string& t : tools_json) out += "\n" + t;
    out +=
        "\n</tools>\n\nFor each function call, return a json object with function name and "
        "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
        "<function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n";
  } else if (messages[0].role == "system") {
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
      // The template tests its `content` (before the lstrip above), not what was written.
      for (size_t c = 0; c < m.tool_calls.size(); ++c) {
        if (c > 0 || !content.empty()) out += '\n';
        out += "<tool_call>\n{\"name\": \"";
        out += m.tool_calls[c].name;
        out += "\", \"arguments\": ";
        out += m.tool_calls[c].arguments;
        out += "}\n</tool_call>";
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

void CheckQwen3ChatTemplateText(const std::string& t, const std::string& source) {
  // The markers of Qwen3's template: ChatML turns, the think-block handling, the switch.
  for (const char* marker : {"<|im_start|>", "last_query_index", "reasoning_content",
                             "enable_thinking is defined and enable_thinking is false"}) {
    if (t.find(marker) == std::string::npos) {
      throw Error(source + ": chat_template is not Qwen3's (no \"" + marker +
                  "\"): only Qwen3's template is rendered");
    }
  }
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
  CheckQwen3ChatTemplateText(j.value("chat_template", std::string()), "tokenizer config " + path);
}

}  // namespace qwen3
