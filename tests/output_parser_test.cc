// OutputParser: Qwen3 generated text -> reasoning_content / content / tool_calls. Every case is
// pushed whole, in every 2-way split at a character boundary (for ASCII: every byte), one
// character at a time and in random chunkings; each must give the same result(), and the
// concatenated deltas must equal it (the one exception, a malformed call whose name was
// already streamed, is checked on its own). Streaming liveness (what is held back) is checked
// push by push, and random texts built from tag and JSON fragments check the invariants.
#include "generate/output_parser.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qwen3 {
namespace {

std::string Describe(const ParsedOutput& p) {
  std::ostringstream os;
  os << "{reasoning=\"" << p.reasoning << "\", content=\"" << p.content << "\", tool_calls=[";
  for (const ParsedToolCall& c : p.tool_calls) os << "{" << c.name << ", " << c.arguments << "}";
  os << "], malformed=" << p.malformed_tool_call << "}";
  return os.str();
}

bool SameFields(const ParsedOutput& a, const ParsedOutput& b) {
  if (a.reasoning != b.reasoning || a.content != b.content) return false;
  if (a.tool_calls.size() != b.tool_calls.size()) return false;
  for (size_t i = 0; i < a.tool_calls.size(); ++i) {
    if (a.tool_calls[i].name != b.tool_calls[i].name) return false;
    if (a.tool_calls[i].arguments != b.tool_calls[i].arguments) return false;
  }
  return true;
}

bool ValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    }
    i += n;
  }
  return true;
}

struct ParseRun {
  ParsedOutput result;  // parser.result()
  ParsedOutput stream;  // the deltas concatenated (tool calls by stream index)
  std::string error;    // a broken delta invariant, if any
};

ParseRun Parse(const std::vector<std::string>& chunks, bool thinking, bool tools) {
  OutputParser parser(thinking, tools);
  ParseRun run;
  const auto add = [&](const OutputDelta& d) {
    if (d.empty() != (d.reasoning.empty() && d.content.empty() && d.tool_calls.empty())) {
      run.error += "empty() disagrees; ";
    }
    if (!ValidUtf8(d.reasoning) || !ValidUtf8(d.content)) run.error += "delta not UTF-8; ";
    run.stream.reasoning += d.reasoning;
    run.stream.content += d.content;
    for (size_t i = 0; i < d.tool_calls.size(); ++i) {
      const ToolCallDelta& t = d.tool_calls[i];
      if (i > 0 && t.index <= d.tool_calls[i - 1].index) run.error += "indices not increasing; ";
      if (t.index == run.stream.tool_calls.size()) {
        if (t.name.empty()) run.error += "first delta of a call has no name; ";
        run.stream.tool_calls.push_back({t.name, ""});
      } else if (t.index > run.stream.tool_calls.size()) {
        run.error += "index skipped; ";
        continue;
      } else if (!t.name.empty()) {
        run.error += "name repeated; ";
      }
      run.stream.tool_calls[t.index].arguments += t.arguments;
    }
  };
  for (const std::string& chunk : chunks) add(parser.Push(chunk));
  add(parser.Finish());
  run.result = parser.result();
  for (const ParsedToolCall& c : run.result.tool_calls) {
    try {
      if (!nlohmann::json::parse(c.arguments).is_object()) run.error += "arguments not object; ";
    } catch (const nlohmann::json::exception&) {
      run.error += "arguments not JSON; ";
    }
  }
  return run;
}

// Character boundaries of a UTF-8 string, 0 and size() included.
std::vector<size_t> Boundaries(std::string_view s) {
  std::vector<size_t> b;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || (static_cast<unsigned char>(s[i]) >> 6) != 2) b.push_back(i);
  }
  return b;
}

std::vector<std::string> CutAt(std::string_view s, const std::vector<size_t>& cuts) {
  std::vector<std::string> chunks;
  size_t from = 0;
  for (size_t c : cuts) {
    if (c > from && c < s.size()) {
      chunks.emplace_back(s.substr(from, c - from));
      from = c;
    }
  }
  chunks.emplace_back(s.substr(from));
  return chunks;
}

