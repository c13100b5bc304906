// Splits a Qwen3 model's generated text into the OpenAI chat fields reasoning_content, content
// and tool_calls, incrementally: Push() each decoded chunk (whole UTF-8 characters, never part
// of a stop string), forward the returned delta to a streaming client, then Finish(); result()
// is the non-stream message, and the deltas concatenate to it exactly (one documented
// exception, malformed_tool_call). The model writes, after the prompt's "<|im_start|>assistant\n":
//
//   <think>\nTHOUGHTS\n</think>\n\nANSWER<tool_call>\n{"name": N, "arguments": {...}}\n</tool_call>
//
// Whether a think block comes is decided by the caller from the rendered prompt, not guessed
// from the text: with enable_thinking = false the prompt already ends in an empty
// "<think>\n\n</think>\n\n" block, so `thinking` is false and everything is content.
//
// thinking = true: an opening "<think>" (after optional whitespace) belongs to no field; the
//   text up to "</think>" is reasoning, even without the opening tag (a template may put it in
//   the prompt), and ALL text is reasoning if "</think>" never comes (e.g. max_tokens hit).
//   One leading "\n" and the trailing "\n"s of the reasoning are dropped, and so is the
//   whitespace that opens the content after "</think>".
// tools = true: in the content, each "<tool_call>...</tool_call>" block (Hermes format, as
//   Qwen3's chat template asks for) whose body is a JSON object with a non-empty string "name"
//   and an object "arguments" becomes a tool call; its `arguments` is the raw JSON text of that
//   value as generated (whitespace around it trimmed). Whitespace right before a "<tool_call>"
//   is dropped, and so is trailing whitespace once a call was streamed. Text outside blocks is
//   content. With tools = false the tags are plain content.
//
// Streaming is as live as the format allows: only a possible partial tag ("<think>",
// "</think>", "<tool_call>", "</tool_call>") and whitespace that may turn out to be dropped
// are held back. A call's first delta carries its name, sent once the name is known and the
// `"arguments":` key is passed (the arguments may come before the name); then fragments of
// the arguments text follow as generated. A JSON-aware scan (string literals, escapes,
// nesting) finds where the arguments and the body end, so "}" or "</tool_call>" inside JSON
// strings do not end them.
//
// Malformed calls (bad JSON, no string "name" or no object "arguments", or the text ends
// inside an unfinished block) are content, tags included, with the whitespace before them.
// If nothing of the call was streamed yet, that content is streamed too (as soon as the body
// is seen to be broken). If its name was already streamed, the stream cannot take it back:
// result() then has the block's text in content and not in tool_calls, the streamed content
// lacks that text, and result().malformed_tool_call is true so the caller knows the stream
// diverged (stream indices are never reused: later calls stream with an index one higher than
// their position in result().tool_calls).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3 {

struct ToolCallDelta {
  size_t index = 0;       // 0, 1, ... in order of first appearance in the stream
  std::string name;       // non-empty only in the call's first delta
  std::string arguments;  // next fragment of the arguments JSON text (may be empty)
};

// One Push()/Finish() worth of output; the three fields are independent streams.
struct OutputDelta {
  std::string reasoning, content;
  std::vector<ToolCallDelta> tool_calls;  // at most one entry per index
  bool empty() const { return reasoning.empty() && content.empty() && tool_calls.empty(); }
};

struct ParsedToolCall {
  std::string name;
  std::string arguments;  // valid JSON object text, = the concatenation of its fragments
};

struct ParsedOutput {
  std::string reasoning, content;
  std::vector<ParsedToolCall> tool_calls;
  // A call whose name was already streamed turned out malformed (see the header comment).
  bool malformed_tool_call = false;
};

class OutputParser {
 public:
  OutputParser(bool thinking, bool tools);

  OutputDelta Push(std::string_view chunk);
  OutputDelta Finish();                // flushes what was held back; call once, after the last Push
  const ParsedOutput& result() const;  // valid after Finish()

 private:
  enum class Phase { kThinkStart, kReasoning, kContentStart, kContent };
  // The JSON body of the current "<tool_call>" block, scanned byte by byte as it arrives.
  struct CallScan {
    enum class State {
      kBeforeObject,
      kBeforeKey,
      kKey,
      kBeforeColon,
      kBeforeValue,
      kValue,
      kAfterValue,
      kAfterObject
    };
    std::string lead;  // whitespace before the block, then "<tool_call>"
    std::string raw;   // the text after "<tool_call>" (cut at the block's end once known)
    size_t pos = 0;    // next byte of raw to scan
    State state = State::kBeforeObject;
    std::string key;          // the current top-level key, as written (escapes kept)
    size_t value_begin = 0;   // where the current top-level value starts
    std::vector<char> stack;  // open '{' / '[' inside the current value
    bool in_string = false, escape = false;
    std::string name;                             // decoded, once known
    bool name_known = false, args_colon = false;  // args_colon: `"arguments":` passed
    static constexpr size_t kUnknown = std::string::npos;
    size_t args_begin = kUnknown, args_end = kUnknown;  // the arguments value in raw
    size_t object_end = kUnknown;                       // after the body's closing '}'
    size_t end = kUnknown;                              // after the block's "</tool_call>"
    bool bad = false;     // not a valid call: only its end is looked for
    size_t bad_from = 0;  // where to look for "</tool_call>" when bad
    bool name_emitted = false;
    size_t index = 0;            // stream index, once name_emitted
    size_t args_emitted = 0;     // raw[args_begin, args_emitted) was streamed
    bool lead_emitted = false;   // when bad and streamed as content
    size_t content_emitted = 0;  // raw[0, content_emitted) streamed as content
  };

  void Feed(std::string_view text);
  void FeedContent(std::string text);
  bool ScanCall();  // true once the block ended (call_.end set)
  void Fail();
  void ValueEnd(size_t end);
  void EmitCallProgress();
  void EndCall(bool closed);
  void EmitReasoning(std::string_view s);
  void EmitContent(std::string_view s);
  void EmitToolDelta(size_t index, std::string_view name, std::string_view arguments);

  bool tools_;
  Phase phase_;
  bool reasoning_at_start_ = true;  // one leading "\n" of the reasoning still to drop
  std::string pending_;             // held back by the reasoning phases
  std::string held_;                // content held back: whitespace + partial "<tool_call>"
  bool in_call_ = false;
  CallScan call_;
  size_t next_index_ = 0;  // stream index of the next call
  bool finished_ = false;
  OutputDelta delta_;
  ParsedOutput result_;
};

// The whole text at once (non-streaming).
ParsedOutput ParseOutput(std::string_view text, bool thinking, bool tools);

}  // namespace qwen3
