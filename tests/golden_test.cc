// The golden itself (spec §4): AllClose's torch.allclose semantics, the synthetic inputs'
// distributions and metadata, the golden's KV writes (exactly the current slots), and one
// small case recomputed independently in double precision from the spec's formulas.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "base/bf16.h"
#include "golden/compare.h"
#include "golden/reference.h"
#include "golden/synthetic.h"
#include "model/config.h"
#include "model/layer_tensors.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// AllClose: |a - e| > atol + rtol * |e| (or NaN) is a mismatch.

TEST(AllClose, EqualArraysPass) {
  const std::vector<float> a = {1.0f, -2.0f, 0.0f, 3.5f};
  const CompareResult r = AllClose(a.data(), a.data(), a.size(), 0.0, 0.0);
  EXPECT_TRUE(r.pass());
  EXPECT_EQ(r.count, 4u);
  EXPECT_EQ(r.mismatches, 0u);
  EXPECT_EQ(r.max_abs, 0.0);
  EXPECT_EQ(r.max_rel, 0.0);
}

TEST(AllClose, EmptyPasses) {
  const CompareResult r = AllClose(nullptr, nullptr, 0, 1e-3, 1e-3);
  EXPECT_TRUE(r.pass());
  EXPECT_EQ(r.count, 0u);
}

TEST(AllClose, ToleranceBoundaryIsInclusive) {
  // tol = 0.25 + 0.125 * |2| = 0.5, all exactly representable.
  const std::vector<float> e = {2.0f, 2.0f, -2.0f, -2.0f};
  const std::vector<float> at_limit = {2.5f, 1.5f, -2.5f, -1.5f};
  CompareResult r = AllClose(at_limit.data(), e.data(), 4, 0.125, 0.25);
  EXPECT_TRUE(r.pass()) << r.mismatches;
  EXPECT_EQ(r.max_abs, 0.5);
  EXPECT_EQ(r.max_rel, 0.25);

  const std::vector<float> past = {std::nextafter(2.5f, 3.0f), 1.5f, -2.5f,
                                   std::nextafter(-1.5f, 0.0f)};
  r = AllClose(past.data(), e.data(), 4, 0.125, 0.25);
  EXPECT_FALSE(r.pass());
  EXPECT_EQ(r.mismatches, 2u);
}

TEST(AllClose, RtolScalesWithExpectedAtolDoesNot) {
  const std::vector<float> e = {1000.0f, 0.001f};
  const std::vector<float> a = {1001.0f, 0.0015f};
  // rtol 1e-3: 1000 -> tol 1 (ok); 0.001 -> tol 1e-6 (0.0005 off: mismatch).
  CompareResult r = AllClose(a.data(), e.data(), 2, 1e-3, 0.0);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.worst, 1u);
  // atol 1e-3 covers the small one, not the large one.
  r = AllClose(a.data(), e.data(), 2, 0.0, 1e-3);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.worst, 0u);
}

TEST(AllClose, WorstIsLargestExcessNotLargestDifference) {
  // Element 0 is off by 0.5 within tol 1; element 2 is off by 0.3 with tol 0.01.
  const std::vector<float> e = {100.0f, 5.0f, 1.0f, 2.0f};
  const std::vector<float> a = {100.5f, 5.0f, 1.3f, 2.05f};
  const CompareResult r = AllClose(a.data(), e.data(), 4, 0.01, 0.0);
  EXPECT_EQ(r.mismatches, 2u);  // elements 2 and 3
  EXPECT_EQ(r.worst, 2u);
  EXPECT_FLOAT_EQ(static_cast<float>(r.worst_actual), 1.3f);
  EXPECT_FLOAT_EQ(static_cast<float>(r.worst_expected), 1.0f);
  EXPECT_NEAR(r.max_abs, 0.5, 1e-6);
  EXPECT_NEAR(r.max_rel, 0.3, 1e-6);  // 0.3 / 1.0
}

TEST(AllClose, MaxRelSkipsZeroExpected) {
  const std::vector<float> e = {0.0f, 4.0f};
  const std::vector<float> a = {1e-4f, 4.004f};
  const CompareResult r = AllClose(a.data(), e.data(), 2, 2e-3, 1e-3);
  EXPECT_TRUE(r.pass());
  EXPECT_NEAR(r.max_rel, 0.001, 1e-6);  // from element 1 only, not 1e-4 / 0
}

