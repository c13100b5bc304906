#include "runtime/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/trace.h"

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

// A block that throws on another worker than the caller: its exception reaches the caller
// (written by that worker, read after the dispatch), every time, and the pool goes on.
TEST(ThreadPoolTest, ExceptionOnAnotherWorkerPropagates) {
  ThreadPool pool(3);
  for (int round = 0; round < 20; ++round) {
    std::atomic<size_t> thrower{99};
    EXPECT_THROW(pool.Spmd(90, [&](size_t block, size_t worker) {
                   if (block == 80) {  // worker 2's range is [60, 90)
                     thrower.store(worker);
                     throw std::runtime_error("block 80");
                   }
                 }),
                 std::runtime_error);
    EXPECT_EQ(thrower.load(), 2u);
  }
  std::atomic<int> count{0};
  pool.Spmd(9, [&](size_t, size_t) { count.fetch_add(1); });
  EXPECT_EQ(count.load(), 9);
}

// Between dispatches the workers outlast their spin and sleep (an idle server); each dispatch
// wakes them, they see what the caller wrote before it, and the caller sees what they wrote.
// Plain memory on purpose: the ThreadSanitizer build (scripts/test.sh --tsan) checks that the
// dispatch and the join order those accesses.
TEST(ThreadPoolTest, WorkersWakeFromSleepAndSeeTheCallersWrites) {
  ThreadPool pool(3);
  std::vector<size_t> in(64), out(64);
  for (size_t round = 0; round < 20; ++round) {
    for (size_t i = 0; i < in.size(); ++i) in[i] = i * round;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // 20x the spin
    pool.Spmd(in.size(), [&](size_t block, size_t) { out[block] = in[block] + 1; });
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], i * round + 1) << "round " << round;
  }
}

// With a tracer, each worker records its blocks on its own track while the others run.
TEST(ThreadPoolTest, TracerRecordsEveryBlockAndDispatch) {
  ThreadPool pool(3);
  Tracer tracer(pool.NumWorkers());
  pool.SetTracer(&tracer);
  for (int i = 0; i < 10; ++i) pool.Spmd(30, [](size_t, size_t) {}, "stage");
  pool.SetTracer(nullptr);
  pool.Spmd(30, [](size_t, size_t) {});
  EXPECT_EQ(tracer.num_events(), 10u * 30u + 10u);
}

// The partition is static: block b runs on the worker whose range [n w / W, n (w + 1) / W)
// holds it, in order within the range, on every dispatch.
TEST(ThreadPoolTest, StaticContiguousRanges) {
  for (size_t workers : {1, 2, 3}) {
    ThreadPool pool(workers);
    for (size_t n : {1, 2, 5, 64, 1001}) {
      for (int rep = 0; rep < 3; ++rep) {
        std::vector<size_t> owner(n, 99);
        std::vector<std::vector<size_t>> order(workers);
        pool.Spmd(n, [&](size_t block, size_t worker) {
          owner[block] = worker;
          order[worker].push_back(block);
        });
        for (size_t w = 0; w < workers; ++w) {
          const size_t begin = n * w / workers, end = n * (w + 1) / workers;
          ASSERT_EQ(order[w].size(), end - begin) << "worker " << w << " n " << n;
          for (size_t i = 0; i < order[w].size(); ++i) EXPECT_EQ(order[w][i], begin + i);
        }
      }
    }
  }
}

TEST(ThreadPoolTest, SpmdRangesRunsTheGivenRanges) {
  ThreadPool pool(3);
  const std::vector<size_t> bounds = {0, 0, 7, 10};  // worker 0 gets nothing
  std::vector<size_t> owner(10, 99);
  pool.SpmdRanges(bounds, [&](size_t block, size_t worker) { owner[block] = worker; });
  for (size_t b = 0; b < 10; ++b) EXPECT_EQ(owner[b], b < 7 ? 1u : 2u) << b;
}

TEST(ThreadPoolTest, BalancedRangesSplitsByCost) {
  std::vector<size_t> bounds;
  const std::vector<uint32_t> even = {1, 1, 1, 1, 1, 1};
  BalancedRanges(even, 2, bounds);
  EXPECT_EQ(bounds, (std::vector<size_t>{0, 3, 6}));
  // One long item first: it is a range of its own; the rest share the other worker.
  const std::vector<uint32_t> skewed = {10, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  BalancedRanges(skewed, 2, bounds);
  EXPECT_EQ(bounds, (std::vector<size_t>{0, 1, 11}));
  BalancedRanges(std::vector<uint32_t>{}, 3, bounds);
  EXPECT_EQ(bounds, (std::vector<size_t>{0, 0, 0, 0}));
  const std::vector<uint32_t> two = {5, 5};
  BalancedRanges(two, 4, bounds);  // more workers than items: some get none
  EXPECT_EQ(bounds.front(), 0u);
  EXPECT_EQ(bounds.back(), 2u);
  for (size_t w = 0; w + 1 < bounds.size(); ++w) EXPECT_LE(bounds[w], bounds[w + 1]);
}

TEST(ThreadPoolTest, DefaultUsesAllHardwareThreads) {
  ThreadPool pool;
  EXPECT_EQ(pool.NumWorkers(), std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace
}  // namespace qwen3
