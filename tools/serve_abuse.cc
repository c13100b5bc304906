#include "tools/serve_abuse.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "serve/engine.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "tools/abuse_actions.h"

// Exported by the ASan and TSan runtimes (LLVM's <sanitizer/allocator_interface.h>, which GCC
// does not ship); weak, so it is null in a build without a sanitizer.
extern "C" size_t __sanitizer_get_current_allocated_bytes() __attribute__((weak));

namespace qwen3 {
namespace {

using json = nlohmann::json;

// Memory in use, in KiB. Normally VmRSS after malloc_trim (not what the allocator keeps in free
// lists). Under ASan, RSS also holds the quarantine of freed blocks (256 MiB by default), which
// fills during any long run, and under TSan the shadow of every page touched; there the
// sanitizer allocator's live bytes are what can show a leak.
bool SanitizerHeap() { return __sanitizer_get_current_allocated_bytes != nullptr; }
const char* MemoryMeasure() { return SanitizerHeap() ? "heap in use (sanitizer)" : "VmRSS"; }

size_t MemoryInUseKb() {
  if (SanitizerHeap()) return __sanitizer_get_current_allocated_bytes() / 1024;
  malloc_trim(0);
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      size_t kb = 0;
      in >> kb;
      return kb;
    }
    in.ignore(1 << 10, '\n');
  }
  return 0;
}

std::string Words(std::mt19937_64& rng, size_t n) {
  static const char* kWords[] = {"the",   "sea",    "was",   "calm",  "and",  "a",
                                 "ship",  "sailed", "north", "under", "grey", "sky",
                                 "while", "gulls",  "cried", "over",  "waves"};
  std::string s;
  for (size_t i = 0; i < n; ++i) s += std::string(i ? " " : "") + kWords[rng() % std::size(kWords)];
  return s;
}

// Well-formed requests with greedy or seeded sampling: their text is a function of the request.
std::vector<AbuseTemplate> Templates(uint64_t seed, AbuseTarget& t) {
  std::mt19937_64 rng(seed);
  const std::string story = Words(rng, 300);
  const auto chat = [](const std::string& body) { return AbuseTemplate{true, body, {}}; };
  const auto text = [](const std::string& body) { return AbuseTemplate{false, body, {}}; };
  std::vector<AbuseTemplate> v = {
      chat(
          R"({"messages": [{"role": "user", "content": "Tell me about the sea."}], "max_tokens": 16,
               "temperature": 0, "chat_template_kwargs": {"enable_thinking": false}})"),
      chat(R"({"messages": [{"role": "system", "content": "You are terse."},
                            {"role": "user", "content": "Why is the sky blue?"}],
               "max_tokens": 24, "temperature": 0.8, "top_p": 0.9, "seed": 7})"),
      chat(R"({"messages": [{"role": "user", "content": "Name two colours."}], "max_tokens": 10,
               "temperature": 1.0, "seed": 11, "n": 2})"),
      chat(
          R"({"messages": [{"role": "user", "content": "Count."}], "max_tokens": 6, "temperature": 0,
               "logprobs": true, "top_logprobs": 3})"),
      text(R"({"prompt": "Once upon a time", "max_tokens": 32, "temperature": 0})"),
      text(
          R"({"prompt": [[100, 200, 300], [400, 500]], "max_tokens": 12, "temperature": 0.7, "seed": 5})"),
      text(json{{"prompt", story}, {"max_tokens", 12}, {"temperature", 0}}.dump()),
      text(json{
          {"prompt", story + " and then"}, {"max_tokens", 8}, {"temperature", 0.5}, {"seed", 3}}
               .dump()),
      text(
          R"({"prompt": "The quick brown fox", "max_tokens": 40, "temperature": 0, "stop": ["e", "zz"]})"),
      chat(R"({"messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 256,
               "temperature": 0, "ignore_eos": true})"),
  };
  t.long_prompt = 6;
  t.long_output = 9;
  return v;
}

