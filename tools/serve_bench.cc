// qwen3-serve-bench: a load generator for an OpenAI-compatible completions server (`qwen3 serve`,
// also vLLM or llama-server), measured from the client like `vllm bench serve`. Prompts are random
// token ids (distinct per request, so no prefix-cache hits unless --shared-prefix), sent as
// POST /v1/completions with stream, ignore_eos and temperature 0; one table row per run.
//
//   qwen3-serve-bench --port 8000 --concurrency 1,4,16,32 --input-len 256 --output-len 128
//   qwen3-serve-bench --port 8000 --request-rate 2 --max-concurrency 16 --num-prompts 200
//                     --json rate2.json   (one command line)
//
// Per request, from the client (steady clock, start = just before the request is sent):
//   TTFT  time to the first SSE chunk whose choices[0].text is non-empty;
//   ITL   every gap between consecutive non-empty text chunks (pooled over requests);
//   TPOT  (e2e - TTFT) / (output_tokens - 1), requests with at least 2 output tokens;
//   e2e   time to "data: [DONE]";
//   output_tokens from the usage chunk (stream_options.include_usage), else the text chunks.
// A request fails, and is left out of the latency statistics, on HTTP status != 200, a stream
// without [DONE], an error event in the stream, or --timeout; failures are counted by kind. A
// request whose reused keep-alive connection the server closed before any byte of a response
// (idle connections are closed at will: llama-server does) is sent once more on a fresh one,
// timed from its first try and counted as "retried", not failed.
// Percentiles interpolate linearly (numpy's default). Duration: from the first request sent to
// the last one finished; output tok/s and req/s count completed requests only.
//
// --concurrency C keeps C requests in flight (C workers, each one keep-alive connection).
// --request-rate R sends at Poisson arrival times (exponential gaps, mean 1/R s; "inf": all at
// once) with at most --max-concurrency in flight; a request that arrives while all are busy waits
// and its latencies start when it is sent (as vLLM's semaphore). Each run uses fresh prompts.
// Exit status: 0; 1 when some run completed no request; 2 on bad flags, an unreachable server or
// another error (one line on stderr).
//
// Uses only the host given by --host (default loopback). cpp-httplib 0.11.4 notes: Client is one
// connection (keep-alive, reconnects when the server closed it); its read timeout bounds each
// recv, not a request, so a watchdog thread calls Client::stop() (shutdown(2), the one call that
// is safe while another thread is inside send()) past each request's deadline. It does not set
// MSG_NOSIGNAL: SIGPIPE is ignored.
#include <httplib.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/rng.h"
#include "tools/serve_bench_stats.h"
#include "tools/tool_main.h"

namespace qwen3 {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr size_t kMaxInFlight = 1024;            // one thread and one connection each
constexpr size_t kMaxPrompts = size_t{1} << 20;  // per run
constexpr double kMaxRate = 1e5;                 // requests/s
constexpr double kMaxItlSamples = 1 << 28;       // 2 GiB of doubles
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Options {
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  std::string model;  // empty: the first id of GET /v1/models
  std::string concurrency = "1";
  std::string request_rate;    // non-empty: rate mode
  size_t max_concurrency = 0;  // 0: --num-prompts, at most kMaxInFlight
  size_t num_prompts = 0;      // 0: default per run
  int64_t input_len = 256, output_len = 128;
  double range_ratio = 0;
  int64_t vocab_lo = 1000, vocab_hi = 30000;
  uint64_t seed = 0;
  size_t warmup = 0;
  int64_t shared_prefix = 0;
  std::string json_path;
  double timeout_s = 600;

  // Derived by Validate.
  std::vector<size_t> concurrencies;
  std::vector<double> rates;
  int64_t input_lo = 0, input_hi = 0, output_lo = 0, output_hi = 0;
};

// One run: how many workers, at what rate (kInf: all at once), how many requests.
struct RunPlan {
  bool rate_mode = false;
  size_t workers = 1;
  double rate = kInf;
  size_t num_prompts = 0;
  uint64_t tag = 0;  // picks the run's prompts: 1 = warmup, 2 + i = run i
};

// ---- Flags ------------------------------------------------------------------------------------

std::string Num(double v) {
  if (!std::isfinite(v)) return v > 0 ? "inf" : "nan";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> parts;
  size_t begin = 0;
  for (;;) {
    const size_t comma = s.find(',', begin);
    parts.push_back(s.substr(begin, comma - begin));
    if (comma == std::string::npos) return parts;
    begin = comma + 1;
  }
}

std::vector<size_t> ParseConcurrencies(const std::string& s) {
  const std::string bad = "--concurrency '" + s +
                          "': expected a comma-separated list of integers in 1.." +
                          std::to_string(kMaxInFlight) + ", like 1,4,16,32";
  std::vector<size_t> out;
  for (const std::string& part : SplitCommas(s)) {
    size_t used = 0;
    unsigned long v = 0;
    try {
      v = std::stoul(part, &used);
    } catch (const std::exception&) {
      throw Error(bad);
    }
    if (used != part.size() || part.front() == '-' || v < 1 || v > kMaxInFlight) throw Error(bad);
    out.push_back(v);
  }
  return out;
}

std::vector<double> ParseRates(const std::string& s) {
  const std::string bad = "--request-rate '" + s +
                          "': expected a comma-separated list of requests/s in (0, 1e5] or inf, "
                          "like 0.5,1,2";
  std::vector<double> out;
  for (const std::string& part : SplitCommas(s)) {
    if (part == "inf") {
      out.push_back(kInf);
      continue;
    }
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception&) {
      throw Error(bad);
    }
    if (used != part.size() || !(v > 0) || !(v <= kMaxRate)) throw Error(bad);
    out.push_back(v);
  }
  return out;
}

