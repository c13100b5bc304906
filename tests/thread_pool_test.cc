#include "runtime/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

namespace qwen3 {
namespace {

TEST(ThreadPoolTest, EveryBlockRunsExactlyOnce) {
  for (size_t workers : {1, 2, 3, 8}) {
    ThreadPool pool(workers);
    EXPECT_EQ(pool.NumWorkers(), workers);
    for (size_t n : {0, 1, 2, 7, 64, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      pool.Spmd(n, [&](size_t block, size_t worker) {
        ASSERT_LT(worker, workers);
        hits[block].fetch_add(1);
      });
      for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1) << "block " << i << " n " << n;
    }
  }
}

TEST(ThreadPoolTest, ManyConsecutiveDispatches) {
  ThreadPool pool(4);
  std::atomic<size_t> sum{0};
  for (int step = 0; step < 500; ++step) {
    pool.Spmd(5, [&](size_t block, size_t) { sum.fetch_add(block); });
  }
  EXPECT_EQ(sum.load(), 500u * 10u);
}

TEST(ThreadPoolTest, WorkerIndexGivesPrivateScratch) {
  ThreadPool pool(3);
  std::vector<size_t> per_worker(pool.NumWorkers(), 0);
  pool.Spmd(300, [&](size_t, size_t worker) { ++per_worker[worker]; });  // no data race
  size_t total = 0;
  for (size_t c : per_worker) total += c;
  EXPECT_EQ(total, 300u);
}

TEST(ThreadPoolTest, ExceptionPropagatesAndPoolSurvives) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.Spmd(100, [&](size_t block, size_t) {
                 if (block == 17) throw std::runtime_error("block 17");
               }),
               std::runtime_error);
  std::atomic<int> count{0};
  pool.Spmd(10, [&](size_t, size_t) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 10);
}

TEST(ThreadPoolTest, DefaultUsesAllHardwareThreads) {
  ThreadPool pool;
  EXPECT_EQ(pool.NumWorkers(), std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace qwen3
