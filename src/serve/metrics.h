// The engine's counters, gauges and histograms, rendered in Prometheus' text format with vLLM's
// metric names under a "qwen3:" prefix (qwen3:num_requests_running, ..._seconds_bucket{le=..}).
// Thread-safe: the engine thread records, HTTP threads render.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace qwen3 {

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double v);
  // Appends the _bucket/_sum/_count lines of metric `name` to out.
  void Render(const std::string& name, std::string& out) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), + the +Inf bucket
  double sum_ = 0;
  uint64_t count_ = 0;
};

struct MetricsSnapshot {
  size_t running = 0, waiting = 0;
  double kv_usage = 0;  // used blocks / all blocks
  size_t kv_blocks_free = 0, kv_blocks_cached = 0, kv_blocks_total = 0;
};

class Metrics {
 public:
  Metrics();
  void SetState(const MetricsSnapshot& s);
  void AddPromptTokens(uint64_t n);
  void AddGenerationTokens(uint64_t n);
  void AddPrefixCache(uint64_t queried_tokens, uint64_t hit_tokens);
  void AddPreemption();
  void AddSubmitted(uint64_t n);                // sequences (one per choice)
  void AddFinished(const std::string& reason);  // stop, length, abort, ...
  void ObserveTtft(double s);
  void ObserveItl(double s);
  void ObserveE2e(double s);
  void ObserveQueue(double s);

  MetricsSnapshot state() const;
  uint64_t preemptions() const;
  uint64_t prefix_queries() const;
  uint64_t prefix_hits() const;
  uint64_t submitted() const;
  // Finished sequences by reason (stop, length, abort).
  std::map<std::string, uint64_t> finished() const;
  std::string RenderPrometheus() const;

 private:
  mutable std::mutex mu_;
  MetricsSnapshot state_;
  uint64_t prompt_tokens_ = 0, generation_tokens_ = 0, preemptions_ = 0;
  uint64_t prefix_queries_ = 0, prefix_hits_ = 0, submitted_ = 0;
  std::map<std::string, uint64_t> finished_;
  Histogram ttft_, itl_, e2e_, queue_;
};

// The HTTP front's replies by status code (the guard's own refusals included), and replies cut
// short (the client went away, or stopped reading).
class HttpMetrics {
 public:
  void AddReply(int status);
  void AddCutShort();
  std::map<int, uint64_t> replies() const;
  uint64_t cut_short() const;
  // qwen3:http_requests_total{code="..."} and qwen3:http_replies_cut_short_total.
  void Render(std::string& out) const;

 private:
  mutable std::mutex mu_;
  std::map<int, uint64_t> replies_;
  uint64_t cut_short_ = 0;
};

}  // namespace qwen3