void Validate(Options& o, bool num_prompts_given, bool concurrency_given,
              bool max_concurrency_given) {
  if (o.host.empty()) throw Error("--host '': expected a host name or address");
  if (o.port < 1 || o.port > 65535) {
    throw Error("--port " + std::to_string(o.port) + ": expected 1..65535");
  }
  if (!o.request_rate.empty()) {
    if (concurrency_given) {
      throw Error("--concurrency " + o.concurrency + " with --request-rate " + o.request_rate +
                  ": expected one of the two (cap a rate run with --max-concurrency)");
    }
    o.rates = ParseRates(o.request_rate);
  } else {
    if (max_concurrency_given) {
      throw Error("--max-concurrency " + std::to_string(o.max_concurrency) +
                  ": expected only with --request-rate (--concurrency fixes the number in "
                  "flight)");
    }
    o.concurrencies = ParseConcurrencies(o.concurrency);
  }
  if (max_concurrency_given && (o.max_concurrency < 1 || o.max_concurrency > kMaxInFlight)) {
    throw Error("--max-concurrency " + std::to_string(o.max_concurrency) + ": expected 1.." +
                std::to_string(kMaxInFlight));
  }
  if (num_prompts_given && (o.num_prompts < 1 || o.num_prompts > kMaxPrompts)) {
    throw Error("--num-prompts " + std::to_string(o.num_prompts) + ": expected 1.." +
                std::to_string(kMaxPrompts));
  }
  if (o.input_len < 1 || o.input_len > (int64_t{1} << 24)) {
    throw Error("--input-len " + std::to_string(o.input_len) + ": expected 1..16777216 tokens");
  }
  if (o.output_len < 1 || o.output_len > (int64_t{1} << 24)) {
    throw Error("--output-len " + std::to_string(o.output_len) + ": expected 1..16777216 tokens");
  }
  if (!(o.range_ratio >= 0 && o.range_ratio < 1)) {
    throw Error("--range-ratio " + Num(o.range_ratio) + ": expected 0 <= r < 1");
  }
  // As vLLM's random dataset: integers uniform in [int(L(1-r)), int(L(1+r))].
  const auto lo = [&](int64_t n) {
    return static_cast<int64_t>(std::floor(static_cast<double>(n) * (1 - o.range_ratio)));
  };
  const auto hi = [&](int64_t n) {
    return static_cast<int64_t>(std::floor(static_cast<double>(n) * (1 + o.range_ratio)));
  };
  o.input_lo = lo(o.input_len), o.input_hi = hi(o.input_len);
  o.output_lo = lo(o.output_len), o.output_hi = hi(o.output_len);
  if (o.input_lo < 1 || o.output_lo < 1) {
    throw Error("--range-ratio " + Num(o.range_ratio) + " gives " +
                (o.input_lo < 1 ? "input" : "output") +
                " lengths down to 0: expected a smaller ratio or longer lengths");
  }
  if (o.vocab_lo < 0 || o.vocab_hi < o.vocab_lo || o.vocab_hi > INT32_MAX) {
    throw Error("--vocab-lo " + std::to_string(o.vocab_lo) + " --vocab-hi " +
                std::to_string(o.vocab_hi) + ": expected 0 <= lo <= hi < 2^31 (token ids)");
  }
  if (o.shared_prefix < 0 || o.shared_prefix > o.input_lo) {
    throw Error("--shared-prefix " + std::to_string(o.shared_prefix) + ": expected 0.." +
                std::to_string(o.input_lo) + " (the shortest prompt, from --input-len and " +
                "--range-ratio)");
  }
  if (!(o.timeout_s > 0 && o.timeout_s <= 86400)) {
    throw Error("--timeout " + Num(o.timeout_s) + ": expected 0 < s <= 86400");
  }
  if (o.warmup > (size_t{1} << 20)) {
    throw Error("--warmup " + std::to_string(o.warmup) + ": expected at most 1048576");
  }
}

// Default requests per run: 4 per worker, or about 10 s of arrivals; at least 8.
size_t DefaultNumPrompts(const Options& o, size_t concurrency, double rate) {
  if (o.num_prompts) return o.num_prompts;
  if (std::isfinite(rate)) {
    return std::clamp<size_t>(static_cast<size_t>(std::ceil(10 * rate)), 8, kMaxPrompts);
  }
  return std::max<size_t>(8, 4 * concurrency);
}

