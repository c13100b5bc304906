#include "exec/cpu/peak_rate.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "base/error.h"
#include "exec/cpu/kernels.h"
#include "exec/cpu/peak_rate_loops.h"
#include "runtime/thread_pool.h"

namespace qwen3::cpu {

volatile float dot_loop_sink = 0;

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

using DotLoopFn = double (*)(size_t iters);

DotLoopFn LoopOf(CpuPath path) {
  switch (path) {
    case CpuPath::kAmx:
      return DotLoopAmx;
    case CpuPath::kAvx512Bf16:
      return DotLoopAvx512Bf16;
    case CpuPath::kAvx512:
      return DotLoopAvx512;
    case CpuPath::kAvx2:
      return DotLoopAvx2;
    case CpuPath::kScalar:
    case CpuPath::kSentinel:
      break;
  }
  return DotLoopScalar;
}

DotLoopFn Int8LoopOf(CpuPath path) {
  switch (path) {
    case CpuPath::kAmx:
    case CpuPath::kAvx512Bf16:
      return Int8LoopVnni;
    case CpuPath::kAvx512:
      return Int8LoopAvx512;
    case CpuPath::kAvx2:
      return Int8LoopAvx2;
    case CpuPath::kScalar:
    case CpuPath::kSentinel:
      break;
  }
  return Int8LoopScalar;
}

double BestRate(DotLoopFn loop, ThreadPool& pool);

}  // namespace

double PeakDotFlops(CpuPath path, ThreadPool& pool) {
  if (!IsSupported(path)) {
    throw Error(std::string("CPU path '") + ToString(path) +
                "': expected one this machine supports (PeakDotFlops)");
  }
  const double best = BestRate(LoopOf(path), pool);
  if (path == CpuPath::kAmx) InvalidateTileConfigs();  // our tile config replaced the matmul's
  return best;
}

double PeakInt8Ops(CpuPath path, ThreadPool& pool) {
  if (!IsSupported(path)) {
    throw Error(std::string("CPU path '") + ToString(path) +
                "': expected one this machine supports (PeakInt8Ops)");
  }
  return BestRate(Int8LoopOf(path), pool);
}

namespace {

double BestRate(DotLoopFn loop, ThreadPool& pool) {
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