TEST(AllClose, NaNIsAlwaysAMismatch) {
  const std::vector<float> e = {1.0f, 1.0f, kNaN, kNaN, 1.0f};
  const std::vector<float> a = {1.0f, kNaN, 1.0f, kNaN, 1.5f};
  const CompareResult r = AllClose(a.data(), e.data(), 5, 1e9, 1e9);  // huge tolerance
  EXPECT_EQ(r.mismatches, 3u);  // NaN in actual, in expected, in both (equal_nan = False)
  EXPECT_FALSE(r.pass());
  EXPECT_TRUE(r.worst == 1 || r.worst == 2 || r.worst == 3) << r.worst;
  // NaNs do not poison the error statistics.
  EXPECT_NEAR(r.max_abs, 0.5, 1e-9);
  EXPECT_FALSE(std::isnan(r.max_rel));
}

TEST(AllClose, SingleNaNAmongGoodValuesIsWorst) {
  std::vector<float> e(100, 1.0f), a(100, 1.001f);
  a[37] = kNaN;
  const CompareResult r = AllClose(a.data(), e.data(), 100, 3e-3, 3e-3);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.worst, 37u);
  EXPECT_TRUE(std::isnan(r.worst_actual));
}

TEST(AllClose, InfAgainstFiniteIsAMismatch) {
  const std::vector<float> e = {1.0f, 1.0f};
  const std::vector<float> a = {1.0f, kInf};
  const CompareResult r = AllClose(a.data(), e.data(), 2, 1e3, 1e3);
  EXPECT_EQ(r.mismatches, 1u);
  EXPECT_EQ(r.worst, 1u);
}

// ---------------------------------------------------------------------------------------------
// Synthetic inputs (spec §4).

Qwen3Config TinyConfig(int vocab = 1000) {
  Qwen3Config c;
  c.name = "golden-test-tiny";
  c.hidden = 256;
  c.intermediate = 768;
  c.layers = 1;
  c.heads = 8;
  c.kv_heads = 2;
  c.head_dim = 64;
  c.vocab = vocab;
  ValidateConfig(c);
  return c;
}

LayerShape TinyShape(size_t batch, size_t max_seq = 512) {
  LayerShape s;
  s.config = TinyConfig();
  s.batch = batch;
  s.max_seq = max_seq;
  s.block_size = 128;
  return s;
}

struct Stats {
  double min = INFINITY, max = -INFINITY, mean = 0, var = 0;
};

template <typename T>
Stats StatsOf(const AlignedBuffer<T>& buf) {
  Stats s;
  double sum = 0, sq = 0;
  for (const T& raw : buf) {
    double x;
    if constexpr (sizeof(T) == sizeof(bf16)) {
      x = Bf16ToF32(raw);
    } else {
      x = raw;
    }
    s.min = std::min(s.min, x);
    s.max = std::max(s.max, x);
    sum += x;
    sq += x * x;
  }
  const double n = static_cast<double>(buf.size());
  s.mean = sum / n;
  s.var = sq / n - s.mean * s.mean;
  return s;
}

// U[lo, hi) scaled: every value within [lo, hi] (hi inclusive: bf16 rounding may reach it),
// mean and variance those of the uniform distribution.
template <typename T>
void ExpectUniform(const AlignedBuffer<T>& buf, double lo, double hi, const char* name) {
  SCOPED_TRACE(name);
  ASSERT_FALSE(buf.empty());
  const Stats s = StatsOf(buf);
  const double width = hi - lo;
  // Rounding is monotonic: bf16 values stay within the rounded bounds.
  if constexpr (sizeof(T) == sizeof(bf16)) {
    EXPECT_GE(s.min, RoundBf16(static_cast<float>(lo)));
    EXPECT_LE(s.max, RoundBf16(static_cast<float>(hi)));
  } else {
    EXPECT_GE(s.min, lo);
    EXPECT_LE(s.max, hi);
  }
  // The extremes are approached: the values span the whole interval.
  EXPECT_LT(s.min, lo + 0.02 * width);
  EXPECT_GT(s.max, hi - 0.02 * width);
  EXPECT_NEAR(s.mean, (lo + hi) / 2, 0.02 * width);
  EXPECT_NEAR(s.var, width * width / 12, 0.1 * width * width / 12);
}

