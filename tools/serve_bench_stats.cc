#include "tools/serve_bench_stats.h"

#include <algorithm>
#include <cmath>

namespace qwen3 {

bool SseParser::Feed(std::string_view bytes, const OnData& on_data) {
  buf_.reserve(buf_.size() + bytes.size());
  for (const char c : bytes) {
    if (c != '\r') buf_.push_back(c);
  }
  size_t begin = 0;  // start of the first event not yet dispatched
  for (;;) {
    const size_t end = buf_.find("\n\n", std::max(begin, scanned_));
    if (end == std::string::npos) break;
    Dispatch(std::string_view(buf_).substr(begin, end - begin), on_data);
    begin = end + 2;
  }
  buf_.erase(0, begin);
  // The last byte may be the first '\n' of a separator: rescan from it next time.
  scanned_ = buf_.empty() ? 0 : buf_.size() - 1;
  return buf_.size() <= max_event_bytes_;
}

void SseParser::Dispatch(std::string_view event, const OnData& on_data) {
  data_.clear();
  bool has_data = false;
  while (!event.empty()) {
    const size_t nl = event.find('\n');
    const std::string_view line = event.substr(0, nl);
    event = nl == std::string_view::npos ? std::string_view() : event.substr(nl + 1);
    if (line.empty() || line.front() == ':') continue;  // comment, e.g. ": ping"
    const size_t colon = line.find(':');
    const std::string_view field = line.substr(0, colon);
    if (field != "data") continue;
    std::string_view value =
        colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (has_data) data_.push_back('\n');
    data_.append(value);
    has_data = true;
  }
  if (!data_.empty()) on_data(data_);
}

double PercentileLinear(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double h = static_cast<double>(sorted.size() - 1) * std::clamp(p, 0.0, 100.0) / 100.0;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

LatencyStats SummarizeLatencies(std::vector<double> values) {
  LatencyStats s;
  s.count = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (const double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  s.p50 = PercentileLinear(values, 50);
  s.p90 = PercentileLinear(values, 90);
  s.p99 = PercentileLinear(values, 99);
  return s;
}

}  // namespace qwen3