std::vector<RunPlan> MakePlans(const Options& o) {
  std::vector<RunPlan> plans;
  for (const size_t c : o.concurrencies) {
    RunPlan p;
    p.num_prompts = DefaultNumPrompts(o, c, kInf);
    p.workers = std::min(c, p.num_prompts);
    plans.push_back(p);
  }
  for (const double r : o.rates) {
    RunPlan p;
    p.rate_mode = true;
    p.rate = r;
    p.num_prompts = DefaultNumPrompts(o, o.max_concurrency ? o.max_concurrency : 16, r);
    p.workers = std::min(o.max_concurrency ? o.max_concurrency : kMaxInFlight, p.num_prompts);
    plans.push_back(p);
  }
  for (size_t i = 0; i < plans.size(); ++i) {
    plans[i].tag = 2 + i;
    // Every inter-token gap is kept (8 bytes) for exact percentiles: bound the memory.
    const double gaps =
        static_cast<double>(plans[i].num_prompts) * static_cast<double>(o.output_hi);
    if (gaps > kMaxItlSamples) {
      throw Error("--num-prompts " + std::to_string(plans[i].num_prompts) + " x --output-len " +
                  std::to_string(o.output_hi) + " inter-token gaps: expected at most " +
                  std::to_string(static_cast<int64_t>(kMaxItlSamples)) +
                  " per run (fewer prompts or shorter outputs)");
    }
  }
  return plans;
}

// ---- Requests ---------------------------------------------------------------------------------

// Request i of a run. Counter-based, so it is the same whatever the thread count; its body is
// made by the worker just before sending (memory stays O(in flight), not O(--num-prompts)).
// Streams: tag·2^33 + i for request i's lengths and tokens, tag·2^33 + 2^32 + i for arrival
// gaps; tag 0 holds the shared prefix.
struct RequestSpec {
  uint64_t tag = 0, index = 0;
  int64_t input_len = 0, output_len = 0;
};

RequestSpec MakeRequestSpec(const Options& o, uint64_t tag, uint64_t i) {
  const CounterRng rng(o.seed, (tag << 33) + i);
  return {tag, i, rng.Int(0, o.input_lo, o.input_hi), rng.Int(1, o.output_lo, o.output_hi)};
}

std::string RequestBody(const Options& o, const std::string& model, const RequestSpec& s) {
  const CounterRng rng(o.seed, (s.tag << 33) + s.index);
  const CounterRng prefix_rng(o.seed, 0);
  std::vector<int64_t> prompt(static_cast<size_t>(s.input_len));
  for (int64_t k = 0; k < s.input_len; ++k) {
    prompt[static_cast<size_t>(k)] =
        k < o.shared_prefix ? prefix_rng.Int(static_cast<uint64_t>(k), o.vocab_lo, o.vocab_hi)
                            : rng.Int(static_cast<uint64_t>(2 + k), o.vocab_lo, o.vocab_hi);
  }
  const json body = {
      {"model", model},
      {"prompt", prompt},
      {"max_tokens", s.output_len},
      {"temperature", 0},
      {"ignore_eos", true},
      {"stream", true},
      {"stream_options", {{"include_usage", true}}},
  };
  return body.dump();
}

// Seconds from the run's start at which request i is sent (all 0 for an infinite rate).
std::vector<double> ArrivalOffsets(const Options& o, const RunPlan& plan) {
  std::vector<double> t(plan.num_prompts, 0.0);
  if (!std::isfinite(plan.rate)) return t;
  const CounterRng rng(o.seed, (plan.tag << 33) + (uint64_t{1} << 32));
  double now = 0;
  for (size_t i = 1; i < t.size(); ++i) {
    // Exponential gap by inversion; 1 - u is in (0, 1].
    now += -std::log(1.0 - static_cast<double>(rng.Uniform(i))) / plan.rate;
    t[i] = now;
  }
  return t;
}

// ---- One request ------------------------------------------------------------------------------

// A worker's connection and its current deadline, which the watchdog enforces.
struct WorkerSlot {
  explicit WorkerSlot(const Options& o) : cli(o.host, o.port) {
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);
    // Connect is done under the client's socket mutex, which stop() also takes: keep it short.
    const double connect_s = std::min(o.timeout_s, 10.0);
    cli.set_connection_timeout(std::chrono::duration<double>(connect_s));
    cli.set_read_timeout(std::chrono::duration<double>(o.timeout_s));
    cli.set_write_timeout(std::chrono::duration<double>(o.timeout_s));
  }

  httplib::Client cli;
  std::mutex mu;
  bool active = false;  // inside send(), before the deadline was handled
  bool fired = false;   // the watchdog stopped this request
  Clock::time_point deadline;
  bool reused = false;  // the last request left the connection open (keep-alive): the next reuses it
};

