// The pure parts of qwen3-serve-bench, apart so they can be tested without a server: the
// incremental Server-Sent-Events parser and latency statistics (numpy's default percentile).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace qwen3 {

// Splits a text/event-stream body into events, fed in arbitrary pieces (an HTTP chunk or a recv
// can end anywhere, even inside "\r\n" or "data:"). Per the WHATWG SSE rules we rely on: an event
// ends at a blank line; "data:" lines are its payload (one leading space after the colon is
// dropped; several data lines join with "\n"); lines starting with ":" are comments (keep-alive
// pings); other fields (event:, id:, retry:) are ignored; an event without data is not
// dispatched. '\r' is dropped on input, so CRLF streams parse as LF ones (a lone '\r' as a line
// end, which no OpenAI-style server sends, is not supported).
//
//   SseParser p;
//   p.Feed("data: {\"a\"", on_data);   // nothing yet
//   p.Feed(":1}\n\ndata: [DONE]\n\n", on_data);   // on_data("{\"a\":1}"), on_data("[DONE]")
class SseParser {
 public:
  using OnData = std::function<void(std::string_view data)>;

  // An event bigger than this (no blank line in max_event_bytes) makes Feed return false.
  explicit SseParser(size_t max_event_bytes = size_t{16} << 20)
      : max_event_bytes_(max_event_bytes) {}

  // Appends bytes and calls on_data once per completed event, in order. False when the pending
  // (incomplete) event exceeds max_event_bytes: the stream is not SSE; stop reading it.
  bool Feed(std::string_view bytes, const OnData& on_data);

  // Bytes of an event that has not ended yet (non-zero when a stream is cut mid-event).
  size_t pending_bytes() const { return buf_.size(); }

 private:
  void Dispatch(std::string_view event, const OnData& on_data);

  size_t max_event_bytes_;
  std::string buf_;     // bytes after the last complete event, '\r' removed
  size_t scanned_ = 0;  // buf_[0, scanned_) holds no "\n\n"
  std::string data_;    // payload of the event being dispatched
};

// Percentile p in [0, 100] of sorted values by linear interpolation between closest ranks
// (numpy.percentile's default "linear" method): rank h = (n-1)·p/100, value
// v[floor h] + (h - floor h)·(v[floor h + 1] - v[floor h]). 0 for an empty vector.
double PercentileLinear(const std::vector<double>& sorted, double p);

// Mean and percentiles of one latency metric (same unit as the input).
struct LatencyStats {
  size_t count = 0;
  double mean = 0, p50 = 0, p90 = 0, p99 = 0;
};

LatencyStats SummarizeLatencies(std::vector<double> values);

}  // namespace qwen3
