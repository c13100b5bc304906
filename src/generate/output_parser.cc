#include "generate/output_parser.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "base/error.h"

namespace qwen3 {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallOpen = "<tool_call>";
constexpr std::string_view kCallClose = "</tool_call>";
constexpr const char* kSpaces = " \t\r\n";
constexpr size_t kNpos = std::string::npos;

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Length of the longest suffix of text that is a proper prefix of tag: what may still become
// the tag once more text arrives.
size_t PartialTagSuffix(std::string_view text, std::string_view tag) {
  for (size_t n = std::min(text.size(), tag.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  }
  return 0;
}

// Bytes that may appear in a JSON scalar (number, true, false, null). Anything else outside a
// string, a bracket or a separator cannot be JSON, so the body is broken right there.
bool IsScalarChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '+' || c == '.' ||
         c == 'E';
}

}  // namespace

OutputParser::OutputParser(bool thinking, bool tools)
    : tools_(tools), phase_(thinking ? Phase::kThinkStart : Phase::kContent) {}

OutputDelta OutputParser::Push(std::string_view chunk) {
  QW_ASSERT(!finished_);
  delta_ = OutputDelta();
  Feed(chunk);
  return std::move(delta_);
}

OutputDelta OutputParser::Finish() {
  QW_ASSERT(!finished_);
  delta_ = OutputDelta();
  if (phase_ == Phase::kThinkStart) {  // only whitespace and a partial "<think>": reasoning
    const std::string text = std::move(pending_);
    pending_.clear();
    phase_ = Phase::kReasoning;
    Feed(text);
  }
  if (phase_ == Phase::kReasoning) {  // no "</think>": everything held back is reasoning
    EmitReasoning(pending_);
    pending_.clear();
  }
  if (tools_) {
    if (in_call_) EndCall(/*closed=*/false);
    in_call_ = false;
    // Held whitespace is dropped after calls; a held partial "<tool_call>" is just text.
    const bool spaces = held_.find_first_not_of(kSpaces) == kNpos;
    if (!spaces || result_.tool_calls.empty()) EmitContent(held_);
    held_.clear();
  }
  finished_ = true;
  return std::move(delta_);
}

const ParsedOutput& OutputParser::result() const {
  QW_ASSERT(finished_);
  return result_;
}

void OutputParser::Feed(std::string_view in) {
  std::string owned;  // text handed from one phase to the next
  if (phase_ == Phase::kThinkStart) {
    pending_.append(in);
    const size_t first = pending_.find_first_not_of(kSpaces);
    if (first == kNpos) return;
    const std::string_view rest = std::string_view(pending_).substr(first);
    if (rest.size() < kThinkOpen.size() && kThinkOpen.starts_with(rest)) return;
    // "<think>" and the whitespace before it belong to no field; without the tag the text
    // is reasoning all the same.
    owned = rest.starts_with(kThinkOpen) ? std::string(rest.substr(kThinkOpen.size()))
                                         : std::move(pending_);
    pending_.clear();
    phase_ = Phase::kReasoning;
    in = owned;
  }
  if (phase_ == Phase::kReasoning) {
    std::string text = std::move(pending_);
    pending_.clear();
    text.append(in);
    size_t begin = 0;
    if (reasoning_at_start_ && !text.empty()) {
      if (text[0] == '\n') begin = 1;
      reasoning_at_start_ = false;
    }
    const size_t close = text.find(kThinkClose, begin);
    if (close == kNpos) {
      // Hold a partial "</think>" and the newlines before it (dropped if the tag follows).
      size_t hold =
          text.size() - PartialTagSuffix(std::string_view(text).substr(begin), kThinkClose);
      while (hold > begin && text[hold - 1] == '\n') --hold;
      EmitReasoning(std::string_view(text).substr(begin, hold - begin));
      pending_ = text.substr(hold);
      return;
    }
    size_t end = close;
    while (end > begin && text[end - 1] == '\n') --end;
    EmitReasoning(std::string_view(text).substr(begin, end - begin));
    owned = text.substr(close + kThinkClose.size());
    in = owned;
    phase_ = Phase::kContentStart;
  }
  if (phase_ == Phase::kContentStart) {
    const size_t first = in.find_first_not_of(kSpaces);
    if (first == kNpos) return;
    in.remove_prefix(first);
    phase_ = Phase::kContent;
  }
  if (!tools_) {
    EmitContent(in);
    return;
  }
  FeedContent(std::string(in));
}