TEST(Synthetic, DistributionsFollowSpec) {
  ThreadPool pool(2);
  const LayerShape shape = TinyShape(5);
  const LayerTensors t = MakeSyntheticLayer(shape, {}, pool);
  const Qwen3Config& c = shape.config;
  const double inv_h = 1.0 / std::sqrt(double(c.hidden));
  const double inv_i = 1.0 / std::sqrt(double(c.intermediate));
  const double s = 0.5;

  ExpectUniform(t.hidden, -0.5, 0.5, "hidden");
  ExpectUniform(t.input_rms_weight, -0.5, 0.5, "input_rms_weight");
  // fp32 tensors keep U - 0.5 < 0.5 strictly.
  for (float x : t.input_rms_weight) ASSERT_LT(x, 0.5f);
  ExpectUniform(t.wq, 0.0, inv_h, "wq");  // all non-negative: rand / sqrt(H)
  ExpectUniform(t.wk, 0.0, inv_h, "wk");
  ExpectUniform(t.wv, 0.0, s * inv_h, "wv");
  ExpectUniform(t.wo, -0.5 * s * inv_h, 0.5 * s * inv_h, "wo");
  ExpectUniform(t.w_gate, -0.5 * s * inv_h, 0.5 * s * inv_h, "w_gate");
  ExpectUniform(t.w_up, -0.5 * s * inv_h, 0.5 * s * inv_h, "w_up");
  ExpectUniform(t.w_down, -0.5 * s * inv_i, 0.5 * s * inv_i, "w_down");
  ExpectUniform(t.lm_head, -0.5 * s * inv_h, 0.5 * s * inv_h, "lm_head");
  ExpectUniform(t.rope_cos, -0.5, 0.5, "rope_cos");
  ExpectUniform(t.rope_sin, -0.5, 0.5, "rope_sin");
  for (float x : t.rope_cos) ASSERT_LT(x, 0.5f);
  ExpectUniform(t.k_cache, -0.5, 0.5, "k_cache");
  ExpectUniform(t.v_cache, -0.5 * s, 0.5 * s, "v_cache");
  // wq's bound in bf16: strictly below 1/sqrt(H) up to the final rounding.
  for (bf16 x : t.wq) ASSERT_LE(Bf16ToF32(x), RoundBf16(static_cast<float>(inv_h)));

  for (const AlignedBuffer<float>* ones :
       {&t.q_norm_weight, &t.k_norm_weight, &t.post_rms_weight, &t.final_norm_weight}) {
    for (float x : *ones) ASSERT_EQ(x, 1.0f);
  }
  EXPECT_EQ(t.q_norm_weight.size(), size_t(c.head_dim));
  EXPECT_EQ(t.k_norm_weight.size(), size_t(c.head_dim));
  EXPECT_EQ(t.post_rms_weight.size(), size_t(c.hidden));
  EXPECT_EQ(t.final_norm_weight.size(), size_t(c.hidden));
}

TEST(Synthetic, ShapesFollowSpec) {
  ThreadPool pool(2);
  LayerShape shape = TinyShape(5);
  const Qwen3Config& c = shape.config;
  const size_t h = c.hidden, q = c.QDim(), kv = c.KvDim(), inter = c.intermediate;
  const size_t mb = shape.MaxBlocksPerSeq();
  EXPECT_EQ(mb, 4u);
  LayerTensors t = MakeSyntheticLayer(shape, {}, pool);
  EXPECT_EQ(t.hidden.size(), 5 * h);
  EXPECT_EQ(t.input_rms_weight.size(), h);
  EXPECT_EQ(t.wq.size(), h * q);
  EXPECT_EQ(t.wk.size(), h * kv);
  EXPECT_EQ(t.wv.size(), h * kv);
  EXPECT_EQ(t.wo.size(), q * h);
  EXPECT_EQ(t.w_gate.size(), h * inter);
  EXPECT_EQ(t.w_up.size(), h * inter);
  EXPECT_EQ(t.w_down.size(), inter * h);
  EXPECT_EQ(t.rope_cos.size(), 512u * c.head_dim);
  EXPECT_EQ(t.rope_sin.size(), 512u * c.head_dim);
  EXPECT_EQ(t.seq_lens.size(), 5u);
  EXPECT_EQ(t.block_table.size(), 5 * mb);
  EXPECT_EQ(t.slot_mapping.size(), 5u);
  // KV pool: batch * max_blocks_per_seq blocks of kv_heads * block_size rows by default...
  EXPECT_EQ(t.k_cache.size(), 5 * mb * c.kv_heads * 128 * c.head_dim);
  EXPECT_EQ(t.v_cache.size(), t.k_cache.size());
  // ... or the pool asked for.
  shape.num_blocks = 33;
  t = MakeSyntheticLayer(shape, {}, pool);
  EXPECT_EQ(t.k_cache.size(), 33u * c.kv_heads * 128 * c.head_dim);
}

