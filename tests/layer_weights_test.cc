#include "model/layer_weights.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "exec/finite.h"
#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

// transformers' rotary tables: inv_freq[i] = theta^(-2i/d), angle = pos * inv_freq, the half
// repeated; checked against double precision.
TEST(RopeTableTest, FromThetaMatchesTheRotaryFormula) {
  const size_t max_seq = 4096, dim = 128;
  const double theta = 1e6;
  const RopeTable r = RopeTable::FromTheta(theta, max_seq, dim);
  ASSERT_EQ(r.cos.size(), max_seq * dim);
  double worst = 0;
  for (size_t pos : {size_t{0}, size_t{1}, size_t{7}, size_t{1000}, size_t{4095}}) {
    for (size_t i = 0; i < dim / 2; ++i) {
      const double inv = std::pow(theta, -2.0 * static_cast<double>(i) / dim);
      const double angle = static_cast<double>(pos) * static_cast<float>(inv);
      for (size_t half : {size_t{0}, dim / 2}) {
        worst = std::max(worst, std::fabs(r.cos[pos * dim + i + half] - std::cos(angle)));
        worst = std::max(worst, std::fabs(r.sin[pos * dim + i + half] - std::sin(angle)));
      }
    }
  }
  // fp32 angles up to 4095 rad: the rounding of pos * inv_freq dominates (4095 * 2^-24 ~ 2.4e-4).
  EXPECT_LT(worst, 5e-4);
  EXPECT_EQ(r.cos[0], 1.0f);
  EXPECT_EQ(r.sin[0], 0.0f);
}

TEST(LayerWeightsTest, CopyFiniteNamesTheBadElement) {
  std::vector<float> v = {1.0f, 2.0f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_TRUE(ThrowsError([&] { CopyFinite(v.data(), v.size(), "post_rms_weight"); },
                          {"post_rms_weight", "element 2", "NaN"}));
  v[2] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(ThrowsError([&] { CopyFinite(v.data(), v.size(), "rope_cos"); },
                          {"rope_cos", "element 2", "Inf"}));
  v[2] = 3.0f;
  const AlignedBuffer<float> copy = CopyFinite(v.data(), v.size(), "ok");
  EXPECT_EQ(copy[2], 3.0f);
}

}  // namespace
}  // namespace qwen3
