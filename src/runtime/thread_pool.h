// A persistent worker pool whose only operation is a flat SPMD dispatch: Spmd(n, body) runs
// body(block, worker) for every block in [0, n) across all workers and returns when all are
// done. The caller is worker 0. Blocks are claimed one at a time from a shared counter, so
// uneven blocks balance themselves. Idle workers spin briefly (stages follow each other
// closely), then sleep on a futex, so the pool burns no core between steps.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
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
  // (blocks not yet claimed are skipped) and is rethrown here. name (a string literal) labels
  // the blocks in a trace.
  template <typename Body>
  void Spmd(size_t n, const Body& body, const char* name = "spmd") {
    Run(
        n,
        [](const void* ctx, size_t block, size_t worker) {
          (*static_cast<const Body*>(ctx))(block, worker);
        },
        &body, name);
  }

  // Records every following dispatch into tracer (nullptr stops); the tracer must have a
  // track per worker and outlive its use. Not to be called during a dispatch.
  void SetTracer(Tracer* tracer) { tracer_ = tracer; }

 private:
  using BlockFn = void (*)(const void* ctx, size_t block, size_t worker);
  void Run(size_t n, BlockFn fn, const void* ctx, const char* name);
  void WorkerLoop(size_t worker);
  void Work(size_t worker);

  std::vector<std::thread> threads_;
  std::atomic<uint32_t> generation_{0};
  std::atomic<size_t> next_block_{0};
  std::atomic<size_t> busy_{0};
  size_t n_ = 0;
  BlockFn fn_ = nullptr;
  const void* ctx_ = nullptr;
  const char* name_ = nullptr;
  Tracer* tracer_ = nullptr;
  bool stop_ = false;
  std::mutex error_mu_;
  std::exception_ptr error_;
};

}  // namespace qwen3
