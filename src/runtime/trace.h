// Chrome / Perfetto trace of SPMD dispatches: one track per worker thread with a slice per
// block, named by its stage (the seed's --enable-l2-swimlane view), plus a "dispatch" track
// with one slice per Spmd call. Workers append to their own buffer, so recording takes no
// lock; the file is written after the run (open it in ui.perfetto.dev or chrome://tracing).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qwen3 {

class Tracer {
 public:
  explicit Tracer(size_t num_workers);

  struct Event {
    const char* name;  // a string literal (stage names)
    int64_t begin_ns, end_ns;
    size_t block;  // block index, or the block count for a dispatch slice
  };

  int64_t NowNs() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                origin_)
        .count();
  }
  // worker < num_workers; only that worker may record on its track.
  void RecordBlock(size_t worker, const Event& e) { blocks_[worker].push_back(e); }
  // Called by the dispatching thread only.
  void RecordDispatch(const Event& e) { dispatches_.push_back(e); }

  size_t num_events() const;
  // Writes {"traceEvents": [...]}; throws Error naming the path if it cannot be written.
  void WriteChromeJson(const std::string& path) const;

 private:
  std::chrono::steady_clock::time_point origin_;
  std::vector<std::vector<Event>> blocks_;
  std::vector<Event> dispatches_;
};

}  // namespace qwen3
