// A persistent worker pool whose only operation is a flat SPMD dispatch: Spmd(n, body) runs
// body(block, worker) for every block in [0, n) across all workers and returns when all are
// done. The caller is worker 0. The partition is static: worker w runs the contiguous range
// [n * w / W, n * (w + 1) / W) in order (or the ranges the caller gives, e.g. balanced by
// cost: BalancedRanges), so which worker computes a block follows from its index alone, never
// from the order in which threads arrive, and each worker's blocks of a weight matrix are one
// linear stream. Idle workers spin briefly (stages of one step follow each other closely),
// then sleep on a futex: between steps, and in an idle server, the pool burns no core.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "runtime/trace.h"

namespace qwen3 {

class ThreadPool {
 public:
  // num_workers counts the caller; 0 means one per hardware thread.
  explicit ThreadPool(size_t num_workers = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t NumWorkers() const { return threads_.size() + 1; }

  // body(size_t block, size_t worker). An exception thrown by a block stops the dispatch
  // (the blocks not yet started are skipped) and is rethrown here. name (a string literal) labels
  // the blocks in a trace.
  template <typename Body>
  void Spmd(size_t n, const Body& body, const char* name = "spmd") {
    Run(n, {}, &Call<Body>, &body, name);
  }
  // The same with worker w running blocks [bounds[w], bounds[w + 1]): bounds has NumWorkers()
  // + 1 non-decreasing entries from 0 to n.
  template <typename Body>
  void SpmdRanges(std::span<const size_t> bounds, const Body& body, const char* name = "spmd") {
    Run(bounds.empty() ? 0 : bounds.back(), bounds, &Call<Body>, &body, name);
  }

  // Records every following dispatch into tracer (nullptr stops); the tracer must have a
  // track per worker and outlive its use. Not to be called during a dispatch.
  void SetTracer(Tracer* tracer) { tracer_ = tracer; }

 private:
  using BlockFn = void (*)(const void* ctx, size_t block, size_t worker);
  template <typename Body>
  static void Call(const void* ctx, size_t block, size_t worker) {
    (*static_cast<const Body*>(ctx))(block, worker);
  }
  void Run(size_t n, std::span<const size_t> bounds, BlockFn fn, const void* ctx, const char* name);
  size_t Begin(size_t worker) const;
  void WorkerLoop(size_t worker);
  void Work(size_t worker);

  std::vector<std::thread> threads_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<bool> failed_{false};
  std::atomic<size_t> busy_{0};
  size_t n_ = 0;
  std::span<const size_t> bounds_;
  BlockFn fn_ = nullptr;
  const void* ctx_ = nullptr;
  const char* name_ = nullptr;
  Tracer* tracer_ = nullptr;
  bool stop_ = false;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

// Bounds for SpmdRanges: `workers` contiguous ranges of [0, cost.size()) whose summed costs are
// as equal as a split at block boundaries allows (each range ends at the first block where the
// running total reaches its share). bounds gets workers + 1 entries.
void BalancedRanges(std::span<const uint32_t> cost, size_t workers, std::vector<size_t>& bounds);

}  // namespace qwen3