// Every slot is where block_table puts the user's current token (pos = seq_len - 1).
void ExpectMetadataConsistent(const LayerShape& shape, const LayerTensors& t) {
  const size_t mb = shape.MaxBlocksPerSeq(), bs = shape.block_size;
  for (size_t b = 0; b < shape.batch; ++b) {
    for (size_t sb = 0; sb < mb; ++sb) {
      ASSERT_EQ(t.block_table[b * mb + sb], int32_t(b * mb + sb)) << "b " << b << " sb " << sb;
    }
    ASSERT_GE(t.seq_lens[b], 1);
    ASSERT_LE(t.seq_lens[b], int32_t(shape.max_seq));
    const size_t pos = size_t(t.seq_lens[b]) - 1;
    EXPECT_EQ(t.slot_mapping[b], int32_t(t.block_table[b * mb + pos / bs] * bs + pos % bs))
        << "user " << b;
  }
}

TEST(Synthetic, MetadataAllMaxSeq) {
  ThreadPool pool(2);
  const LayerShape shape = TinyShape(16, 4096);
  SyntheticOptions o;
  o.all_max_seq = true;
  const LayerTensors t = MakeSyntheticLayer(shape, o, pool);
  for (int32_t len : t.seq_lens) EXPECT_EQ(len, 4096);
  ExpectMetadataConsistent(shape, t);
  // The last token of user b sits at the end of its last block.
  for (size_t b = 0; b < 16; ++b) EXPECT_EQ(t.slot_mapping[b], int32_t((b + 1) * 32 * 128 - 1));
}

TEST(Synthetic, MetadataRandomLengths) {
  ThreadPool pool(2);
  const LayerShape shape = TinyShape(64, 512);
  const LayerTensors t = MakeSyntheticLayer(shape, {}, pool);
  ExpectMetadataConsistent(shape, t);
  const auto [lo, hi] = std::minmax_element(t.seq_lens.begin(), t.seq_lens.end());
  EXPECT_LT(*lo, 128);  // 64 draws from 1..512 spread over the range
  EXPECT_GT(*hi, 384);
  // Not the max-seq mode.
  EXPECT_LT(std::count(t.seq_lens.begin(), t.seq_lens.end(), 512), 8);
}

TEST(Synthetic, SameSeedSameTensorsOtherSeedDiffers) {
  ThreadPool pool2(2), pool1(1);
  const LayerShape shape = TinyShape(5);
  SyntheticOptions o;
  o.seed = 42;
  const LayerTensors a = MakeSyntheticLayer(shape, o, pool2);
  const LayerTensors b = MakeSyntheticLayer(shape, o, pool1);  // thread count is irrelevant
  o.seed = 43;
  const LayerTensors d = MakeSyntheticLayer(shape, o, pool2);
  auto same = [](const auto& x, const auto& y) {
    return x.size() == y.size() &&
           std::memcmp(x.data(), y.data(), x.size() * sizeof(*x.data())) == 0;
  };
#define QW_EXPECT_TENSOR(name)                \
  EXPECT_TRUE(same(a.name, b.name)) << #name; \
  EXPECT_FALSE(same(a.name, d.name)) << #name
  QW_EXPECT_TENSOR(hidden);
  QW_EXPECT_TENSOR(input_rms_weight);
  QW_EXPECT_TENSOR(wq);
  QW_EXPECT_TENSOR(wk);
  QW_EXPECT_TENSOR(wv);
  QW_EXPECT_TENSOR(rope_cos);
  QW_EXPECT_TENSOR(rope_sin);
  QW_EXPECT_TENSOR(k_cache);
  QW_EXPECT_TENSOR(v_cache);
  QW_EXPECT_TENSOR(wo);
  QW_EXPECT_TENSOR(w_gate);
  QW_EXPECT_TENSOR(w_up);
  QW_EXPECT_TENSOR(w_down);
  QW_EXPECT_TENSOR(lm_head);
  QW_EXPECT_TENSOR(seq_lens);
  QW_EXPECT_TENSOR(slot_mapping);
#undef QW_EXPECT_TENSOR
  EXPECT_TRUE(same(a.block_table, d.block_table));  // the identity in every seed
  // Different tensors of one seed are different streams.
  EXPECT_FALSE(same(a.wq, a.wk) && a.wq.size() == a.wk.size());
}