// Whole, every 2-way split, char by char, and random chunkings.
std::vector<std::vector<std::string>> Chunkings(std::string_view s) {
  const std::vector<size_t> b = Boundaries(s);
  std::vector<std::vector<std::string>> all = {{std::string(s)}};
  for (size_t c : b) all.push_back({std::string(s.substr(0, c)), std::string(s.substr(c))});
  all.push_back(CutAt(s, b));
  std::mt19937 rng(12345);
  for (int r = 0; r < 20; ++r) {
    std::vector<size_t> cuts;
    for (size_t c : b) {
      if (rng() % 4 == 0) cuts.push_back(c);
    }
    all.push_back(CutAt(s, cuts));
  }
  return all;
}

std::string Show(const std::vector<std::string>& chunks) {
  std::string s;
  for (const std::string& c : chunks) s += "[" + c + "]";
  return s;
}

// Every chunking gives `expected` (malformed_tool_call false) and deltas that add up to it.
testing::AssertionResult ParsesAs(std::string_view text, bool thinking, bool tools,
                                  const ParsedOutput& expected) {
  for (const auto& chunks : Chunkings(text)) {
    const ParseRun run = Parse(chunks, thinking, tools);
    if (!run.error.empty() || !SameFields(run.result, expected) || run.result.malformed_tool_call ||
        !SameFields(run.stream, run.result)) {
      return testing::AssertionFailure()
             << "chunks " << Show(chunks) << "\n  result   " << Describe(run.result)
             << "\n  stream   " << Describe(run.stream) << "\n  expected " << Describe(expected)
             << "\n  errors: " << run.error;
    }
  }
  return testing::AssertionSuccess();
}

ParsedOutput Out(std::string reasoning, std::string content,
                 std::vector<ParsedToolCall> calls = {}) {
  ParsedOutput p;
  p.reasoning = std::move(reasoning);
  p.content = std::move(content);
  p.tool_calls = std::move(calls);
  return p;
}

const std::string kWeather =
    "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
const ParsedToolCall kWeatherCall = {"get_weather", "{\"city\": \"Paris\"}"};

// ---- reasoning ----

TEST(OutputParserTest, ThinkingOffEverythingIsContent) {
  EXPECT_TRUE(ParsesAs("The answer is 4.", false, false, Out("", "The answer is 4.")));
  EXPECT_TRUE(ParsesAs("<think>\nx\n</think>\n\nHi\n", false, false,
                       Out("", "<think>\nx\n</think>\n\nHi\n")));
  EXPECT_TRUE(ParsesAs("\n\nHi", false, true, Out("", "\n\nHi")));
}

TEST(OutputParserTest, ThinkingOnSplitsReasoningAndContent) {
  EXPECT_TRUE(ParsesAs("<think>\nLet me think.\nOK.\n</think>\n\nThe answer is 4.", true, false,
                       Out("Let me think.\nOK.", "The answer is 4.")));
  // Only one leading "\n" of the reasoning goes; all trailing ones and the content's
  // leading whitespace go; the content keeps its own trailing text.
  EXPECT_TRUE(
      ParsesAs("<think>\n\n  R\n\n\n</think> \n\t C \n", true, false, Out("\n  R", "C \n")));
  EXPECT_TRUE(ParsesAs(" \n<think>R</think>C", true, false, Out("R", "C")));
  EXPECT_TRUE(ParsesAs("<think>\n\n</think>\n\nHi", true, false, Out("", "Hi")));
  EXPECT_TRUE(ParsesAs("<think></think>", true, false, Out("", "")));
  // Later tags are plain text.
  EXPECT_TRUE(
      ParsesAs("<think>a</think>b<think>c</think>d", true, false, Out("a", "b<think>c</think>d")));
  // A "<" that is not a tag.
  EXPECT_TRUE(
      ParsesAs("<think>\na < b </thin k>\n</think>\n<", true, false, Out("a < b </thin k>", "<")));
}

TEST(OutputParserTest, MissingCloseTagMeansAllReasoning) {
  EXPECT_TRUE(ParsesAs("<think>\nStill thinking\n\n", true, false, Out("Still thinking\n\n", "")));
  EXPECT_TRUE(ParsesAs("<think>\nabc </thi", true, false, Out("abc </thi", "")));
  EXPECT_TRUE(ParsesAs("<think>\n", true, false, Out("", "")));
  EXPECT_TRUE(ParsesAs("<thi", true, false, Out("<thi", "")));
  EXPECT_TRUE(ParsesAs("", true, true, Out("", "")));
  EXPECT_TRUE(ParsesAs("<think>\nI will call <tool_call>\n{}", true, true,
                       Out("I will call <tool_call>\n{}", "")));
}

