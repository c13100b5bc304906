// Sampling: determinism, temperature, top-k/p, min-p, penalties, the padded vocab, errors.
#include "generate/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "tests/error_matchers.h"

namespace qwen3 {
namespace {



// ---- Sampler ----

TEST(SamplerTest, GreedyIsArgmaxAndNeverAPaddedId) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f, 9.0f, 8.0f};  // ids 4, 5: padding
  Sampler s({}, 4);
  EXPECT_EQ(s.Sample(logits, {}, 0, 0, 0), 1);
  SamplingOptions hot;
  hot.temperature = 5.0f;
  Sampler t(hot, 4);
  for (uint64_t step = 0; step < 500; ++step) EXPECT_LT(t.Sample(logits, {}, 0, 0, step), 4);
}

// Draw frequencies follow softmax(logits / T); the same (seed, stream, step) draws the same.
TEST(SamplerTest, TemperatureSamplingFollowsTheSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.0f, 1.5f};
  SamplingOptions o;
  o.temperature = 0.8f;
  o.seed = 42;
  Sampler s(o, logits.size());
  std::map<int32_t, int> count;
  const int n = 20000;
  for (int step = 0; step < n; ++step) ++count[s.Sample(logits, {}, 0, 3, step)];
  double z = 0;
  for (float l : logits) z += std::exp(l / 0.8);
  for (int32_t id = 0; id < 4; ++id) {
    const double p = std::exp(logits[id] / 0.8) / z;
    EXPECT_NEAR(count[id] / static_cast<double>(n), p, 4 * std::sqrt(p * (1 - p) / n)) << id;
  }
  Sampler again(o, logits.size());
  for (int step = 0; step < 50; ++step) {
    EXPECT_EQ(again.Sample(logits, {}, 0, 3, step), s.Sample(logits, {}, 0, 3, step));
  }
}

TEST(SamplerTest, TopKTopPMinPNarrowTheCandidates) {
  const std::vector<float> logits = {3.0f, 2.9f, 0.0f, -1.0f, 2.8f};
  const auto drawn = [&](SamplingOptions o) {
    o.temperature = 1.0f;
    Sampler s(o, logits.size());
    std::set<int32_t> ids;
    for (int step = 0; step < 400; ++step) ids.insert(s.Sample(logits, {}, 0, 0, step));
    return ids;
  };
  SamplingOptions k2;
  k2.top_k = 2;
  EXPECT_EQ(drawn(k2), (std::set<int32_t>{0, 1}));
  SamplingOptions p_small;
  p_small.top_p = 0.2f;  // the top token alone holds more than 20%
  EXPECT_EQ(drawn(p_small), (std::set<int32_t>{0}));
  SamplingOptions minp;
  minp.min_p = 0.5f;  // e^-0.2 = 0.82 of the top stays; e^-3 = 0.05 goes
  EXPECT_EQ(drawn(minp), (std::set<int32_t>{0, 1, 4}));
  EXPECT_EQ(drawn({}).size(), 5u);
}

TEST(SamplerTest, PenaltiesDiscourageRepeats) {
  const std::vector<float> logits = {2.0f, 1.9f, -1.0f};
  const std::vector<int32_t> history = {0, 0};
  SamplingOptions rep;
  rep.repetition_penalty = 1.2f;  // 2.0 / 1.2 = 1.67 < 1.9
  EXPECT_EQ(Sampler(rep, 3).Sample(logits, history, 0, 0, 0), 1);
  SamplingOptions pres;
  pres.presence_penalty = 0.5f;
  EXPECT_EQ(Sampler(pres, 3).Sample(logits, history, 0, 0, 0), 1);
  EXPECT_EQ(Sampler({}, 3).Sample(logits, history, 0, 0, 0), 0);
}

// OpenAI's presence and frequency penalties count generated tokens only; the repetition
// penalty (vLLM's) counts the prompt too.
TEST(SamplerTest, PresenceAndFrequencyCountOnlyGeneratedTokens) {
  const std::vector<float> logits = {2.0f, 1.6f, 0.0f};
  const std::vector<int32_t> history = {0, 0, 2, 0};  // prompt {0, 0}, generated {2, 0}
  SamplingOptions pres;
  pres.presence_penalty = 0.5f;  // token 0 generated once: 2.0 - 0.5 = 1.5 < 1.6
  EXPECT_EQ(Sampler(pres, 3).Sample(logits, history, 2, 0, 0), 1);
  EXPECT_EQ(Sampler(pres, 3).Sample(logits, history, 4, 0, 0), 0) << "all prompt: no penalty";
  SamplingOptions freq;
  freq.frequency_penalty = 0.3f;  // once generated: 1.7 > 1.6; twice: 1.4 < 1.6
  EXPECT_EQ(Sampler(freq, 3).Sample(logits, history, 2, 0, 0), 0);
  EXPECT_EQ(Sampler(freq, 3).Sample(logits, history, 0, 0, 0), 1) << "three occurrences";
  SamplingOptions rep;
  rep.repetition_penalty = 1.5f;  // 2.0 / 1.5 = 1.33 < 1.6, prompt-only occurrences count
  EXPECT_EQ(Sampler(rep, 3).Sample(logits, std::vector<int32_t>{0}, 1, 0, 0), 1);
}

TEST(SamplerTest, BadOptionsAreErrors) {
  SamplingOptions o;
  o.temperature = -1;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"temperature", "expected >= 0"}));
  o = {};
  o.top_p = 0;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"top_p", "(0, 1]"}));
  o = {};
  o.min_p = 1;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"min_p", "[0, 1)"}));
  o = {};
  o.top_k = -3;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"top_k -3"}));
  o = {};
  o.repetition_penalty = 0;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"repetition_penalty"}));
  o = {};
  o.presence_penalty = 2.5f;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"presence_penalty", "[-2, 2]"}));
  o = {};
  o.frequency_penalty = -3;
  EXPECT_TRUE(ThrowsError([&] { ValidateSampling(o); }, {"frequency_penalty", "[-2, 2]"}));
}

}  // namespace
}  // namespace qwen3