TEST(Synthetic, TensorValuesDoNotDependOnBatch) {
  // Counter-based streams: user b's hidden row, length and KV blocks are the same whether
  // the batch is 5 or 16.
  ThreadPool pool(2);
  const LayerShape s5 = TinyShape(5), s16 = TinyShape(16);
  const LayerTensors a = MakeSyntheticLayer(s5, {}, pool);
  const LayerTensors b = MakeSyntheticLayer(s16, {}, pool);
  ASSERT_EQ(0, std::memcmp(a.hidden.data(), b.hidden.data(), a.hidden.size() * sizeof(bf16)));
  ASSERT_EQ(0, std::memcmp(a.k_cache.data(), b.k_cache.data(), a.k_cache.size() * sizeof(bf16)));
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(a.seq_lens[i], b.seq_lens[i]);
}

TEST(Synthetic, LmRowsPerMode) {
  ThreadPool pool(2);
  LayerShape shape = TinyShape(2);
  const size_t h = shape.config.hidden;
  struct Mode {
    LmHeadMode mode;
    size_t rows;
  };
  for (const Mode m :
       {Mode{LmHeadMode::kFull, 1000}, Mode{LmHeadMode::kSingle, 64}, Mode{LmHeadMode::kSkip, 0}}) {
    SCOPED_TRACE(ToString(m.mode));
    SyntheticOptions o;
    o.lm_head = m.mode;
    const LayerTensors t = MakeSyntheticLayer(shape, o, pool);
    EXPECT_EQ(t.lm_rows, m.rows);
    EXPECT_EQ(t.lm_head.size(), m.rows * h);
    EXPECT_EQ(LmHeadRows(m.mode, 1000), m.rows);
  }
  // The single-chunk mode of a vocab under 64 reads the whole vocab.
  EXPECT_EQ(LmHeadRows(LmHeadMode::kSingle, 32), 32u);
  EXPECT_EQ(LmHeadRows(LmHeadMode::kFull, 152064), 152064u);
  // Same seed: the single chunk is the first 64 rows of the full head.
  SyntheticOptions full, single;
  single.lm_head = LmHeadMode::kSingle;
  const LayerTensors a = MakeSyntheticLayer(shape, full, pool);
  const LayerTensors b = MakeSyntheticLayer(shape, single, pool);
  EXPECT_EQ(0, std::memcmp(a.lm_head.data(), b.lm_head.data(), 64 * h * sizeof(bf16)));
}

// ---------------------------------------------------------------------------------------------
// GoldenDecodeLayer: writes exactly the current slots, and its values check out against an
// independent double-precision evaluation of the spec's formulas.

// The synthetic layer with explicit seq_lens (the harness's --seq-lens).
LayerTensors WithSeqLens(const LayerShape& shape, const SyntheticOptions& o,
                         const std::vector<int32_t>& lens, ThreadPool& pool) {
  LayerTensors t = MakeSyntheticLayer(shape, o, pool);
  const size_t mb = shape.MaxBlocksPerSeq(), bs = shape.block_size;
  for (size_t b = 0; b < shape.batch; ++b) {
    const size_t pos = size_t(lens[b]) - 1;
    t.seq_lens[b] = lens[b];
    t.slot_mapping[b] = int32_t(t.block_table[b * mb + pos / bs] * bs + pos % bs);
  }
  return t;
}