TEST(OutputParserTest, OpenTagAbsentStillReasoning) {
  EXPECT_TRUE(
      ParsesAs("Thinking here.\n</think>\n\nAnswer", true, false, Out("Thinking here.", "Answer")));
  EXPECT_TRUE(ParsesAs("\nThinking", true, false, Out("Thinking", "")));
  EXPECT_TRUE(ParsesAs("</think>\n\nAnswer", true, false, Out("", "Answer")));
  EXPECT_TRUE(ParsesAs("  <thinking>\n</think>A", true, false, Out("  <thinking>", "A")));
}

TEST(OutputParserTest, Utf8MultiByte) {
  // Chunks split inside a character still parse the same (the parser is byte-transparent).
  const std::string text =
      "<think>\n🤔\n</think>\n\nДа <tool_call>\n{\"name\": \"é\", "
      "\"arguments\": {\"v\": \"ü\"}}\n</tool_call>";
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    const ParseRun run = Parse({text.substr(0, cut), text.substr(cut)}, true, true);
    EXPECT_TRUE(SameFields(run.result, Out("🤔", "Да", {{"é", "{\"v\": \"ü\"}"}})))
        << cut << ": " << Describe(run.result);
    EXPECT_TRUE(SameFields(run.stream, run.result)) << cut;
  }

  EXPECT_TRUE(ParsesAs("<think>\nДумаю… 🤔\n</think>\n\n答案是 4 🎉", true, false,
                       Out("Думаю… 🤔", "答案是 4 🎉")));
  EXPECT_TRUE(
      ParsesAs("Привет 👋 <tool_call>\n{\"name\": \"météo\", \"arguments\": "
               "{\"ville\": \"Zürich 🏔\"}}\n</tool_call>",
               false, true, Out("", "Привет 👋", {{"météo", "{\"ville\": \"Zürich 🏔\"}"}})));
}

// ---- tool calls ----

TEST(OutputParserTest, OneToolCallWithContentBefore) {
  EXPECT_TRUE(ParsesAs("Let me check.\n\n" + kWeather, false, true,
                       Out("", "Let me check.", {kWeatherCall})));
  EXPECT_TRUE(ParsesAs(kWeather + "\n", false, true, Out("", "", {kWeatherCall})));
}

TEST(OutputParserTest, SeveralToolCalls) {
  const std::string second =
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"CET\", \"n\": [1, 2]}}"
      "\n</tool_call>";
  EXPECT_TRUE(ParsesAs(
      "\n" + kWeather + "\n" + second + "\n\n" + kWeather + "\n", false, true,
      Out("", "", {kWeatherCall, {"get_time", "{\"tz\": \"CET\", \"n\": [1, 2]}"}, kWeatherCall})));
  // Text between calls is content; whitespace touching the calls is not.
  EXPECT_TRUE(ParsesAs("A " + kWeather + "\n\nB.\n" + kWeather + " \n", false, true,
                       Out("", "A\n\nB.", {kWeatherCall, kWeatherCall})));
}

TEST(OutputParserTest, ArgumentsWithNestedObjectsAndTrickyStrings) {
  const std::string args =
      R"({"q": "a } b }}", "t": "</tool_call> <tool_call> \"}\n", "n": {"x": [1, {"y": "\"}"}],)"
      R"( "z": {}}, "e": "\\", "u": "\u00e9", "f": -1.5e+3, "b": [true, false, null]})";
  EXPECT_TRUE(
      ParsesAs("<tool_call>\n{\"name\": \"search\", \"arguments\": " + args + "}\n</tool_call>",
               false, true, Out("", "", {{"search", args}})));
}

