#include "exec/cpu/cpu_path.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <string>

#include "base/cpu_features.h"
#include "base/error.h"
#include "exec/cpu/cpu_path_table.h"
#include "exec/cpu/kernels.h"

namespace qwen3::cpu {
namespace {

// Sets QWEN3_CPU_PATH for one scope.
class ScopedPathEnv {
 public:
  explicit ScopedPathEnv(const char* value) {
    if (const char* old = getenv("QWEN3_CPU_PATH")) old_ = old, had_ = true;
    if (value) setenv("QWEN3_CPU_PATH", value, 1); else unsetenv("QWEN3_CPU_PATH");
  }
  ~ScopedPathEnv() {
    if (had_) setenv("QWEN3_CPU_PATH", old_.c_str(), 1); else unsetenv("QWEN3_CPU_PATH");
  }

 private:
  std::string old_;
  bool had_ = false;
};

TEST(CpuPathTest, NamesRoundTrip) {
  for (int i = 0; i < static_cast<int>(CpuPath::kSentinel); ++i) {
    const auto path = static_cast<CpuPath>(i);
    EXPECT_EQ(ParseCpuPath(ToString(path)), path);
  }
}

TEST(CpuPathTest, UnknownNameIsOneLineError) {
  try {
    ParseCpuPath("sse9");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'sse9'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected amx, avx512bf16, avx512, avx2 or scalar"), std::string::npos);
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
}

TEST(CpuPathTest, AvailablePathsAreOrderedAndEndWithScalar) {
  const auto paths = AvailableCpuPaths();
  ASSERT_FALSE(paths.empty());
  EXPECT_EQ(paths.back(), CpuPath::kScalar);
  for (size_t i = 1; i < paths.size(); ++i) EXPECT_LT(paths[i - 1], paths[i]);
  for (CpuPath p : paths) EXPECT_EQ(GetCpuKernels(p).path, p);
}

// Also for the paths this machine lacks: a row pointing at another path's kernels would show
// only where that path runs.
TEST(CpuPathTest, EveryRowHasItsOwnKernelsAndPeakLoops) {
  for (const CpuPathRow& row : CpuPathRows()) {
    EXPECT_EQ(row.kernels->path, row.path) << row.name;
    EXPECT_STREQ(ToString(row.path), row.name);
    EXPECT_NE(row.supported, nullptr) << row.name;
    EXPECT_NE(row.peak_dot, nullptr) << row.name;
    EXPECT_NE(row.peak_int8, nullptr) << row.name;
  }
  EXPECT_STREQ(ToString(CpuPath::kSentinel), "?");
  EXPECT_FALSE(IsSupported(CpuPath::kSentinel));
}

TEST(CpuPathTest, FeatureImplicationsHold) {
  const CpuFeatures& f = GetCpuFeatures();
  if (f.amx_bf16) { EXPECT_TRUE(f.avx512_bf16); }
  if (f.avx512_bf16) { EXPECT_TRUE(f.avx512); }
  if (f.avx512) { EXPECT_TRUE(f.avx2_fma); }
  EXPECT_FALSE(f.amx_status.empty());
}

TEST(CpuPathTest, EnvironmentForcesEverySupportedPath) {
  for (CpuPath p : AvailableCpuPaths()) {
    ScopedPathEnv env(ToString(p));
    EXPECT_EQ(SelectCpuPath(), p);
  }
  ScopedPathEnv unset(nullptr);
  EXPECT_EQ(SelectCpuPath(), AvailableCpuPaths().front());
}

TEST(CpuPathTest, EnvironmentRejectsBadOrUnsupportedPath) {
  {
    ScopedPathEnv env("bogus");
    EXPECT_THROW(SelectCpuPath(), Error);
  }
  for (int i = 0; i < static_cast<int>(CpuPath::kSentinel); ++i) {
    const auto p = static_cast<CpuPath>(i);
    if (IsSupported(p)) continue;
    ScopedPathEnv env(ToString(p));
    EXPECT_THROW(SelectCpuPath(), Error);
    EXPECT_THROW(GetCpuKernels(p), Error);
  }
}

}  // namespace
}  // namespace qwen3::cpu