// Calls Client::stop() on every slot past its deadline, every 20 ms, until destroyed. A slot
// stays active until its worker sees send() return, so a stop() that lands before the socket is
// connected is repeated on the next tick.
class Watchdog {
 public:
  explicit Watchdog(std::vector<std::unique_ptr<WorkerSlot>>& slots)
      : slots_(slots), thread_([this] { Loop(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return done_; })) {
      const Clock::time_point now = Clock::now();
      for (auto& slot : slots_) {
        std::lock_guard<std::mutex> slot_lock(slot->mu);
        if (slot->active && now >= slot->deadline) {
          slot->fired = true;
          slot->cli.stop();
        }
      }
    }
  }

  std::vector<std::unique_ptr<WorkerSlot>>& slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

struct RequestResult {
  std::string error;   // empty: completed; else the failure kind, e.g. "http_503"
  std::string detail;  // what the server or the client said
  double ttft_s = 0, e2e_s = 0;
  std::vector<double> itl_s;
  int64_t output_tokens = 0;
  int64_t prompt_tokens = 0;  // from usage; else the prompt sent
  bool usage = false;         // output_tokens came from the usage chunk
  bool retried = false;       // sent again on a fresh connection (DoRequest)
};

std::string Excerpt(const std::string& s, size_t max = 200) {
  std::string out = s.substr(0, max);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s.size() > max ? out + "..." : out;
}

// The message of an OpenAI-style error body, else the body itself.
std::string ErrorMessage(const std::string& body) {
  const json j = json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error")) {
    const json& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) {
      return e["message"].get<std::string>();
    }
    if (e.is_string()) return e.get<std::string>();
  }
  return Excerpt(body);
}

// One try of a request. stale: it failed on a reused keep-alive connection before any byte of a
// response (the server closed the idle connection as the request went out): worth one retry.
RequestResult Attempt(WorkerSlot& slot, const RequestSpec& spec, std::string body,
                      const httplib::Headers& headers, double timeout_s, bool& stale) {
  RequestResult r;
  const bool reused = slot.reused;
  r.prompt_tokens = spec.input_len;
  int status = -1;
  std::string error_body;
  SseParser parser;
  bool done = false, bad_json = false, overflow = false;
  std::string stream_error;
  int64_t text_chunks = 0;
  Clock::time_point t0, last_text, t_done;

  const auto on_event = [&](std::string_view data, Clock::time_point now) {
    if (done) return;  // nothing counts after [DONE]
    if (data == "[DONE]") {
      done = true;
      t_done = now;
      return;
    }
    const json j = json::parse(data, nullptr, false);
    if (!j.is_object()) {
      if (!bad_json) stream_error = Excerpt(std::string(data));
      bad_json = true;
      return;
    }
    if (j.contains("error")) {
      if (stream_error.empty()) stream_error = ErrorMessage(std::string(data));
      return;
    }
    const auto choices = j.find("choices");
    if (choices != j.end() && choices->is_array() && !choices->empty()) {
      const json& c = (*choices)[0];
      const auto text = c.find("text");
      if (text != c.end() && text->is_string() && !text->get_ref<const std::string&>().empty()) {
        if (text_chunks == 0) {
          r.ttft_s = std::chrono::duration<double>(now - t0).count();
        } else {
          r.itl_s.push_back(std::chrono::duration<double>(now - last_text).count());
        }
        last_text = now;
        ++text_chunks;
      }
    }
    const auto usage = j.find("usage");
    if (usage != j.end() && usage->is_object()) {
      const auto ct = usage->find("completion_tokens");
      if (ct != usage->end() && ct->is_number_integer()) {
        r.output_tokens = ct->get<int64_t>();
        r.usage = true;
      }
      const auto pt = usage->find("prompt_tokens");
      if (pt != usage->end() && pt->is_number_integer()) r.prompt_tokens = pt->get<int64_t>();
    }
  };

  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = headers;
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  req.body = std::move(body);
  req.response_handler = [&](const httplib::Response& res) {
    status = res.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (status != 200) {
      if (error_body.size() < 4096) error_body.append(data, std::min<size_t>(n, 4096));
      return true;
    }
    const Clock::time_point now = Clock::now();
    if (!parser.Feed(std::string_view(data, n),
                     [&](std::string_view event) { on_event(event, now); })) {
      overflow = true;
      return false;
    }
    return true;
  };

  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  {
    std::lock_guard<std::mutex> lock(slot.mu);
    slot.fired = false;
    slot.active = true;
    t0 = Clock::now();
    slot.deadline =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  }
  const bool sent = slot.cli.send(req, res, err);
  const Clock::time_point t1 = Clock::now();
  bool timed_out = false;
  {
    std::lock_guard<std::mutex> lock(slot.mu);
    slot.active = false;
    timed_out = slot.fired;
  }
  slot.reused = sent;  // a failed send closed the socket

  // Classify: the first reason that applies. A stream that reached [DONE] with status 200 is
  // complete even if the connection broke before the chunked terminator.
  const bool complete = status == 200 && done && stream_error.empty() && !bad_json;
  if (complete && text_chunks > 0) {
    r.e2e_s = std::chrono::duration<double>(t_done - t0).count();
    if (!r.usage) r.output_tokens = text_chunks;
    return r;
  }
  // httplib's read timeout (also --timeout) can fire just before the watchdog does.
  const bool read_timed_out =
      !sent && err == httplib::Error::Read && t1 - t0 >= std::chrono::duration<double>(timeout_s);
  stale = reused && !sent && status == -1 && !timed_out && !read_timed_out &&
          (err == httplib::Error::Read || err == httplib::Error::Write);
  if (timed_out || read_timed_out) {
    r.error = "timeout";
    r.detail = "no [DONE] within --timeout " + Num(timeout_s) + " s";
  } else if (status != -1 && status != 200) {
    r.error = "http_" + std::to_string(status);
    r.detail = ErrorMessage(error_body);
  } else if (overflow) {
    r.error = "bad_sse";
    r.detail = "an SSE event over 16 MiB: not an event stream";
  } else if (!stream_error.empty() || bad_json) {
    r.error = bad_json ? "bad_json" : "stream_error";
    r.detail = stream_error;
  } else if (status == 200 && done) {
    r.error = "no_output";
    r.detail = "[DONE] without any non-empty choices[0].text";
  } else if (status == 200) {
    r.error = "no_done";
    r.detail = "the stream ended without data: [DONE] (" +
               httplib::to_string(sent ? httplib::Error::Success : err) + ", " +
               std::to_string(text_chunks) + " text chunks)";
  } else {
    switch (err) {
      case httplib::Error::Connection:
        r.error = "connect";
        break;
      case httplib::Error::ConnectionTimeout:
        r.error = "connect_timeout";
        break;
      case httplib::Error::Write:
        r.error = "write";
        break;
      case httplib::Error::Read:
        r.error = "read";
        break;
      default:
        r.error = "client";
        break;
    }
    r.detail = httplib::to_string(err);
  }
  return r;
}