TEST(GoldenDecodeLayer, WritesExactlyTheCurrentSlots) {
  ThreadPool pool(2);
  const LayerShape shape = TinyShape(5);
  const std::vector<int32_t> lens = {1, 127, 128, 129, 512};
  LayerTensors t = WithSeqLens(shape, {}, lens, pool);
  const std::vector<bf16> k0(t.k_cache.begin(), t.k_cache.end());
  const std::vector<bf16> v0(t.v_cache.begin(), t.v_cache.end());
  const std::vector<bf16> hidden0(t.hidden.begin(), t.hidden.end());
  const GoldenOutputs g = GoldenDecodeLayer(shape, t, pool);
  EXPECT_EQ(g.next_hidden.size(), 5u * shape.config.hidden);
  EXPECT_EQ(g.out.size(), 5u * shape.config.vocab);

  const size_t dim = shape.config.head_dim, heads_kv = shape.config.kv_heads, bs = 128;
  std::vector<bool> current(t.k_cache.size() / dim, false);
  for (size_t b = 0; b < 5; ++b) {
    const size_t slot = size_t(t.slot_mapping[b]);
    for (size_t kvh = 0; kvh < heads_kv; ++kvh) {
      const size_t row = ((slot / bs) * heads_kv + kvh) * bs + slot % bs;
      current[row] = true;
      EXPECT_NE(0, std::memcmp(&t.k_cache[row * dim], &k0[row * dim], dim * sizeof(bf16)))
          << "K of user " << b << " head " << kvh << " not written";
      EXPECT_NE(0, std::memcmp(&t.v_cache[row * dim], &v0[row * dim], dim * sizeof(bf16)))
          << "V of user " << b << " head " << kvh << " not written";
    }
  }
  size_t changed = 0;
  for (size_t row = 0; row < current.size(); ++row) {
    if (current[row]) continue;
    changed += std::memcmp(&t.k_cache[row * dim], &k0[row * dim], dim * sizeof(bf16)) != 0;
    changed += std::memcmp(&t.v_cache[row * dim], &v0[row * dim], dim * sizeof(bf16)) != 0;
  }
  EXPECT_EQ(changed, 0u) << "rows other than the current slots were written";
  EXPECT_TRUE(std::equal(hidden0.begin(), hidden0.end(), t.hidden.begin()));

  // Running again on the written cache rewrites the same values: same outputs.
  const GoldenOutputs again = GoldenDecodeLayer(shape, t, pool);
  EXPECT_EQ(again.next_hidden, g.next_hidden);
  EXPECT_EQ(again.out, g.out);
}

TEST(GoldenDecodeLayer, DeterministicAndThreadCountIndependent) {
  ThreadPool pool1(1), pool2(2);
  const LayerShape shape = TinyShape(3);
  LayerTensors a = MakeSyntheticLayer(shape, {}, pool1);
  LayerTensors b = MakeSyntheticLayer(shape, {}, pool2);
  const GoldenOutputs ga = GoldenDecodeLayer(shape, a, pool1);
  const GoldenOutputs gb = GoldenDecodeLayer(shape, b, pool2);
  EXPECT_EQ(ga.next_hidden, gb.next_hidden);
  EXPECT_EQ(ga.out, gb.out);
  for (float x : ga.out) ASSERT_TRUE(std::isfinite(x));
}

TEST(GoldenDecodeLayer, SingleAndSkipModesZeroTheRest) {
  ThreadPool pool(2);
  const LayerShape shape = TinyShape(3);
  SyntheticOptions o;
  LayerTensors full_t = MakeSyntheticLayer(shape, o, pool);
  const GoldenOutputs full = GoldenDecodeLayer(shape, full_t, pool);
  o.lm_head = LmHeadMode::kSingle;
  LayerTensors single_t = MakeSyntheticLayer(shape, o, pool);
  const GoldenOutputs single = GoldenDecodeLayer(shape, single_t, pool);
  o.lm_head = LmHeadMode::kSkip;
  LayerTensors skip_t = MakeSyntheticLayer(shape, o, pool);
  const GoldenOutputs skip = GoldenDecodeLayer(shape, skip_t, pool);
  const size_t vocab = shape.config.vocab;
  EXPECT_EQ(single.next_hidden, full.next_hidden);
  EXPECT_EQ(skip.next_hidden, full.next_hidden);
  for (size_t b = 0; b < 3; ++b) {
    for (size_t v = 0; v < vocab; ++v) {
      const float f = full.out[b * vocab + v];
      ASSERT_EQ(single.out[b * vocab + v], v < 64 ? f : 0.0f) << b << "," << v;
      ASSERT_EQ(skip.out[b * vocab + v], 0.0f);
    }
  }
}

// The spec's formulas (§3-§4) in double, rounding to bf16 where the seed does. Single-block
// contexts, so the softmax is one pass (no online merge).
struct DoubleReference {
  std::vector<double> next_hidden, out;
};

double Rb(double x) { return RoundBf16(static_cast<float>(x)); }

std::vector<double> RmsNormRb(const double* x, size_t n, const float* w, double eps) {
  double sq = 0;
  for (size_t i = 0; i < n; ++i) sq += x[i] * x[i];
  const double inv = 1.0 / std::sqrt(sq / double(n) + eps);
  std::vector<double> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = Rb(x[i] * inv * w[i]);
  return y;
}