// Content with tools: text between blocks is content, each block goes through ScanCall.
void OutputParser::FeedContent(std::string text) {
  while (!text.empty()) {
    if (in_call_) {
      call_.raw.append(text);
      text.clear();
      if (!ScanCall()) return;
      text = call_.raw.substr(call_.end);  // after "</tool_call>": content again
      call_.raw.resize(call_.end);
      EndCall(/*closed=*/true);
      in_call_ = false;
      continue;
    }
    text.insert(0, held_);
    held_.clear();
    const size_t open = text.find(kCallOpen);
    size_t hold = open == kNpos ? text.size() - PartialTagSuffix(text, kCallOpen) : open;
    while (hold > 0 && IsSpace(text[hold - 1])) --hold;  // dropped if a block follows
    EmitContent(std::string_view(text).substr(0, hold));
    if (open == kNpos) {
      held_ = text.substr(hold);
      return;
    }
    call_ = CallScan();
    call_.lead = text.substr(hold, open + kCallOpen.size() - hold);
    in_call_ = true;
    text.erase(0, open + kCallOpen.size());
  }
}

void OutputParser::Fail() {
  call_.bad = true;
  call_.bad_from = call_.pos;
}

// The top-level value that started at call_.value_begin ends before raw[end].
void OutputParser::ValueEnd(size_t end) {
  CallScan& c = call_;
  if (c.key == "name" && !c.name_known) {
    try {
      const auto name = nlohmann::json::parse(c.raw.substr(c.value_begin, end - c.value_begin));
      if (name.is_string()) c.name = name.get<std::string>();
    } catch (const nlohmann::json::exception&) {
    }
    if (c.name.empty()) return Fail();
    c.name_known = true;
  }
  if (c.key == "arguments" && c.value_begin == c.args_begin) c.args_end = end;
  c.state = CallScan::State::kAfterValue;
}

// Scans call_.raw from call_.pos: the body must be `{ "key": value, ... }` then
// "</tool_call>", whitespace allowed between tokens. Values are scanned structurally
// (strings with escapes, bracket nesting); nlohmann::json validates the whole at the end.
bool OutputParser::ScanCall() {
  using State = CallScan::State;
  CallScan& c = call_;
  const std::string_view raw = c.raw;
  bool wait = false;  // a partial "</tool_call>" at the end
  while (!c.bad && !wait && c.pos < raw.size()) {
    const char ch = raw[c.pos];
    const bool space = IsSpace(ch);
    switch (c.state) {
      case State::kBeforeObject:
        if (ch == '{') {
          c.state = State::kBeforeKey;
        } else if (!space) {
          Fail();
          continue;
        }
        ++c.pos;
        break;
      case State::kBeforeKey:
        if (ch == '"') {
          c.value_begin = c.pos;
          c.state = State::kKey;
        } else if (ch == '}') {
          c.object_end = c.pos + 1;
          c.state = State::kAfterObject;
        } else if (!space) {
          Fail();
          continue;
        }
        ++c.pos;
        break;
      case State::kKey:
        if (c.escape) {
          c.escape = false;
        } else if (ch == '\\') {
          c.escape = true;
        } else if (ch == '"') {
          c.key = std::string(raw.substr(c.value_begin + 1, c.pos - c.value_begin - 1));
          c.state = State::kBeforeColon;
        }
        ++c.pos;
        break;
      case State::kBeforeColon:
        if (ch == ':') {
          if (c.key == "arguments" && !c.args_colon) c.args_colon = true;
          c.state = State::kBeforeValue;
        } else if (!space) {
          Fail();
          continue;
        }
        ++c.pos;
        break;
      case State::kBeforeValue:
        if (space) {
          ++c.pos;
          break;
        }
        if (c.key == "name" && !c.name_known && ch != '"') {
          Fail();
          continue;
        }
        if (c.key == "arguments" && c.args_begin == CallScan::kUnknown) {
          if (ch != '{') {
            Fail();
            continue;
          }
          c.args_begin = c.args_emitted = c.pos;
        }
        c.value_begin = c.pos;
        c.stack.clear();
        c.in_string = c.escape = false;
        c.state = State::kValue;
        break;  // the value's first byte is scanned as kValue
      case State::kValue:
        if (c.in_string) {
          if (c.escape) {
            c.escape = false;
          } else if (ch == '\\') {
            c.escape = true;
          } else if (ch == '"') {
            c.in_string = false;
          }
          ++c.pos;
          if (!c.in_string && c.stack.empty()) ValueEnd(c.pos);
        } else if (ch == '"') {
          c.in_string = true;
          ++c.pos;
        } else if (ch == '{' || ch == '[') {
          c.stack.push_back(ch);
          ++c.pos;
        } else if (c.stack.empty() && (space || ch == ',' || ch == '}' || ch == ']' || ch == ':')) {
          ValueEnd(c.pos);  // a scalar ended; ch is scanned again after it
        } else if (ch == '}' || ch == ']') {
          if (c.stack.back() != (ch == '}' ? '{' : '[')) {
            Fail();
            continue;
          }
          c.stack.pop_back();
          ++c.pos;
          if (c.stack.empty()) ValueEnd(c.pos);
        } else if (space || ch == ',' || ch == ':' || IsScalarChar(ch)) {
          ++c.pos;
        } else {
          Fail();
        }
        break;
      case State::kAfterValue:
        if (ch == ',') {
          c.state = State::kBeforeKey;
        } else if (ch == '}') {
          c.object_end = c.pos + 1;
          c.state = State::kAfterObject;
        } else if (!space) {
          Fail();
          continue;
        }
        ++c.pos;
        break;
      case State::kAfterObject: {
        if (space) {
          ++c.pos;
          break;
        }
        const std::string_view rest = raw.substr(c.pos);
        if (rest.starts_with(kCallClose)) {
          c.end = c.pos + kCallClose.size();
          return true;
        }
        if (!kCallClose.starts_with(rest)) {
          Fail();
          continue;
        }
        wait = true;
        break;
      }
    }
  }
  if (!c.bad) {
    EmitCallProgress();
    return false;
  }
  // Broken: the block ends at the next "</tool_call>" wherever it is.
  const size_t close = raw.find(kCallClose, c.bad_from);
  if (close != kNpos) {
    c.end = close + kCallClose.size();
    return true;
  }
  c.bad_from = std::max(c.bad_from, raw.size() - std::min(raw.size(), kCallClose.size() - 1));
  if (!c.name_emitted) {  // it will be content: stream it now, but for a partial end tag
    if (!c.lead_emitted) EmitContent(c.lead);
    c.lead_emitted = true;
    const size_t hold = std::max(c.content_emitted, raw.size() - PartialTagSuffix(raw, kCallClose));
    EmitContent(raw.substr(c.content_emitted, hold - c.content_emitted));
    c.content_emitted = hold;
  }
  return false;
}