// A request, tried again once on a fresh connection when a reused one was closed under it (as
// browsers and Go's HTTP client do): a server may close an idle keep-alive connection at any
// time, and llama-server does, so that failure is the connection's, not the server's. The
// retry is counted (RunResult::retried); its latencies start at the first try.
RequestResult DoRequest(WorkerSlot& slot, const RequestSpec& spec, const std::string& body,
                        const httplib::Headers& headers, double timeout_s) {
  bool stale = false;
  const Clock::time_point t0 = Clock::now();
  RequestResult r = Attempt(slot, spec, body, headers, timeout_s, stale);
  if (!stale) return r;
  const double lost = std::chrono::duration<double>(Clock::now() - t0).count();
  r = Attempt(slot, spec, body, headers, timeout_s, stale);
  r.retried = true;
  if (r.error.empty()) {  // the first try's time counts against the request
    r.ttft_s += lost;
    r.e2e_s += lost;
  }
  return r;
}

// ---- One run ----------------------------------------------------------------------------------

struct RunResult {
  RunPlan plan;
  size_t completed = 0, failed = 0;
  std::map<std::string, size_t> errors;
  std::map<std::string, std::string> error_examples;  // the first detail per kind
  double duration_s = 0;
  int64_t input_tokens = 0, output_tokens = 0;
  size_t output_len_mismatch = 0;  // completed with output_tokens != max_tokens
  size_t retried = 0;              // requests sent twice (DoRequest)
  LatencyStats ttft_ms, tpot_ms, itl_ms, e2e_ms;
};

// Blocking FIFO of request indices; Pop returns nullopt once closed and drained.
class IndexQueue {
 public:
  void Push(size_t i) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      q_.push_back(i);
    }
    cv_.notify_one();
  }
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
  }
  std::optional<size_t> Pop() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !q_.empty(); });
    if (q_.empty()) return std::nullopt;
    const size_t i = q_.front();
    q_.pop_front();
    return i;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<size_t> q_;
  bool closed_ = false;
};

