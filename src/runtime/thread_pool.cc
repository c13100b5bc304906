#include "runtime/thread_pool.h"

#include <immintrin.h>

#include <chrono>

#include "base/error.h"

namespace qwen3 {
namespace {

// 50 us of polling before sleeping: long enough to bridge consecutive stages of one step,
// short enough that an idle pool costs nothing. Timed, not counted: PAUSE takes from ~10 to
// ~140 cycles depending on the core.
constexpr auto kSpinTime = std::chrono::microseconds(50);

template <typename T, typename Pred>
void SpinThenWait(std::atomic<T>& a, Pred keep_waiting) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 16; ++i) {
      if (!keep_waiting(a.load(std::memory_order_acquire))) return;
      _mm_pause();
    }
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  for (;;) {
    T v = a.load(std::memory_order_acquire);
    if (!keep_waiting(v)) return;
    a.wait(v, std::memory_order_acquire);
  }
}

}  // namespace

ThreadPool::ThreadPool(size_t num_workers) {
  if (num_workers == 0) num_workers = std::max(1u, std::thread::hardware_concurrency());
  threads_.reserve(num_workers - 1);
  for (size_t w = 1; w < num_workers; ++w) threads_.emplace_back([this, w] { WorkerLoop(w); });
}

ThreadPool::~ThreadPool() {
  stop_ = true;
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::Run(size_t n, std::span<const size_t> bounds, BlockFn fn, const void* ctx,
                     const char* name) {
  if (n == 0) return;
  QW_ASSERT(bounds.empty() ||
            (bounds.size() == NumWorkers() + 1 && bounds.front() == 0 && bounds.back() == n));
  const int64_t t0 = tracer_ ? tracer_->NowNs() : 0;
  n_ = n;
  bounds_ = bounds;
  fn_ = fn;
  ctx_ = ctx;
  name_ = name;
  error_ = nullptr;
  failed_.store(false, std::memory_order_relaxed);
  if (!threads_.empty() && n > 1) {
    busy_.store(threads_.size(), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
    Work(0);
    SpinThenWait(busy_, [](size_t v) { return v != 0; });
  } else {
    for (size_t w = 0; w < NumWorkers(); ++w) Work(w);  // the same ranges, one thread
  }
  if (tracer_) tracer_->RecordDispatch({name, t0, tracer_->NowNs(), n});
  if (error_) std::rethrow_exception(error_);
}

size_t ThreadPool::Begin(size_t worker) const {
  if (!bounds_.empty()) return bounds_[worker];
  return n_ * worker / NumWorkers();
}

void ThreadPool::Work(size_t worker) {
  const size_t end = Begin(worker + 1);
  for (size_t block = Begin(worker); block < end; ++block) {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      if (tracer_ == nullptr) {
        fn_(ctx_, block, worker);
      } else {
        const int64_t t0 = tracer_->NowNs();
        fn_(ctx_, block, worker);
        tracer_->RecordBlock(worker, {name_, t0, tracer_->NowNs(), block});
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mu_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }
}

void ThreadPool::WorkerLoop(size_t worker) {
  uint32_t seen = 0;
  for (;;) {
    SpinThenWait(generation_, [seen](uint32_t g) { return g == seen; });
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    Work(worker);
    if (busy_.fetch_sub(1, std::memory_order_acq_rel) == 1) busy_.notify_one();
  }
}

void BalancedRanges(std::span<const uint32_t> cost, size_t workers, std::vector<size_t>& bounds) {
  QW_ASSERT(workers >= 1);
  uint64_t total = 0;
  for (uint32_t c : cost) total += c;
  bounds.assign(workers + 1, cost.size());
  bounds[0] = 0;
  uint64_t sum = 0;
  size_t w = 1;
  for (size_t i = 0; i < cost.size() && w < workers; ++i) {
    sum += cost[i];
    while (w < workers && sum * workers >= total * w) bounds[w++] = i + 1;
  }
}

}  // namespace qwen3
