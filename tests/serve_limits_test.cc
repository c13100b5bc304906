// `qwen3 serve`'s limits (docs/RELIABILITY.md): each one at and past its value, on a server in
// this process with small limits, over raw sockets (tools/raw_http.h) so the bytes are exactly
// the test's; bad limit flags; and model files that fail validation refused before their
// weights are allocated.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "serve/engine.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "tests/cli_util.h"
#include "tests/error_matchers.h"
#include "tools/abuse_actions.h"
#include "tools/raw_http.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing_cli::Dir;
using testing_cli::RunTool;

const std::string kModel = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/tiny-a.bf16.gguf";

struct Reply {
  RawHttp::Result result = RawHttp::kClosed;
  int status = 0;
  std::string body;
  std::string message() const {
    try {
      return json::parse(body).at("error").at("message").get<std::string>();
    } catch (const std::exception&) {
      return "(not an error body) " + body;
    }
  }
};

class ServeLimitsTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    EngineOptions eo;
    eo.model_dir = kModel;
    eo.threads = 1;
    eo.kv_blocks = 64;
    eo.block_size = 32;
    eo.max_seq = 1024;
    eo.max_running = 2;
    eo.max_queue = 4;
    engine_ = Engine::Open(eo).release();
    ServerOptions so;
    so.port = 0;
    so.model_name = "m";
    so.http_threads = 8;
    so.http = {12 << 10, 4096, 0.5, 0.5, 0.5, 4096};
    so.api = {3, 100, 1000, 2, 2, 2, 8};
    server_ = new HttpServer(so);
    port_ = server_->Bind();
    server_->Start();
    server_->SetEngine(engine_);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete engine_;
  }

  // Sends bytes on a new connection and reads one reply.
  static Reply Exchange(const std::string& bytes) {
    RawHttp c;
    Reply r;
    if (!c.Connect(port_, Deadline(10))) return r;
    c.Send(bytes, Deadline(10));  // the server may refuse before taking it all
    RawHttp::Reply reply;
    r.result = c.ReadReply(reply, Deadline(30));
    r.status = reply.head.status;
    r.body = reply.body;
    return r;
  }
  static Reply Chat(const std::string& fields) {
    return Exchange(
        PostRequest("/v1/chat/completions",
                    R"({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2)" +
                        std::string(fields.empty() ? "" : ", ") + fields + "}"));
  }

  static Engine* engine_;
  static HttpServer* server_;
  static int port_;
};
Engine* ServeLimitsTest::engine_ = nullptr;
HttpServer* ServeLimitsTest::server_ = nullptr;
int ServeLimitsTest::port_ = 0;

#define EXPECT_REPLY(reply, code, ...)                                         \
  do {                                                                         \
    const Reply r_ = (reply);                                                  \
    ASSERT_EQ(r_.result, RawHttp::kOk);                                        \
    EXPECT_EQ(r_.status, code) << r_.body;                                     \
    for (const char* part : std::initializer_list<const char*>{__VA_ARGS__}) { \
      EXPECT_NE(r_.message().find(part), std::string::npos) << r_.message();   \
    }                                                                          \
  } while (0)

TEST_F(ServeLimitsTest, RequestLimitsAreBadRequestsNamingTheValueAndTheFlag) {
  const std::string msg = R"({"role": "user", "content": "x"})";
  EXPECT_REPLY(
      Exchange(PostRequest("/v1/chat/completions", "{\"messages\": [" + msg + "," + msg + "," +
                                                       msg + "], \"max_tokens\": 1}")),
      200);
  EXPECT_REPLY(Exchange(PostRequest("/v1/chat/completions", "{\"messages\": [" + msg + "," + msg +
                                                                "," + msg + "," + msg + "]}")),
               400, "4 messages", "at most 3", "--max-messages");
  std::string ids = "[1";
  for (int i = 1; i < 101; ++i) ids += ",1";
  EXPECT_REPLY(
      Exchange(PostRequest("/v1/completions", R"({"prompt": )" + ids + R"(], "max_tokens": 1})")),
      400, "101 tokens", "at most 100", "--max-prompt-tokens");
  EXPECT_REPLY(
      Exchange(PostRequest("/v1/completions", R"({"prompt": [1, 2], "max_tokens": 1001})")), 400,
      "max_tokens", "1..1000", "--max-tokens", "1001");
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions",
                                    R"({"prompt": [1, 2], "max_tokens": 20, "ignore_eos": true})")),
               200);
  EXPECT_REPLY(Chat(R"("n": 3)"), 400, "\"n\"", "1..2", "--max-n");
  EXPECT_REPLY(Chat(R"("n": 2)"), 200);
  EXPECT_REPLY(Chat(R"("logprobs": true, "top_logprobs": 3)"), 400, "top_logprobs", "0..2",
               "--max-top-logprobs");
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions",
                                    R"({"prompt": "a", "max_tokens": 1, "logprobs": 3})")),
               400, "logprobs", "--max-top-logprobs");
  EXPECT_REPLY(Chat(R"("stop": ["a", "b", "c"])"), 400, "stop", "at most 2 strings", "--max-stops");
  EXPECT_REPLY(Chat(R"("stop": ["123456789"])"), 400, "stop", "at most 8 bytes",
               "--max-stop-bytes");
  EXPECT_REPLY(Chat(R"("stop": ["12345678", "b"])"), 200);
  // prompts x n past what the queue holds (--max-queue 4): a 400, not a 503 that no retry fixes.
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions",
                                    R"({"prompt": [[1], [2], [3]], "n": 2, "max_tokens": 1})")),
               400, "6 choices", "at most 4", "--max-queue");
}