TEST(OutputParserTest, WhitespaceVariationsAndKeyOrder) {
  EXPECT_TRUE(ParsesAs("<tool_call>{ \"name\" :\"f\" ,\n\t\"arguments\":{ } }</tool_call>", false,
                       true, Out("", "", {{"f", "{ }"}})));
  EXPECT_TRUE(ParsesAs("<tool_call>\n{\"arguments\": {\"a\": 1}, \"name\": \"f\"}\n</tool_call>",
                       false, true, Out("", "", {{"f", "{\"a\": 1}"}})));
  // Other keys, and an escaped name.
  EXPECT_TRUE(
      ParsesAs("<tool_call>\n{\"id\": 7, \"name\": \"get\\u005fx\", \"extra\": [\"}\"],"
               " \"arguments\": {\"a\": \"b\"}}\n</tool_call>",
               false, true, Out("", "", {{"get_x", "{\"a\": \"b\"}"}})));
}

TEST(OutputParserTest, ToolsOffKeepsTagsAsContent) {
  EXPECT_TRUE(ParsesAs("Let me check.\n\n" + kWeather + "\n", false, false,
                       Out("", "Let me check.\n\n" + kWeather + "\n")));
}

TEST(OutputParserTest, ReasoningThenToolCall) {
  EXPECT_TRUE(ParsesAs("<think>\nI need the weather.\n</think>\n\n" + kWeather, true, true,
                       Out("I need the weather.", "", {kWeatherCall})));
  // A tool call inside the reasoning is reasoning.
  EXPECT_TRUE(
      ParsesAs("<think>\n" + kWeather + "\n</think>\n\nOK", true, true, Out(kWeather, "OK")));
}

TEST(OutputParserTest, NoToolCallKeepsContentWhitespace) {
  EXPECT_TRUE(ParsesAs("Answer.\n\n", false, true, Out("", "Answer.\n\n")));
  EXPECT_TRUE(
      ParsesAs("Use <tool_call> tags <tool_", false, true, Out("", "Use <tool_call> tags <tool_")));
}

// Bodies that are broken before the name is streamed: the block is content, in every split.
TEST(OutputParserTest, MalformedBodiesBecomeContent) {
  const std::vector<std::string> bad = {
      "<tool_call>\n{\"name\": get_weather}\n</tool_call>",                  // not JSON
      "<tool_call>\n{\"arguments\": {\"a\": 1}}\n</tool_call>",              // no name
      "<tool_call>\n{\"name\": 5, \"arguments\": {}}\n</tool_call>",         // name not string
      "<tool_call>\n{\"name\": \"\", \"arguments\": {}}\n</tool_call>",      // empty name
      "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",                        // no arguments
      "<tool_call>\n[\"name\", \"f\"]\n</tool_call>",                        // not an object
      "<tool_call>\nI would call f\n</tool_call>",                           // prose
      "<tool_call>\n{\"name\": \"f\\q\", \"arguments\": {}}\n</tool_call>",  // bad escape
      "<tool_call>\n{\"na",                                                  // unfinished
      "<tool_call>",
  };
  for (const std::string& block : bad) {
    EXPECT_TRUE(ParsesAs("Hi\n" + block, false, true, Out("", "Hi\n" + block))) << block;
  }
  // A later good call still parses (index 0 in the stream and in the result).
  EXPECT_TRUE(ParsesAs(bad[0] + "\n" + kWeather, false, true, Out("", bad[0], {kWeatherCall})));
}

