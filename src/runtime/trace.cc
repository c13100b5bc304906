#include "runtime/trace.h"

#include <cstdio>
#include <fstream>

#include "base/error.h"

namespace qwen3 {

Tracer::Tracer(size_t num_workers)
    : origin_(std::chrono::steady_clock::now()), blocks_(num_workers) {
  for (auto& b : blocks_) b.reserve(1 << 16);
  dispatches_.reserve(1 << 12);
}

size_t Tracer::num_events() const {
  size_t n = dispatches_.size();
  for (const auto& b : blocks_) n += b.size();
  return n;
}

void Tracer::WriteChromeJson(const std::string& path) const {
  std::ofstream out(path);
  if (!out) throw Error("--trace " + path + ": cannot open for writing");
  char buf[256];
  bool first = true;
  auto emit = [&](const char* text) {
    out << (first ? "\n" : ",\n") << text;
    first = false;
  };
  out << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[";
  const size_t dispatch_tid = blocks_.size();
  for (size_t w = 0; w <= dispatch_tid; ++w) {
    std::snprintf(buf, sizeof(buf),
                  "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":%zu,"
                  "\"args\":{\"name\":\"%s %zu\"}}",
                  w, w == dispatch_tid ? "dispatch" : "worker", w);
    emit(buf);
  }
  auto slice = [&](size_t tid, const Event& e, const char* arg) {
    std::snprintf(buf, sizeof(buf),
                  "{\"name\":\"%s\",\"cat\":\"spmd\",\"ph\":\"X\",\"pid\":1,\"tid\":%zu,"
                  "\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"%s\":%zu}}",
                  e.name, tid, e.begin_ns / 1e3, (e.end_ns - e.begin_ns) / 1e3, arg, e.block);
    emit(buf);
  };
  for (size_t w = 0; w < blocks_.size(); ++w) {
    for (const Event& e : blocks_[w]) slice(w, e, "block");
  }
  for (const Event& e : dispatches_) slice(dispatch_tid, e, "blocks");
  out << "\n]}\n";
  if (!out) throw Error("--trace " + path + ": write failed");
}

}  // namespace qwen3