std::vector<double> MatVec(const std::vector<double>& a, const bf16* w, size_t k, size_t n) {
  std::vector<double> y(n, 0.0);
  for (size_t kk = 0; kk < k; ++kk) {
    for (size_t j = 0; j < n; ++j) y[j] += a[kk] * Bf16ToF32(w[kk * n + j]);
  }
  return y;
}

DoubleReference ReferenceInDouble(const LayerShape& shape, const LayerTensors& t0) {
  const Qwen3Config& c = shape.config;
  const size_t h = c.hidden, q_dim = c.QDim(), kv_dim = c.KvDim(), dim = c.head_dim;
  const size_t heads_kv = c.kv_heads, group = c.GroupSize(), inter = c.intermediate;
  const size_t bs = shape.block_size, mb = shape.MaxBlocksPerSeq(), half = dim / 2;
  const double eps = c.rms_norm_eps, scale = 1.0 / std::sqrt(double(dim));
  std::vector<bf16> k_cache(t0.k_cache.begin(), t0.k_cache.end());
  std::vector<bf16> v_cache(t0.v_cache.begin(), t0.v_cache.end());

  auto norm_rope = [&](const double* x, const float* w, size_t pos) {
    double sq = 0;
    for (size_t d = 0; d < dim; ++d) sq += x[d] * x[d];
    const double inv = 1.0 / std::sqrt(sq / double(dim) + eps);
    const float* cs = t0.rope_cos.data() + pos * dim;
    const float* sn = t0.rope_sin.data() + pos * dim;
    std::vector<double> y(dim), out(dim);
    for (size_t d = 0; d < dim; ++d) y[d] = x[d] * inv * w[d];
    for (size_t d = 0; d < half; ++d) {
      out[d] = Rb(y[d] * cs[d] - y[d + half] * sn[d]);
      out[d + half] = Rb(y[d + half] * cs[d + half] + y[d] * sn[d + half]);
    }
    return out;
  };

  DoubleReference r;
  r.next_hidden.resize(shape.batch * h);
  r.out.assign(shape.batch * size_t(c.vocab), 0.0);
  // Every user's K/V goes in before any attention (the cache is shared).
  std::vector<std::vector<double>> q_rot(shape.batch), xs(shape.batch);
  for (size_t b = 0; b < shape.batch; ++b) {
    std::vector<double> x(h);
    for (size_t i = 0; i < h; ++i) x[i] = Bf16ToF32(t0.hidden[b * h + i]);
    const std::vector<double> normed = RmsNormRb(x.data(), h, t0.input_rms_weight.data(), eps);
    const std::vector<double> q = MatVec(normed, t0.wq.data(), h, q_dim);
    const std::vector<double> k = MatVec(normed, t0.wk.data(), h, kv_dim);
    const std::vector<double> v = MatVec(normed, t0.wv.data(), h, kv_dim);
    const size_t pos = size_t(t0.seq_lens[b]) - 1, slot = size_t(t0.slot_mapping[b]);
    for (size_t kvh = 0; kvh < heads_kv; ++kvh) {
      const std::vector<double> kr = norm_rope(&k[kvh * dim], t0.k_norm_weight.data(), pos);
      const size_t row = ((slot / bs) * heads_kv + kvh) * bs + slot % bs;
      for (size_t d = 0; d < dim; ++d) {
        k_cache[row * dim + d] = F32ToBf16(float(kr[d]));
        v_cache[row * dim + d] = F32ToBf16(float(v[kvh * dim + d]));
      }
    }
    q_rot[b].resize(q_dim);
    for (size_t head = 0; head < size_t(c.heads); ++head) {
      const std::vector<double> qr = norm_rope(&q[head * dim], t0.q_norm_weight.data(), pos);
      std::copy(qr.begin(), qr.end(), q_rot[b].begin() + head * dim);
    }
    xs[b] = std::move(x);
  }
  for (size_t b = 0; b < shape.batch; ++b) {
    const size_t len = size_t(t0.seq_lens[b]);
    std::vector<double> attn(q_dim);
    for (size_t head = 0; head < size_t(c.heads); ++head) {
      const size_t kvh = head / group;
      const size_t base = (size_t(t0.block_table[b * mb]) * heads_kv + kvh) * bs;
      std::vector<double> s(len);
      for (size_t tok = 0; tok < len; ++tok) {
        double dot = 0;
        for (size_t d = 0; d < dim; ++d) {
          dot += q_rot[b][head * dim + d] * Bf16ToF32(k_cache[(base + tok) * dim + d]);
        }
        s[tok] = dot * scale;
      }
      const double m = *std::max_element(s.begin(), s.end());
      double l = 0;
      std::vector<double> o(dim, 0.0);
      for (size_t tok = 0; tok < len; ++tok) {
        const double e = Rb(std::exp(s[tok] - m));
        l += e;
        for (size_t d = 0; d < dim; ++d) o[d] += e * Bf16ToF32(v_cache[(base + tok) * dim + d]);
      }
      for (size_t d = 0; d < dim; ++d) attn[head * dim + d] = Rb(o[d] / l);
    }
    const std::vector<double> o_proj = MatVec(attn, t0.wo.data(), q_dim, h);
    std::vector<double> resid1(h);
    for (size_t i = 0; i < h; ++i) resid1[i] = o_proj[i] + xs[b][i];
    const std::vector<double> post = RmsNormRb(resid1.data(), h, t0.post_rms_weight.data(), eps);
    const std::vector<double> gate = MatVec(post, t0.w_gate.data(), h, inter);
    const std::vector<double> up = MatVec(post, t0.w_up.data(), h, inter);
    std::vector<double> mlp(inter);
    for (size_t i = 0; i < inter; ++i) mlp[i] = Rb(gate[i] / (1.0 + std::exp(-gate[i])) * up[i]);
    const std::vector<double> down = MatVec(mlp, t0.w_down.data(), inter, h);
    std::vector<double> next(h);
    for (size_t i = 0; i < h; ++i) next[i] = r.next_hidden[b * h + i] = Rb(down[i] + resid1[i]);
    const std::vector<double> fin = RmsNormRb(next.data(), h, t0.final_norm_weight.data(), eps);
    for (size_t v = 0; v < t0.lm_rows; ++v) {
      double acc = 0;
      for (size_t i = 0; i < h; ++i) acc += fin[i] * Bf16ToF32(t0.lm_head[v * h + i]);
      r.out[b * size_t(c.vocab) + v] = acc;
    }
  }
  return r;
}