bool FetchReference(const AbuseTarget& t, AbuseTally& tally, AbuseTemplate& tp, std::string& why) {
  RawHttp conn;
  RawHttp::Reply reply;
  const auto deadline = Deadline(t.op_timeout_s);
  if (!conn.Connect(t.port, deadline) ||
      conn.Send(PostRequest(tp.Path(), tp.body), deadline) != RawHttp::kOk ||
      conn.ReadReply(reply, deadline) != RawHttp::kOk) {
    why = "no reply";
    return false;
  }
  tally.Seen(reply.head.status);
  if (reply.head.status != 200) {
    why = "HTTP " + std::to_string(reply.head.status) + " " + reply.body;
    return false;
  }
  return ParseCompletion(tp.chat, false, reply.body, tp.reference, why);
}

// `count` actions on `concurrency` client threads (fewer if duration_s runs out); how many ran.
size_t RunClients(const AbuseTarget& t, AbuseTally& tally, size_t count, size_t concurrency,
                  double duration_s, uint64_t seed) {
  std::atomic<size_t> next{0}, done{0};
  const auto end = duration_s > 0 ? Deadline(duration_s) : AbuseClock::time_point::max();
  std::vector<std::thread> threads;
  for (size_t k = 0; k < concurrency; ++k) {
    threads.emplace_back([&] {
      AbuseClient client;
      for (;;) {
        const size_t i = next.fetch_add(1);
        if (i >= count || AbuseClock::now() >= end) break;
        std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + i);
        RunAction(t, tally, client, PickAction(rng), rng);
        done.fetch_add(1);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  return done.load();
}

// Waits (up to 30 s) until nothing runs or waits and every KV block is free (or cached).
bool AwaitIdle(const Engine& engine, std::string& why) {
  EngineStats s;
  for (int i = 0; i < 1500; ++i) {
    s = engine.stats();
    if (s.running == 0 && s.waiting == 0 && s.blocks_free == s.blocks_total) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  why = std::to_string(s.running) + " running, " + std::to_string(s.waiting) + " waiting, " +
        std::to_string(s.blocks_total - s.blocks_free) + " of " + std::to_string(s.blocks_total) +
        " KV blocks held, 30 s after the last client";
  return false;
}

// /metrics over HTTP: its request counts equal the server's (taken before the request).
// Empty, or what is wrong.
std::string CheckPrometheus(const AbuseTarget& t, const HttpServer& server, AbuseTally& tally) {
  const std::map<int, uint64_t> before = server.metrics().replies();
  RawHttp conn;
  RawHttp::Reply reply;
  const auto deadline = Deadline(t.op_timeout_s);
  if (!conn.Connect(t.port, deadline) ||
      conn.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", deadline) != RawHttp::kOk ||
      conn.ReadReply(reply, deadline) != RawHttp::kOk || reply.head.status != 200) {
    return "GET /metrics: no 200 reply";
  }
  tally.Seen(200);
  std::map<int, uint64_t> parsed;
  std::istringstream in(reply.body);
  const std::string prefix = "qwen3:http_requests_total{code=\"";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    const int code = std::atoi(line.c_str() + prefix.size());
    parsed[code] = std::stoull(line.substr(line.rfind(' ') + 1));
  }
  return parsed == before ? ""
                          : "/metrics' qwen3:http_requests_total differs from the server's counts";
}

// SIGTERM's drain while long streams run: each ends whole (its idle text) or cancelled (a
// prefix of it, finish_reason "abort"); requests sent meanwhile get 503.
void DrainUnderLoad(HttpServer& server, const AbuseTarget& t, AbuseTally& tally, size_t streams,
                    double grace_s) {
  const AbuseTemplate& tp = t.templates[t.long_output];
  std::atomic<size_t> started{0};
  std::vector<std::thread> threads;
  for (size_t i = 0; i < streams; ++i) {
    threads.emplace_back([&] {
      RawHttp conn;
      const auto deadline = Deadline(t.op_timeout_s);
      RawHttp::Head head;
      if (!conn.Connect(t.port, deadline) ||
          conn.Send(PostRequest(tp.Path(), Streamed(tp.body, false)), deadline) != RawHttp::kOk ||
          conn.ReadHead(head, deadline) != RawHttp::kOk) {
        started.fetch_add(1);
        return tally.Fail("drain: a stream got no reply");
      }
      tally.Seen(head.status);
      started.fetch_add(1);
      std::string body, piece;
      RawHttp::Result r;
      while ((r = conn.ReadPiece(head, piece, deadline)) == RawHttp::kOk && !piece.empty())
        body += piece;
      if (r != RawHttp::kOk) {
        return tally.Fail(std::string("drain: a stream was cut off (") + ToString(r) + ") after " +
                          std::to_string(body.size()) + " bytes");
      }
      if (head.status == 503) return tally.Outcome("503");
      std::vector<ChoiceText> got;
      std::string why;
      if (head.status != 200 || !ParseCompletion(true, true, body, got, why) || got.size() != 1) {
        return tally.Fail("drain: HTTP " + std::to_string(head.status) + " " + why);
      }
      const ChoiceText& ref = tp.reference[0];
      const auto prefix = [](const std::string& a, const std::string& b) {
        return b.compare(0, a.size(), a) == 0;
      };
      if (got[0] == ref) return tally.Outcome("ok");
      if (got[0].finish == "abort" && prefix(got[0].reasoning, ref.reasoning) &&
          prefix(got[0].content, ref.content)) {
        return tally.Outcome("cancelled by the drain");
      }
      tally.Fail("drain: a stream's text is not its idle text nor a prefix of it");
    });
  }
  for (int i = 0; i < 500 && started.load() < streams; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::thread drain([&] { server.Drain(grace_s); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      RawHttp conn;
      RawHttp::Reply reply;
      const auto deadline = Deadline(t.op_timeout_s);
      if (!conn.Connect(t.port, deadline)) return tally.Outcome("refused after the stop");
      const RawHttp::Result s = conn.Send(PostRequest(tp.Path(), t.templates[0].body), deadline);
      const RawHttp::Result r = s == RawHttp::kOk ? conn.ReadReply(reply, deadline) : s;
      if (r == RawHttp::kClosed && conn.received() == 0) return tally.Outcome("closed by the stop");
      if (r != RawHttp::kOk) return tally.Fail("drain: a late request got no reply");
      tally.Seen(reply.head.status);
      if (reply.head.status != 503 || !IsApiError(reply.body)) {
        return tally.Fail("drain: a late request got HTTP " + std::to_string(reply.head.status));
      }
      tally.Outcome("503");
    });
  }
  drain.join();
  for (std::thread& th : threads) th.join();
}

void Log(const AbuseOptions& o, const std::string& line) {
  if (o.log) *o.log << "abuse: " << line << std::endl;
}

}  // namespace

AbuseReport RunAbuse(const AbuseOptions& o) {
  EngineOptions eo;
  eo.model_dir = o.model;
  eo.threads = o.threads;
  eo.kv_blocks = o.kv_blocks;
  eo.block_size = o.block_size;
  eo.max_seq = o.max_seq;
  eo.max_running = o.max_running;
  eo.max_queue = o.max_queue;
  eo.max_batch_tokens = std::max<size_t>(64, o.max_running);
  std::unique_ptr<Engine> engine = Engine::Open(eo);
  ServerOptions so;
  so.port = 0;
  so.model_name = "abuse";
  so.http_threads = o.http_threads;
  so.http = o.http;
  so.api.max_messages = 64;
  so.api.max_n = 4;
  HttpServer server(so);
  AbuseTarget t;
  t.port = server.Bind();
  server.Start();
  server.SetEngine(engine.get());
  t.op_timeout_s = o.op_timeout_s;
  t.http = o.http;
  t.max_context = std::min(o.max_seq, o.kv_blocks * o.block_size);
  t.templates = Templates(o.seed, t);

  AbuseTally tally;
  AbuseReport rep;
  std::vector<std::string>& checks = rep.failures;  // failed checks; lost requests come after
  for (AbuseTemplate& tp : t.templates) {
    std::string why;
    if (!FetchReference(t, tally, tp, why))
      checks.push_back("the idle reply of " + tp.body.substr(0, 80) + ": " + why);
  }
  if (!checks.empty()) return rep;
  Log(o,
      "references of " + std::to_string(t.templates.size()) + " requests taken on the idle server");
  std::string why;
  const size_t warm = std::max<size_t>(16 * o.concurrency, o.requests / 10);
  rep.actions += RunClients(t, tally, warm, o.concurrency, 0, o.seed + 1);
  if (!AwaitIdle(*engine, why)) checks.push_back("after warm-up: " + why);
  rep.memory_warm_kb = MemoryInUseKb();
  Log(o, std::to_string(warm) + " warm-up actions; " + std::string(MemoryMeasure()) + " " +
             std::to_string(rep.memory_warm_kb) + " KiB");

  const auto t0 = AbuseClock::now();
  rep.actions += RunClients(t, tally, o.requests, o.concurrency, o.duration_s, o.seed + 2);
  rep.seconds = std::chrono::duration<double>(AbuseClock::now() - t0).count();
  if (!AwaitIdle(*engine, why)) checks.push_back("after the run: " + why);
  if (const std::string e = CheckPrometheus(t, server, tally); !e.empty()) checks.push_back(e);
  rep.memory_after_kb = MemoryInUseKb();
  Log(o, "main phase done in " + std::to_string(rep.seconds) + " s; " +
             std::string(MemoryMeasure()) + " " + std::to_string(rep.memory_after_kb) + " KiB");

  DrainUnderLoad(server, t, tally, o.max_running + o.max_queue, o.grace_s);
  rep.memory_end_kb = MemoryInUseKb();

  rep.outcomes = tally.outcomes();
  rep.lost = tally.lost();
  for (const std::string& f : tally.failures()) checks.push_back("lost: " + f);
  rep.server_replies = server.metrics().replies();
  rep.submitted = engine->metrics().submitted();
  rep.finished = engine->metrics().finished();
  // The counts add up: every request the server got was answered once, every sequence ended.
  const std::map<int, uint64_t> seen = tally.seen();
  uint64_t seen_total = 0, server_total = 0, finished_total = 0;
  for (const auto& [code, n] : seen) {
    seen_total += n;
    const auto it = rep.server_replies.find(code);
    if (it == rep.server_replies.end() || it->second < n) {
      rep.failures.push_back("clients saw " + std::to_string(n) + " replies of HTTP " +
                             std::to_string(code) + ", the server counts " +
                             std::to_string(it == rep.server_replies.end() ? 0 : it->second));
    }
  }
  for (const auto& [code, n] : rep.server_replies) server_total += n;
  if (server_total != seen_total + tally.unseen()) {
    rep.failures.push_back("the server counts " + std::to_string(server_total) +
                           " replies; clients saw " + std::to_string(seen_total) + " and sent " +
                           std::to_string(tally.unseen()) + " more they did not wait for");
  }
  for (const auto& [reason, n] : rep.finished) finished_total += n;
  if (finished_total != rep.submitted) {
    rep.failures.push_back(std::to_string(rep.submitted) + " sequences submitted, " +
                           std::to_string(finished_total) + " finished");
  }
  if (std::abs(rep.memory_growth()) > 0.10) {
    rep.failures.push_back(std::string(MemoryMeasure()) + " after the run " +
                           std::to_string(rep.memory_after_kb) + " KiB vs " +
                           std::to_string(rep.memory_warm_kb) +
                           " KiB after warm-up: more than 10% apart");
  }
  return rep;
}

double AbuseReport::memory_growth() const {
  return static_cast<double>(memory_after_kb) /
             static_cast<double>(std::max<size_t>(1, memory_warm_kb)) -
         1;
}

std::string AbuseReport::Summary() const {
  std::ostringstream s;
  const auto mib = [](size_t kb) {
    return std::to_string(kb / 1024) + "." + std::to_string(kb % 1024 * 10 / 1024) + " MiB";
  };
  s << "client actions: " << actions << " (main phase " << seconds << " s)\n";
  s << "outcomes:\n";
  for (const auto& [kind, n] : outcomes) s << "  " << kind << ": " << n << "\n";
  s << "lost: " << lost << "\n";
  s << "server replies by status:";
  for (const auto& [code, n] : server_replies) s << " " << code << "=" << n;
  s << "\nsequences: " << submitted << " submitted, finished:";
  for (const auto& [reason, n] : finished) s << " " << reason << "=" << n;
  const double growth = 100.0 * memory_growth();
  char pct[32];
  std::snprintf(pct, sizeof(pct), "%+.1f%%", growth);
  s << "\n"
    << MemoryMeasure() << ": after warm-up " << mib(memory_warm_kb) << ", after the run "
    << mib(memory_after_kb) << " (" << pct << "), after the drain " << mib(memory_end_kb) << "\n";
  for (const std::string& f : failures) s << "FAILED: " << f << "\n";
  s << (failures.empty() ? "PASS" : "FAIL") << "\n";
  return s.str();
}

}  // namespace qwen3