// A body that breaks after its name could be streamed: result() has it as content either way;
// when the name was streamed (a chunk boundary after `"arguments":`), the flag is set and the
// stream differs from result() by exactly that block.
TEST(OutputParserTest, MalformedAfterNameStreamed) {
  struct Case {
    std::string block, tail;
  };
  const std::vector<Case> cases = {
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1,}}\n</tool_call>", "\n" + kWeather},
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": \"{}\"}\n</tool_call>", "\n" + kWeather},
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {}} trailing\n</tool_call>", kWeather},
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"name\": \"g\"}</tool_call>",
       " " + kWeather},
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"arguments\": {}}</tool_call>",
       kWeather},  // the streamed arguments are not the ones JSON keeps
      // Not JSON outside a string: the block ends at its "</tool_call>", the next call parses.
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1\n</tool_call>", "\n" + kWeather},
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}", ""},  // unfinished
      {"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"</tool_call>", ""},
  };
  for (const Case& c : cases) {
    const std::string text = "Hi " + c.block + c.tail;
    const std::vector<ParsedToolCall> good =
        c.tail.empty() ? std::vector<ParsedToolCall>{} : std::vector<ParsedToolCall>{kWeatherCall};
    size_t flagged = 0;
    for (const auto& chunks : Chunkings(text)) {
      const ParseRun run = Parse(chunks, false, true);
      SCOPED_TRACE(Show(chunks));
      EXPECT_EQ(run.error, "");
      EXPECT_TRUE(SameFields(run.result, Out("", "Hi " + c.block, good))) << Describe(run.result);
      if (!run.result.malformed_tool_call) {
        EXPECT_TRUE(SameFields(run.stream, run.result)) << Describe(run.stream);
        continue;
      }
      ++flagged;
      EXPECT_EQ(run.stream.content, "Hi");
      ASSERT_EQ(run.stream.tool_calls.size(), 1 + good.size());
      EXPECT_EQ(run.stream.tool_calls[0].name, "f");
      EXPECT_TRUE(std::string_view(c.block)
                      .substr(c.block.find("\"arguments\": ") + 13)
                      .starts_with(run.stream.tool_calls[0].arguments));
      if (!good.empty()) {
        EXPECT_EQ(run.stream.tool_calls[1].name, kWeatherCall.name);
        EXPECT_EQ(run.stream.tool_calls[1].arguments, kWeatherCall.arguments);
      }
    }
    EXPECT_GT(flagged, 0u) << c.block;
  }
}

// ---- streaming liveness: exactly what must be held back is ----

struct Step {
  Step(std::string p, std::string r, std::string c, std::vector<ToolCallDelta> t = {})
      : push(std::move(p)), reasoning(std::move(r)), content(std::move(c)), calls(std::move(t)) {}
  std::string push, reasoning, content;  // what is pushed, and the delta expected back
  std::vector<ToolCallDelta> calls;
};

void ExpectSteps(bool thinking, bool tools, const std::vector<Step>& steps, const Step& finish) {
  OutputParser parser(thinking, tools);
  for (size_t i = 0; i <= steps.size(); ++i) {
    const Step& s = i < steps.size() ? steps[i] : finish;
    SCOPED_TRACE(i < steps.size() ? "push " + std::to_string(i) + " [" + s.push + "]" : "finish");
    const OutputDelta d = i < steps.size() ? parser.Push(s.push) : parser.Finish();
    EXPECT_EQ(d.reasoning, s.reasoning);
    EXPECT_EQ(d.content, s.content);
    ASSERT_EQ(d.tool_calls.size(), s.calls.size());
    for (size_t k = 0; k < s.calls.size(); ++k) {
      EXPECT_EQ(d.tool_calls[k].index, s.calls[k].index);
      EXPECT_EQ(d.tool_calls[k].name, s.calls[k].name);
      EXPECT_EQ(d.tool_calls[k].arguments, s.calls[k].arguments);
    }
    EXPECT_EQ(d.empty(), s.reasoning.empty() && s.content.empty() && s.calls.empty());
  }
}

TEST(OutputParserTest, StreamsReasoningLive) {
  ExpectSteps(true, false,
              {{"<thi", "", ""},
               {"nk>", "", ""},
               {"\nHel", "Hel", ""},
               {"lo\n", "lo", ""},  // "\n" may precede </think>
               {"world\n\n</thi", "\nworld", ""},
               {"nk>\n\n", "", ""},
               {"Ans", "", "Ans"},
               {"wer\n", "", "wer\n"}},
              {"", "", ""});
  // Without </think>, what was held is reasoning after all.
  ExpectSteps(true, false, {{"<think>\nA\n\n</th", "A", ""}}, {"", "\n\n</th", ""});
}

TEST(OutputParserTest, StreamsToolCallLive) {
  ExpectSteps(
      false, true,
      {{"Sure. <tool", "", "Sure."},
       {"_call>\n{\"name\": \"get_weather\", ", "", ""},
       {"\"arguments\": ", "", "", {{0, "get_weather", ""}}},
       {"{\"city\": \"Pa", "", "", {{0, "", "{\"city\": \"Pa"}}},
       {"ris}\"", "", "", {{0, "", "ris}\""}}},  // "}" inside a string
       {"}", "", "", {{0, "", "}"}}},            // the arguments end here exactly
       {"}\n</tool_", "", ""},
       {"call>\n", "", ""},
       {"<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>", "", "", {{1, "a", "{}"}}}},
      {"", "", ""});
}

