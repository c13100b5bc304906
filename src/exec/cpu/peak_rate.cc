#include "exec/cpu/peak_rate.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "base/error.h"
#include "exec/cpu/cpu_path_symbols.h"
#include "exec/cpu/cpu_path_table.h"
#include "exec/cpu/kernels.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

volatile float dot_loop_sink = 0;

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double BestRate(PeakLoopFn loop, ThreadPool& pool);

}  // namespace

double PeakDotFlops(CpuPath path, ThreadPool& pool) {
  if (!IsSupported(path)) {
    throw Error(std::string("CPU path '") + ToString(path) +
                "': expected one this machine supports (PeakDotFlops)");
  }
  const CpuPathRow& row = *FindCpuPathRow(path);
  const double best = BestRate(row.peak_dot, pool);
  if (row.peak_dot_sets_tiles) InvalidateTileConfigs();  // our tile config replaced the matmul's
  return best;
}

double PeakInt8Ops(CpuPath path, ThreadPool& pool) {
  if (!IsSupported(path)) {
    throw Error(std::string("CPU path '") + ToString(path) +
                "': expected one this machine supports (PeakInt8Ops)");
  }
  return BestRate(FindCpuPathRow(path)->peak_int8, pool);
}

namespace {

double BestRate(PeakLoopFn loop, ThreadPool& pool) {
  // A block of ~1 ms on one thread; a repetition is 10 blocks per worker (~10 ms, the pool's
  // static ranges); a worker that starts late (shared host) slows that repetition, and the
  // best repetition is the one reported.
  size_t iters = 256;
  double block_flops = 0;
  for (;;) {
    const auto t0 = Clock::now();
    block_flops = loop(iters);
    if (Since(t0) >= 1e-3 || iters >= (size_t{1} << 32)) break;
    iters *= 2;
  }
  const size_t blocks = 10 * pool.NumWorkers();
  double best = 0;
  for (int rep = 0; rep < 8; ++rep) {  // rep 0 is a warm-up (clocks, wake-ups)
    const auto t0 = Clock::now();
    pool.Spmd(blocks, [&](size_t, size_t) { loop(iters); }, "peak_dot");
    const double rate = block_flops * static_cast<double>(blocks) / Since(t0);
    if (rep > 0) best = std::max(best, rate);
  }
  return best;
}

}  // namespace

}  // namespace qwen3::cpu