// Also at head dims that are not multiples of 32 (the engine pads them inside; the golden and
// this reference run over the real dims only).
TEST(GoldenDecodeLayer, MatchesIndependentDoubleEvaluation) {
  for (int head_dim : {64, 48, 80, 2}) {
    SCOPED_TRACE("head_dim " + std::to_string(head_dim));
    ThreadPool pool(2);
    LayerShape shape;
    shape.config = TinyConfig(96);
    shape.config.head_dim = head_dim;
    shape.config.hidden = 128;
    shape.config.intermediate = 256;
    shape.batch = 4;
    shape.max_seq = 128;  // one block per user
    shape.block_size = 128;
    const std::vector<int32_t> lens = {1, 2, 37, 128};
    LayerTensors t = WithSeqLens(shape, {}, lens, pool);
    const DoubleReference ref = ReferenceInDouble(shape, t);
    const GoldenOutputs g = GoldenDecodeLayer(shape, t, pool);

    std::vector<float> ref_hidden(ref.next_hidden.begin(), ref.next_hidden.end());
    std::vector<float> gold_hidden(g.next_hidden.size());
    for (size_t i = 0; i < gold_hidden.size(); ++i) gold_hidden[i] = Bf16ToF32(g.next_hidden[i]);
    // fp32 vs double sums differ far below the tolerance; a bf16 rounding flip is 1 ulp.
    const CompareResult h =
        AllClose(gold_hidden.data(), ref_hidden.data(), gold_hidden.size(), 1.0 / 128, 1e-3);
    EXPECT_TRUE(h.pass()) << h.mismatches << " worst " << h.worst << " " << h.worst_actual << " vs "
                          << h.worst_expected;
    const std::vector<float> ref_out(ref.out.begin(), ref.out.end());
    const CompareResult o = AllClose(g.out.data(), ref_out.data(), g.out.size(), 3e-3, 3e-3);
    EXPECT_TRUE(o.pass()) << o.mismatches << " worst " << o.worst << " " << o.worst_actual << " vs "
                          << o.worst_expected << " max_abs " << o.max_abs;
    // Far inside the tolerance: at most a bf16 ulp or two on next_hidden (|x| < 2), and the
    // logits to ~1e-4 (a sign flip in the RoPE alone gives 6e-3 and 3e-3).
    EXPECT_LT(h.max_abs, 2.0 / 256);
    EXPECT_LT(o.max_abs, 2e-4);
  }
}

}  // namespace
}  // namespace qwen3