RunResult ExecuteRun(const Options& o, const std::string& model, const RunPlan& plan,
                     const httplib::Headers& headers) {
  std::vector<RequestSpec> specs(plan.num_prompts);
  for (size_t i = 0; i < specs.size(); ++i) specs[i] = MakeRequestSpec(o, plan.tag, i);
  const std::vector<double> arrivals = ArrivalOffsets(o, plan);
  std::vector<RequestResult> results(plan.num_prompts);

  std::vector<std::unique_ptr<WorkerSlot>> slots;
  for (size_t w = 0; w < plan.workers; ++w) slots.push_back(std::make_unique<WorkerSlot>(o));
  IndexQueue queue;
  Clock::time_point start, end;
  {
    Watchdog watchdog(slots);
    std::vector<std::thread> workers;
    // A thread that cannot start (EAGAIN at high concurrency) must not leave joinable ones.
    const auto join_all = [&] {
      queue.Close();
      for (std::thread& t : workers) t.join();
    };
    try {
      for (size_t w = 0; w < plan.workers; ++w) {
        workers.emplace_back([&, w] {
          while (const std::optional<size_t> i = queue.Pop()) {
            try {
              results[*i] = DoRequest(*slots[w], specs[*i], RequestBody(o, model, specs[*i]),
                                      headers, o.timeout_s);
            } catch (const std::exception& e) {  // e.g. bad_alloc: fail this request, not all
              results[*i].error = "exception";
              results[*i].detail = e.what();
            }
          }
        });
      }
    } catch (const std::system_error& e) {
      join_all();
      throw Error("cannot start " + std::to_string(plan.workers) + " worker threads (" + e.what() +
                  "): expected a lower --concurrency or --max-concurrency");
    }
    start = Clock::now();
    for (size_t i = 0; i < plan.num_prompts; ++i) {
      if (arrivals[i] > 0) {
        std::this_thread::sleep_until(start + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(arrivals[i])));
      }
      queue.Push(i);
    }
    join_all();
    end = Clock::now();
  }
  RunResult run;
  run.plan = plan;
  run.duration_s = std::chrono::duration<double>(end - start).count();

  std::vector<double> ttft, tpot, itl, e2e;
  for (size_t i = 0; i < results.size(); ++i) {
    const RequestResult& r = results[i];
    run.retried += r.retried;
    if (!r.error.empty()) {
      ++run.failed;
      if (run.errors[r.error]++ == 0) run.error_examples[r.error] = r.detail;
      continue;
    }
    ++run.completed;
    run.input_tokens += r.prompt_tokens;
    run.output_tokens += r.output_tokens;
    if (r.output_tokens != specs[i].output_len) ++run.output_len_mismatch;
    ttft.push_back(r.ttft_s * 1e3);
    e2e.push_back(r.e2e_s * 1e3);
    if (r.output_tokens > 1) {
      tpot.push_back((r.e2e_s - r.ttft_s) * 1e3 / static_cast<double>(r.output_tokens - 1));
    }
    for (const double g : r.itl_s) itl.push_back(g * 1e3);
  }
  run.ttft_ms = SummarizeLatencies(std::move(ttft));
  run.tpot_ms = SummarizeLatencies(std::move(tpot));
  run.itl_ms = SummarizeLatencies(std::move(itl));
  run.e2e_ms = SummarizeLatencies(std::move(e2e));
  return run;
}

// ---- Output -----------------------------------------------------------------------------------