// Streams the name once it is known and `"arguments":` is passed, then the arguments text
// scanned so far.
void OutputParser::EmitCallProgress() {
  CallScan& c = call_;
  if (!c.name_known || !c.args_colon) return;
  if (!c.name_emitted) {
    c.index = next_index_++;
    c.name_emitted = true;
    EmitToolDelta(c.index, c.name, "");
  }
  if (c.args_begin == CallScan::kUnknown) return;
  const size_t upto = c.args_end != CallScan::kUnknown ? c.args_end : c.pos;
  if (upto > c.args_emitted) {
    EmitToolDelta(c.index, "",
                  std::string_view(c.raw).substr(c.args_emitted, upto - c.args_emitted));
    c.args_emitted = upto;
  }
}

void OutputParser::EndCall(bool closed) {
  CallScan& c = call_;
  bool valid = closed && !c.bad && c.object_end != CallScan::kUnknown && c.name_known &&
               c.args_end != CallScan::kUnknown;
  if (valid) {
    // The whole body must be JSON whose name and arguments are the ones streamed.
    try {
      const auto body = nlohmann::json::parse(c.raw.begin(), c.raw.begin() + c.object_end);
      const auto args =
          nlohmann::json::parse(c.raw.begin() + c.args_begin, c.raw.begin() + c.args_end);
      const auto name = body.find("name");
      const auto body_args = body.find("arguments");
      valid = body.is_object() && name != body.end() && name->is_string() && *name == c.name &&
              body_args != body.end() && body_args->is_object() && *body_args == args;
    } catch (const nlohmann::json::exception&) {
      valid = false;
    }
  }
  if (valid) {
    EmitCallProgress();
    result_.tool_calls.push_back({c.name, c.raw.substr(c.args_begin, c.args_end - c.args_begin)});
  } else if (c.name_emitted) {  // too late to stream it as content
    result_.content += c.lead;
    result_.content += c.raw;
    result_.malformed_tool_call = true;
  } else {
    if (!c.lead_emitted) EmitContent(c.lead);
    EmitContent(std::string_view(c.raw).substr(c.content_emitted));
  }
  call_ = CallScan();
}

void OutputParser::EmitReasoning(std::string_view s) {
  delta_.reasoning += s;
  result_.reasoning += s;
}

void OutputParser::EmitContent(std::string_view s) {
  delta_.content += s;
  result_.content += s;
}

void OutputParser::EmitToolDelta(size_t index, std::string_view name, std::string_view arguments) {
  if (delta_.tool_calls.empty() || delta_.tool_calls.back().index != index) {
    delta_.tool_calls.push_back({index, std::string(name), ""});
  } else {
    delta_.tool_calls.back().name += name;
  }
  delta_.tool_calls.back().arguments += arguments;
}

ParsedOutput ParseOutput(std::string_view text, bool thinking, bool tools) {
  OutputParser parser(thinking, tools);
  parser.Push(text);
  parser.Finish();
  return parser.result();
}

}  // namespace qwen3
