#include "serve/metrics.h"

#include <cmath>
#include <cstdio>

namespace qwen3 {
namespace {

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

void Header(std::string& out, const std::string& name, const char* type, const char* help) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void Scalar(std::string& out, const std::string& name, const char* type, const char* help,
            double v) {
  Header(out, name, type, help);
  out += name + " " + Num(v) + "\n";
}

// vLLM's buckets (seconds).
std::vector<double> TtftBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
          2.5,   5.0,   7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}
std::vector<double> ItlBuckets() {
  return {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
          20.0, 40.0, 80.0};
}
std::vector<double> LatencyBuckets() {
  return {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
          120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

}  // namespace

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += v;
  ++count_;
}

void Histogram::Render(const std::string& name, std::string& out) const {
  uint64_t cum = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cum += counts_[i];
    const double le = i < bounds_.size() ? bounds_[i] : INFINITY;
    out += name + "_bucket{le=\"" + Num(le) + "\"} " + std::to_string(cum) + "\n";
  }
  out += name + "_sum " + Num(sum_) + "\n";
  out += name + "_count " + std::to_string(count_) + "\n";
}

Metrics::Metrics()
    : ttft_(TtftBuckets()), itl_(ItlBuckets()), e2e_(LatencyBuckets()), queue_(LatencyBuckets()) {}

void Metrics::SetState(const MetricsSnapshot& s) {
  std::lock_guard lock(mu_);
  state_ = s;
}
void Metrics::AddPromptTokens(uint64_t n) {
  std::lock_guard lock(mu_);
  prompt_tokens_ += n;
}
void Metrics::AddGenerationTokens(uint64_t n) {
  std::lock_guard lock(mu_);
  generation_tokens_ += n;
}
void Metrics::AddPrefixCache(uint64_t queried, uint64_t hit) {
  std::lock_guard lock(mu_);
  prefix_queries_ += queried;
  prefix_hits_ += hit;
}
void Metrics::AddPreemption() {
  std::lock_guard lock(mu_);
  ++preemptions_;
}
void Metrics::AddSubmitted(uint64_t n) {
  std::lock_guard lock(mu_);
  submitted_ += n;
}
void Metrics::AddFinished(const std::string& reason) {
  std::lock_guard lock(mu_);
  ++finished_[reason];
}
void Metrics::ObserveTtft(double s) {
  std::lock_guard lock(mu_);
  ttft_.Observe(s);
}
void Metrics::ObserveItl(double s) {
  std::lock_guard lock(mu_);
  itl_.Observe(s);
}
void Metrics::ObserveE2e(double s) {
  std::lock_guard lock(mu_);
  e2e_.Observe(s);
}
void Metrics::ObserveQueue(double s) {
  std::lock_guard lock(mu_);
  queue_.Observe(s);
}
MetricsSnapshot Metrics::state() const {
  std::lock_guard lock(mu_);
  return state_;
}
uint64_t Metrics::preemptions() const {
  std::lock_guard lock(mu_);
  return preemptions_;
}
uint64_t Metrics::prefix_queries() const {
  std::lock_guard lock(mu_);
  return prefix_queries_;
}
uint64_t Metrics::prefix_hits() const {
  std::lock_guard lock(mu_);
  return prefix_hits_;
}

uint64_t Metrics::submitted() const {
  std::lock_guard lock(mu_);
  return submitted_;
}
std::map<std::string, uint64_t> Metrics::finished() const {
  std::lock_guard lock(mu_);
  return finished_;
}

std::string Metrics::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  const std::string p = "qwen3:";
  Scalar(out, p + "num_requests_running", "gauge", "Requests in the running batch.",
         static_cast<double>(state_.running));
  Scalar(out, p + "num_requests_waiting", "gauge", "Requests waiting to be scheduled.",
         static_cast<double>(state_.waiting));
  Scalar(out, p + "kv_cache_usage_perc", "gauge", "Fraction of KV blocks held by requests (0-1).",
         state_.kv_usage);
  Scalar(out, p + "kv_cache_blocks_total", "gauge", "KV blocks in the pool.",
         static_cast<double>(state_.kv_blocks_total));
  Scalar(out, p + "kv_cache_blocks_free", "gauge", "KV blocks no request holds.",
         static_cast<double>(state_.kv_blocks_free));
  Scalar(out, p + "kv_cache_blocks_cached", "gauge", "Free KV blocks holding a cached prefix.",
         static_cast<double>(state_.kv_blocks_cached));
  Scalar(out, p + "prompt_tokens_total", "counter", "Prompt tokens processed (cached included).",
         static_cast<double>(prompt_tokens_));
  Scalar(out, p + "generation_tokens_total", "counter", "Tokens generated.",
         static_cast<double>(generation_tokens_));
  Scalar(out, p + "num_preemptions_total", "counter", "Requests preempted for KV blocks.",
         static_cast<double>(preemptions_));
  Scalar(out, p + "prefix_cache_queries", "counter", "Prompt tokens looked up in the prefix cache.",
         static_cast<double>(prefix_queries_));
  Scalar(out, p + "prefix_cache_hits", "counter", "Prompt tokens found in the prefix cache.",
         static_cast<double>(prefix_hits_));
  Scalar(out, p + "request_submitted_total", "counter",
         "Sequences submitted (one per choice); each ends in request_success_total.",
         static_cast<double>(submitted_));
  const std::string fin = p + "request_success_total";
  Header(out, fin, "counter", "Finished requests by finish reason.");
  for (const char* r : {"stop", "length", "tool_calls", "abort"}) {
    const auto it = finished_.find(r);
    out += fin + "{finished_reason=\"" + r + "\"} " +
           std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
  }
  const auto hist = [&](const char* name, const char* help, const Histogram& h) {
    Header(out, p + name, "histogram", help);
    h.Render(p + name, out);
  };
  hist("time_to_first_token_seconds", "Time from arrival to the first token.", ttft_);
  hist("inter_token_latency_seconds", "Time between consecutive tokens of a request.", itl_);
  hist("e2e_request_latency_seconds", "Time from arrival to the last token.", e2e_);
  hist("request_queue_time_seconds", "Time from arrival to the first scheduled step.", queue_);
  return out;
}

void HttpMetrics::AddReply(int status) {
  std::lock_guard lock(mu_);
  ++replies_[status];
}
void HttpMetrics::AddCutShort() {
  std::lock_guard lock(mu_);
  ++cut_short_;
}
std::map<int, uint64_t> HttpMetrics::replies() const {
  std::lock_guard lock(mu_);
  return replies_;
}
uint64_t HttpMetrics::cut_short() const {
  std::lock_guard lock(mu_);
  return cut_short_;
}
void HttpMetrics::Render(std::string& out) const {
  std::lock_guard lock(mu_);
  const std::string name = "qwen3:http_requests_total";
  Header(out, name, "counter", "HTTP requests answered, by status code.");
  for (const auto& [code, n] : replies_) {
    out += name + "{code=\"" + std::to_string(code) + "\"} " + std::to_string(n) + "\n";
  }
  Scalar(out, "qwen3:http_replies_cut_short_total", "counter",
         "Replies not sent to the end (the client went away or stopped reading).",
         static_cast<double>(cut_short_));
}

}  // namespace qwen3
