// PeakDotFlops: a positive, finite rate on every path this machine supports (never a timing
// threshold), an Error naming the path on the others, and each path's matmul still right
// afterwards (the amx loop reconfigures every worker's tiles).
#include "exec/cpu/peak_rate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "exec/cpu/kernels.h"
#include "runtime/thread_pool.h"
#include "tests/error_matchers.h"

namespace qwen3::cpu {
namespace {

// One 5-row block (AMX configures 5-row tiles for it) on small integers: exact in fp32.
std::vector<float> SmallMatmul(const CpuKernels& k) {
  AlignedBuffer<bf16> a(kTileM * kTileK), b(kTileK * kTileN);
  for (size_t i = 0; i < a.size(); ++i) a[i] = F32ToBf16(static_cast<float>(int(i % 5) - 2));
  for (size_t i = 0; i < b.size(); ++i) b[i] = F32ToBf16(static_cast<float>(int(i % 3) - 1));
  AlignedBuffer<float> c(kTileM * kTileN);
  const BBlock block{b.data(), kTileK * kTileN, kTileK};
  k.matmul_block(a.data(), kTileK, 5, 1, &block, 1, c.data(), kTileN, nullptr, 0);
  return std::vector<float>(c.data(), c.data() + 5 * kTileN);
}

TEST(PeakRate, PositiveAndFiniteOnEveryAvailablePath) {
  ThreadPool pool(2);
  const std::vector<float> want = SmallMatmul(GetCpuKernels(CpuPath::kScalar));
  for (CpuPath path : AvailableCpuPaths()) {
    const CpuKernels& k = GetCpuKernels(path);
    SmallMatmul(k);  // AMX: the matmul's own tile config is loaded before the peak loop
    const double peak = PeakDotFlops(path, pool);
    EXPECT_GT(peak, 0.0) << ToString(path);
    EXPECT_TRUE(std::isfinite(peak)) << ToString(path);
    EXPECT_EQ(SmallMatmul(k), want) << ToString(path);
    const double int8 = PeakInt8Ops(path, pool);
    EXPECT_GT(int8, 0.0) << ToString(path);
    EXPECT_TRUE(std::isfinite(int8)) << ToString(path);
  }
}

TEST(PeakRate, UnsupportedPathThrows) {
  ThreadPool pool(1);
  const std::vector<CpuPath> ok = AvailableCpuPaths();
  for (int i = 0; i < static_cast<int>(CpuPath::kSentinel); ++i) {
    const CpuPath path = static_cast<CpuPath>(i);
    if (std::find(ok.begin(), ok.end(), path) != ok.end()) continue;
    EXPECT_TRUE(ThrowsError([&] { PeakDotFlops(path, pool); }, {ToString(path), "expected"}));
    EXPECT_TRUE(ThrowsError([&] { PeakInt8Ops(path, pool); }, {ToString(path), "expected"}));
  }
}

}  // namespace
}  // namespace qwen3::cpu