TEST(OutputParserTest, StreamsBrokenBodyAsContentEarly) {
  ExpectSteps(false, true,
              {{"Hi\n<tool_call>\n{oops", "", "Hi\n<tool_call>\n{oops"},
               {" more </tool_", "", " more "},
               {"call>\n\nBye", "", "</tool_call>\n\nBye"}},
              {"", "", ""});
}

TEST(OutputParserTest, ParseOutputMatchesStreaming) {
  const std::string text = "<think>\nR\n</think>\n\nC " + kWeather;
  const ParsedOutput p = ParseOutput(text, true, true);
  EXPECT_TRUE(SameFields(p, Out("R", "C", {kWeatherCall}))) << Describe(p);
}

// ---- random texts: the invariants hold whatever the model writes ----

// Where a malformed call's name was streamed: the rest of the stream still agrees with the
// result (same reasoning, its calls streamed in order, less content).
testing::AssertionResult StreamDivergesOnlyByFlaggedCalls(const ParseRun& run) {
  const ParsedOutput& r = run.result;
  const ParsedOutput& s = run.stream;
  size_t k = 0;
  for (const ParsedToolCall& c : s.tool_calls) {
    if (k < r.tool_calls.size() && c.name == r.tool_calls[k].name &&
        c.arguments == r.tool_calls[k].arguments) {
      ++k;
    }
  }
  if (s.reasoning == r.reasoning && k == r.tool_calls.size() &&
      s.tool_calls.size() > r.tool_calls.size() && s.content.size() < r.content.size()) {
    return testing::AssertionSuccess();
  }
  return testing::AssertionFailure() << "result " << Describe(r) << "\nstream " << Describe(s);
}

TEST(OutputParserTest, RandomTextsKeepInvariants) {
  const std::vector<std::string> pieces = {"<think>",
                                           "</think>",
                                           "<tool_call>",
                                           "</tool_call>",
                                           "<",
                                           "</",
                                           "\n",
                                           "\n\n",
                                           " ",
                                           "{",
                                           "}",
                                           "[",
                                           "]",
                                           "\"",
                                           "\\",
                                           ",",
                                           ":",
                                           "x",
                                           "é",
                                           "1",
                                           "\"name\"",
                                           "\"arguments\"",
                                           "\"f\"",
                                           "{\"name\": \"f\", \"arguments\": ",
                                           "{\"k\": \"}\"}",
                                           "<tool_call>\n",
                                           kWeather};
  std::mt19937 rng(7);
  size_t calls = 0, flagged = 0;
  for (int t = 0; t < 400; ++t) {
    std::string text;
    const size_t n = 1 + rng() % 12;
    for (size_t i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
    for (bool thinking : {false, true}) {
      for (bool tools : {false, true}) {
        SCOPED_TRACE(text);
        const ParseRun whole = Parse({text}, thinking, tools);
        calls += whole.result.tool_calls.size();
        if (!tools) {
          EXPECT_TRUE(whole.result.tool_calls.empty());
        }
        for (const auto& chunks : Chunkings(text)) {
          const ParseRun run = Parse(chunks, thinking, tools);
          ASSERT_EQ(run.error, "") << Show(chunks);
          ASSERT_TRUE(SameFields(run.result, whole.result)) << Show(chunks) << "\n"
                                                            << Describe(run.result) << "\n"
                                                            << Describe(whole.result);
          if (run.result.malformed_tool_call) {
            ++flagged;
            ASSERT_TRUE(StreamDivergesOnlyByFlaggedCalls(run)) << Show(chunks);
          } else {
            ASSERT_TRUE(SameFields(run.stream, run.result)) << Show(chunks);
          }
        }
      }
    }
  }
  EXPECT_GT(calls, 10u);    // the pieces do produce valid calls ...
  EXPECT_GT(flagged, 10u);  // ... and streamed-then-malformed ones
}

}  // namespace
}  // namespace qwen3