// Regression: a body of a million '[' overflowed the HTTP thread's stack (the error message
// quoted the value, and nlohmann dumps recursively). Now it is a 400 while parsing.
TEST_F(ServeLimitsTest, DeeplyNestedBodiesAreBadRequests) {
  ApiContext ctx;
  ctx.model_name = "m";
  ctx.tokenizer = &engine_->tokenizer();
  ctx.max_context = 1024;
  const std::string deep =
      "{\"messages\": " + std::string(1 << 20, '[') + std::string(1 << 20, ']') + "}";
  try {
    ParseRequest(ApiKind::kChat, deep, ctx);
    ADD_FAILURE() << "no error";
  } catch (const ApiException& e) {
    EXPECT_EQ(e.error().status, 400);
    EXPECT_NE(e.error().message.find("nests deeper than 64"), std::string::npos)
        << e.error().message;
  }
  // 64 levels are fine (and then wrong for messages: a 400 naming the field).
  const std::string ok = "{\"messages\": " + std::string(63, '[') + std::string(63, ']') + "}";
  EXPECT_REPLY(Exchange(PostRequest("/v1/chat/completions", ok)), 400, "messages[0]");
}

TEST_F(ServeLimitsTest, TooLargeBodyIs413BeforeItIsRead) {
  // Refused on the head alone: the 5 MB are never sent.
  EXPECT_REPLY(Exchange("POST /v1/completions HTTP/1.1\r\nContent-Length: 5000000\r\n\r\n"), 413,
               "5000000 bytes", "--max-body-bytes 4096");
  std::string chunked = "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 10; ++i) chunked += "400\r\n" + std::string(1024, ' ') + "\r\n";
  EXPECT_REPLY(Exchange(chunked + "0\r\n\r\n"), 413, "chunked", "--max-body-bytes 4096");
  // At the limit: read (and then a 400 for what it says).
  std::string body = R"({"prompt": "a", "max_tokens": 1})";
  body += std::string(4096 - body.size(), ' ');
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions", body)), 200);
  // A small chunked body is read like any other.
  const std::string small = R"({"prompt": "a", "max_tokens": 1})";
  char size[16];
  std::snprintf(size, sizeof(size), "%zx", small.size());
  EXPECT_REPLY(Exchange("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
                        std::string(size) + "\r\n" + small + "\r\n0\r\n\r\n"),
               200);
}

TEST_F(ServeLimitsTest, TooLargeHeadIs431) {
  std::string flood = "GET /health HTTP/1.1\r\n";
  for (int i = 0; flood.size() < (13 << 10); ++i)
    flood += "X-" + std::to_string(i) + ": " + std::string(50, 'v') + "\r\n";
  EXPECT_REPLY(Exchange(flood + "\r\n"), 431, "--max-header-bytes 12288");
  EXPECT_REPLY(Exchange(flood), 431, "--max-header-bytes 12288");  // and one that never ends
  EXPECT_REPLY(Exchange("GET /health HTTP/1.1\r\nX-Long: " + std::string(9000, 'l') + "\r\n\r\n"),
               431, "header line", "at most 8192");
  EXPECT_REPLY(Exchange("GET /" + std::string(9000, 'u') + " HTTP/1.1\r\n\r\n"), 414,
               "request line");
  // Just under the limit is fine.
  std::string big = "GET /health HTTP/1.1\r\n";
  for (int i = 0; big.size() < (11 << 10); ++i)
    big += "X-" + std::to_string(i) + ": " + std::string(50, 'v') + "\r\n";
  EXPECT_REPLY(Exchange(big + "\r\n"), 200);
}