std::string Ms(const LatencyStats& s, double v) {
  if (s.count == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

void PrintHeader(bool rate_mode) {
  std::printf("%8s %6s %5s %8s %10s %7s | %8s %8s %8s | %8s | %7s %7s %7s | %8s %8s\n",
              rate_mode ? "rate" : "conc", "ok", "fail", "dur_s", "out_tok/s", "req/s", "ttft50",
              "ttft90", "ttft99", "tpot50", "itl50", "itl90", "itl99", "e2e50", "e2e99");
  std::printf("%8s %6s %5s %8s %10s %7s | %26s | %8s | %23s | %17s\n", "", "", "", "", "", "",
              "TTFT ms", "TPOT ms", "ITL ms", "e2e ms");
  std::fflush(stdout);
}

void PrintRow(const RunResult& r) {
  const std::string label = r.plan.rate_mode ? Num(r.plan.rate) : std::to_string(r.plan.workers);
  const double d = r.duration_s > 0 ? r.duration_s : 1;
  std::printf("%8s %6zu %5zu %8.2f %10.1f %7.2f | %8s %8s %8s | %8s | %7s %7s %7s | %8s %8s\n",
              label.c_str(), r.completed, r.failed, r.duration_s,
              static_cast<double>(r.output_tokens) / d, static_cast<double>(r.completed) / d,
              Ms(r.ttft_ms, r.ttft_ms.p50).c_str(), Ms(r.ttft_ms, r.ttft_ms.p90).c_str(),
              Ms(r.ttft_ms, r.ttft_ms.p99).c_str(), Ms(r.tpot_ms, r.tpot_ms.p50).c_str(),
              Ms(r.itl_ms, r.itl_ms.p50).c_str(), Ms(r.itl_ms, r.itl_ms.p90).c_str(),
              Ms(r.itl_ms, r.itl_ms.p99).c_str(), Ms(r.e2e_ms, r.e2e_ms.p50).c_str(),
              Ms(r.e2e_ms, r.e2e_ms.p99).c_str());
  std::fflush(stdout);
  for (const auto& [kind, count] : r.errors) {
    std::fprintf(stderr, "  failed: %zu x %s (first: %s)\n", count, kind.c_str(),
                 r.error_examples.at(kind).c_str());
  }
  if (r.retried) {
    std::fprintf(stderr,
                 "  note: %zu request(s) sent again on a fresh connection (the reused keep-alive "
                 "connection closed before any response)\n",
                 r.retried);
  }
  if (r.output_len_mismatch) {
    std::fprintf(stderr,
                 "  note: %zu completed request(s) returned a token count other than max_tokens "
                 "(ignore_eos not honoured?)\n",
                 r.output_len_mismatch);
  }
}

json StatsJson(const LatencyStats& s) {
  if (s.count == 0)
    return {{"mean", nullptr}, {"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr}, {"count", 0}};
  return {{"mean", s.mean}, {"p50", s.p50}, {"p90", s.p90}, {"p99", s.p99}, {"count", s.count}};
}

json RunJson(const Options& o, const RunResult& r) {
  json j;
  if (r.plan.rate_mode) {
    j["request_rate"] = std::isfinite(r.plan.rate) ? json(r.plan.rate) : json("inf");
    j["max_concurrency"] = r.plan.workers;
  } else {
    j["concurrency"] = r.plan.workers;
  }
  const double d = r.duration_s > 0 ? r.duration_s : 1;
  j["num_prompts"] = r.plan.num_prompts;
  j["completed"] = r.completed;
  j["failed"] = r.failed;
  j["errors"] = r.errors;
  j["error_examples"] = r.error_examples;
  j["duration_s"] = r.duration_s;
  j["input_tokens"] = r.input_tokens;
  j["output_tokens"] = r.output_tokens;
  j["output_tok_s"] = static_cast<double>(r.output_tokens) / d;
  j["total_tok_s"] = static_cast<double>(r.input_tokens + r.output_tokens) / d;
  j["req_s"] = static_cast<double>(r.completed) / d;
  j["output_len_mismatch"] = r.output_len_mismatch;
  j["retried"] = r.retried;
  j["ttft_ms"] = StatsJson(r.ttft_ms);
  j["tpot_ms"] = StatsJson(r.tpot_ms);
  j["itl_ms"] = StatsJson(r.itl_ms);
  j["e2e_ms"] = StatsJson(r.e2e_ms);
  j["input_len"] = o.input_len;
  j["output_len"] = o.output_len;
  j["range_ratio"] = o.range_ratio;
  j["shared_prefix"] = o.shared_prefix;
  j["seed"] = o.seed;
  return j;
}

// ---- Server -----------------------------------------------------------------------------------

// Probes GET /v1/models (so an unreachable server fails fast) and returns the model to use.
std::string ResolveModel(const Options& o, const httplib::Headers& headers) {
  httplib::Client cli(o.host, o.port);
  const auto t = std::chrono::duration<double>(std::min(o.timeout_s, 10.0));
  cli.set_connection_timeout(t);
  cli.set_read_timeout(t);
  cli.set_write_timeout(t);
  const std::string where = "http://" + o.host + ":" + std::to_string(o.port);
  const httplib::Result res = cli.Get("/v1/models", headers);
  if (!res && res.error() == httplib::Error::Read) {
    throw Error(where + " did not answer GET /v1/models within " +
                Num(std::min(o.timeout_s, 10.0)) + " s: expected a responsive server at --host " +
                o.host + " --port " + std::to_string(o.port));
  }
  if (!res) {
    throw Error("cannot reach " + where + " (GET /v1/models: " + httplib::to_string(res.error()) +
                "): expected a running server at --host " + o.host + " --port " +
                std::to_string(o.port));
  }
  if (res->status == 401 || res->status == 403) {
    throw Error(where + " rejected the request with HTTP " + std::to_string(res->status) +
                (o.api_key.empty() ? ": pass --api-key" : ": check --api-key"));
  }
  if (!o.model.empty()) return o.model;
  if (res->status != 200) {
    throw Error("GET " + where + "/v1/models returned HTTP " + std::to_string(res->status) +
                ": pass --model NAME");
  }
  const json j = json::parse(res->body, nullptr, false);
  if (j.is_object() && j.contains("data") && j["data"].is_array() && !j["data"].empty() &&
      j["data"][0].is_object() && j["data"][0].contains("id") && j["data"][0]["id"].is_string()) {
    return j["data"][0]["id"].get<std::string>();
  }
  throw Error("GET " + where + "/v1/models: expected {\"data\": [{\"id\": ...}]}, got '" +
              Excerpt(res->body) + "': pass --model NAME");
}

int Main(int argc, char** argv) {
  Options o;
  CLI::App app{"qwen3-serve-bench: load generator for an OpenAI-compatible /v1/completions server"};
  app.add_option("--host", o.host, "server host (default 127.0.0.1)");
  app.add_option("--port", o.port, "server port (default 8000)");
  app.add_option("--api-key", o.api_key, "sent as Authorization: Bearer KEY");
  app.add_option("--model", o.model, "model name (default: the first id of GET /v1/models)");
  CLI::Option* conc =
      app.add_option("--concurrency", o.concurrency,
                     "requests in flight, a list: one run per value (default 1), e.g. 1,4,16,32");
  app.add_option("--request-rate", o.request_rate,
                 "instead of --concurrency: Poisson arrivals, requests/s, a list (or inf)");
  CLI::Option* maxc = app.add_option(
      "--max-concurrency", o.max_concurrency,
      "with --request-rate: at most this many in flight (default --num-prompts, <= 1024)");
  CLI::Option* nump =
      app.add_option("--num-prompts", o.num_prompts,
                     "requests per run (default max(8, 4 x concurrency), or max(8, 10 s x rate))");
  app.add_option("--input-len", o.input_len, "prompt tokens (default 256)");
  app.add_option("--output-len", o.output_len, "max_tokens, with ignore_eos (default 128)");
  app.add_option("--range-ratio", o.range_ratio,
                 "lengths uniform in [L(1-r), L(1+r)] (default 0: fixed)");
  app.add_option("--vocab-lo", o.vocab_lo, "lowest random token id (default 1000)");
  app.add_option("--vocab-hi", o.vocab_hi, "highest random token id (default 30000)");
  app.add_option("--shared-prefix", o.shared_prefix,
                 "the first P prompt tokens are the same in every request (default 0)");
  app.add_option("--seed", o.seed, "seed for prompts, lengths and arrivals (default 0)");
  app.add_option("--warmup", o.warmup, "requests sent first and not counted (default 0)");
  app.add_option("--json", o.json_path, "write the results as JSON to this file");
  app.add_option("--timeout", o.timeout_s, "seconds per request (default 600)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    // CLI11 names the flag and the value ("Could not convert: --port = abc"); add the type.
    std::string expected;
    if (dynamic_cast<const CLI::ConversionError*>(&e) != nullptr) {
      const std::string what = e.what();
      for (const CLI::Option* opt : app.get_options()) {
        if (what.find(" " + opt->get_name() + " =") == std::string::npos) continue;
        const std::string type = opt->get_type_name();
        expected = type == "INT"    ? ": expected an integer"
                   : type == "UINT" ? ": expected a non-negative integer"
                                    : ": expected a number";
      }
    }
    std::fprintf(stderr, "qwen3-serve-bench: error: %s%s\n", e.what(), expected.c_str());
    return 2;
  }

  Validate(o, nump->count() > 0, conc->count() > 0, maxc->count() > 0);
  signal(SIGPIPE, SIG_IGN);  // cpp-httplib 0.11.4 sends without MSG_NOSIGNAL
  httplib::Headers headers;
  if (!o.api_key.empty()) headers.emplace("Authorization", "Bearer " + o.api_key);
  const std::vector<RunPlan> plans = MakePlans(o);
  const std::string model = ResolveModel(o, headers);
  std::fprintf(stderr,
               "qwen3-serve-bench: http://%s:%d model %s, input %lld..%lld, output %lld..%lld "
               "tokens, shared prefix %lld, seed %llu\n",
               o.host.c_str(), o.port, model.c_str(), static_cast<long long>(o.input_lo),
               static_cast<long long>(o.input_hi), static_cast<long long>(o.output_lo),
               static_cast<long long>(o.output_hi), static_cast<long long>(o.shared_prefix),
               static_cast<unsigned long long>(o.seed));

  if (o.warmup > 0) {
    RunPlan w;
    w.num_prompts = o.warmup;
    w.workers = std::min(o.warmup, plans.front().workers);
    w.tag = 1;
    const RunResult r = ExecuteRun(o, model, w, headers);
    std::fprintf(stderr, "warmup: %zu requests, %zu failed, %.2f s\n", o.warmup, r.failed,
                 r.duration_s);
    for (const auto& [kind, count] : r.errors) {
      std::fprintf(stderr, "  failed: %zu x %s (first: %s)\n", count, kind.c_str(),
                   r.error_examples.at(kind).c_str());
    }
  }

  // Results are rewritten after every run, so a long sweep cut short keeps what it measured;
  // an unwritable path fails before any load is sent.
  json runs = json::array();
  const auto write_json = [&] {
    if (o.json_path.empty()) return;
    const json out = {
        {"runs", runs},
        {"server", {{"host", o.host}, {"port", o.port}, {"model", model}}},
    };
    std::ofstream f(o.json_path);
    f << out.dump(2) << "\n";
    f.close();
    if (!f) throw Error("--json " + o.json_path + ": cannot write the file");
  };
  write_json();
  bool some_run_empty = false;
  PrintHeader(plans.front().rate_mode);
  for (size_t i = 0; i < plans.size(); ++i) {
    const RunPlan& p = plans[i];
    std::fprintf(stderr, "run %zu/%zu: %s, %zu requests, %zu in flight at most\n", i + 1,
                 plans.size(),
                 p.rate_mode ? ("rate " + Num(p.rate) + "/s").c_str()
                             : ("concurrency " + std::to_string(p.workers)).c_str(),
                 p.num_prompts, p.workers);
    const RunResult r = ExecuteRun(o, model, p, headers);
    PrintRow(r);
    runs.push_back(RunJson(o, r));
    some_run_empty |= r.completed == 0;
    write_json();
  }
  if (some_run_empty) {
    std::fprintf(stderr, "qwen3-serve-bench: a run completed no request\n");
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace qwen3

int main(int argc, char** argv) {
  return qwen3::RunToolMain("qwen3-serve-bench", argc, argv, qwen3::Main);
}