TEST_F(ServeLimitsTest, FramingTheLibraryWouldMisreadIsRefused) {
  const std::string body = R"({"prompt": "a", "max_tokens": 1})";
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions", body, "Content-Encoding: gzip\r\n")), 415,
               "gzip");
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions", body, "Content-Encoding: %62r\r\n")), 415);
  EXPECT_REPLY(Exchange(PostRequest("/v1/completions", body, "Transfer-Encoding: chunked\r\n")),
               400, "Content-Length and Transfer-Encoding");
  EXPECT_REPLY(Exchange("POST /v1/completions HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), 400,
               "\"1x\"");
  EXPECT_REPLY(
      Exchange("POST /v1/completions HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
      400, "differ");
  EXPECT_REPLY(Exchange("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), 400,
               "chunked");
  // No length: no body, at once (the library alone reads to EOF, so this would hang).
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_REPLY(Exchange("POST /v1/completions HTTP/1.1\r\n\r\n"), 400, "not valid JSON");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(400));
}

TEST_F(ServeLimitsTest, SlowRequestsAre408) {
  const std::string body = R"({"prompt": "a", "max_tokens": 1})";
  const std::string request = PostRequest("/v1/completions", body);
  for (const size_t fast :
       {size_t{5}, request.size() - body.size() + 3}) {  // in the head, in the body
    RawHttp c;
    ASSERT_TRUE(c.Connect(port_, Deadline(10)));
    ASSERT_EQ(c.Send(request.substr(0, fast), Deadline(10)), RawHttp::kOk);
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = fast; i < request.size() && !c.Readable(); ++i) {
      c.Send(request.substr(i, 1), Deadline(10));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    RawHttp::Reply reply;
    ASSERT_EQ(c.ReadReply(reply, Deadline(10)), RawHttp::kOk);
    EXPECT_EQ(reply.head.status, 408) << reply.body;
    EXPECT_NE(reply.body.find("--read-timeout 0.5 s"), std::string::npos) << reply.body;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
  }
}

TEST_F(ServeLimitsTest, IdleKeptAliveConnectionsAreClosed) {
  RawHttp c;
  ASSERT_TRUE(c.Connect(port_, Deadline(10)));
  for (int i = 0; i < 3; ++i) {  // kept alive between requests
    ASSERT_EQ(c.Send("GET /health HTTP/1.1\r\n\r\n", Deadline(10)), RawHttp::kOk);
    RawHttp::Reply reply;
    ASSERT_EQ(c.ReadReply(reply, Deadline(10)), RawHttp::kOk);
    EXPECT_EQ(reply.head.status, 200);
  }
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.AwaitClose(Deadline(5)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
  // A connection that sends nothing at all is closed after --read-timeout.
  RawHttp silent;
  ASSERT_TRUE(silent.Connect(port_, Deadline(10)));
  EXPECT_TRUE(silent.AwaitClose(Deadline(5)));
}

TEST_F(ServeLimitsTest, AClientThatReadsNothingIsDropped) {
  RawHttp c;
  ASSERT_TRUE(c.Connect(port_, Deadline(10), 1024));
  ASSERT_EQ(c.Send(PostRequest(
                       "/v1/completions",
                       R"({"prompt": "a", "max_tokens": 900, "ignore_eos": true, "stream": true})"),
                   Deadline(10)),
            RawHttp::kOk);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // reading nothing, past --write-timeout
  std::string first;
  EXPECT_TRUE(c.AwaitClose(Deadline(10), &first));
  EXPECT_EQ(first.rfind("HTTP/1.1 200", 0), 0u) << first;
  for (int i = 0; i < 100 && engine_->stats().running > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(engine_->stats().running, 0u);
  EXPECT_GE(server_->metrics().cut_short(), 1u);
}

TEST_F(ServeLimitsTest, RepliesAreCountedByStatus) {
  const uint64_t before_404 = server_->metrics().replies()[404];
  const uint64_t before_431 = server_->metrics().replies()[431];
  EXPECT_REPLY(Exchange("GET /nowhere HTTP/1.1\r\n\r\n"), 404);
  EXPECT_REPLY(Exchange("GET /health HTTP/1.1\r\nX: " + std::string(9000, 'x') + "\r\n\r\n"), 431);
  // A reply is counted once written: wait for the count before asking for it.
  for (int i = 0; i < 100 && server_->metrics().replies()[404] == before_404; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const auto m = Exchange("GET /metrics HTTP/1.1\r\n\r\n");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(
      m.body.find("qwen3:http_requests_total{code=\"404\"} " + std::to_string(before_404 + 1)),
      std::string::npos)
      << m.body;
  EXPECT_NE(
      m.body.find("qwen3:http_requests_total{code=\"431\"} " + std::to_string(before_431 + 1)),
      std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("qwen3:request_submitted_total"), std::string::npos);
}

TEST(ServeLimitFlagsTest, BadValuesAreOneLineErrors) {
  // A case that failed to fail would serve: `timeout` ends it, and its pool is small.
  const std::string serve = "serve --model '" + kModel + "' --port 0 --kv-blocks 16 ";
  const struct {
    std::string flags, message;
  } cases[] = {
      {"--max-header-bytes 10", "--max-header-bytes 10: expected at least 1024"},
      {"--max-body-bytes 100", "--max-body-bytes 100: expected at least 1024"},
      {"--read-timeout 0", "--read-timeout 0: expected seconds in (0, 86400]"},
      {"--idle-timeout -1", "--idle-timeout -1: expected seconds"},
      {"--write-timeout nan", "--write-timeout nan: expected seconds"},
      {"--max-top-logprobs 21", "--max-top-logprobs 21: expected 0..20"},
      {"--max-n 0", "--max-n 0: expected at least 1"},
      {"--max-messages 0", "--max-messages 0: expected at least 1"},
      {"--max-stop-bytes 0", "--max-stop-bytes 0: expected at least 1"},
      {"--max-n -3", "--max-n"},
      {"--read-timeout soon", "--read-timeout"},
      {"--send-buffer-bytes 100",
       "--send-buffer-bytes 100: expected 0 (the kernel's autotuning) or 4096.."},
      {"--max-running -1", "--max-running"},
  };
  for (const auto& c : cases) {
    const auto r = RunTool("qwen3", serve + c.flags, "timeout 20");
    EXPECT_NE(r.code, 0) << c.flags;
    ASSERT_EQ(r.ErrLines().size(), 1u) << c.flags << ":\n" << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

// VmHWM (peak resident memory) of this process, in KiB.
size_t PeakKb() {
  std::ifstream in("/proc/self/status");
  for (std::string key; in >> key;) {
    if (key == "VmHWM:") {
      size_t kb = 0;
      in >> kb;
      return kb;
    }
  }
  return 0;
}

// A model file that fails validation is refused by its headers: an Error naming the file,
// before any weight is allocated (no bad_alloc for terabytes claimed, no growth in memory).
TEST(ServeModelValidationTest, BadModelFilesAreRefusedBeforeAllocating) {
  const fs::path dir = Dir().File("bad_models");
  fs::create_directories(dir);
  const fs::path tiny_a = fs::path(QWEN3_SHARED_DIR) / "testdata/hf-qwen3/tiny-a";
  const auto hf_dir = [&](const std::string& name, const std::string& config,
                          const std::string& weights) {
    const fs::path d = dir / name;
    fs::create_directories(d);
    std::ofstream(d / "config.json") << config;
    std::ofstream(d / "model.safetensors", std::ios::binary) << weights;
    return d.string();
  };
  const std::string config = testing_cli::ReadFile((tiny_a / "config.json").string());
  const std::string weights = testing_cli::ReadFile((tiny_a / "model.safetensors").string());
  // A header that claims 2 TiB of weights in a file of a few bytes.
  std::string claim =
      R"({"model.embed_tokens.weight": {"dtype": "BF16", "shape": [1048576, 1048576], "data_offsets": [0, 2199023255552]}})";
  std::string huge;
  for (int i = 0; i < 8; ++i) huge += static_cast<char>((claim.size() >> (8 * i)) & 0xff);
  huge += claim + "abcd";
  json huge_vocab = json::parse(config);
  huge_vocab["vocab_size"] = 2147483647;  // past ValidateConfig's bound
  json big_vocab = json::parse(config);
  big_vocab["vocab_size"] = 16777216;  // within it; the logits buffer alone would be GBs
  const std::string gguf = testing_cli::ReadFile(kModel);
  const fs::path cut_gguf = dir / "cut.gguf";
  std::ofstream(cut_gguf, std::ios::binary) << gguf.substr(0, gguf.size() / 2);
  const struct {
    std::string model, part;
  } cases[] = {
      {hf_dir("huge_claim", config, huge), "truncated"},
      {hf_dir("cut", config, weights.substr(0, weights.size() / 2)), "truncated"},
      {hf_dir("huge_vocab", huge_vocab.dump(), weights), "vocab_size = 2147483647: expected at most"},
      {hf_dir("big_vocab", big_vocab.dump(), weights), "expected [16777216, 256]"},
      {cut_gguf.string(), "truncated"},
  };
  for (const auto& c : cases) {
    const size_t peak = PeakKb();
    EngineOptions eo;
    eo.model_dir = c.model;
    eo.need_tokenizer = false;
    eo.kv_blocks = 16;
    eo.block_size = 32;
    EXPECT_TRUE(ThrowsError([&] { Engine::Open(eo); }, {c.part})) << c.model;
    EXPECT_LT(PeakKb(), peak + (64 << 10)) << c.model;
  }
  // The CLI: one line after "listening", exit 2.
  const auto r = RunTool("qwen3", "serve --port 0 --model '" + cut_gguf.string() + "'");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.ErrLines().size(), 2u) << r.err;
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace qwen3
