// The decode layer program against the golden (DESIGN.md "Testing", spec §2-§4), through
// qwen3::LayerHarness: batches 1, 5, 16, 17 with lengths 1, 127, 128, 129 and max on every
// CPU path; the KV slots the step writes; padding; split-KV invariance; determinism; and every
// validation error, each leaving the KV cache bitwise untouched.
#include "model/decode_layer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "base/bf16.h"
#include "base/error.h"
#include "golden/reference.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kv_cache.h"
#include "model/layer_weights.h"
#include "runtime/thread_pool.h"
#include "tools/layer_harness.h"
#include "tests/cli_util.h"
#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Helpers

// Small config.json files in a temp dir, removed at exit.
const testing_cli::TempDir& Files() { return testing_cli::Dir(); }

std::string HfJson(int hidden, int heads, int kv_heads, int head_dim, int inter, int vocab) {
  std::ostringstream s;
  s << R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_act": "silu",)"
    << R"( "hidden_size": )" << hidden << R"(, "intermediate_size": )" << inter
    << R"(, "num_hidden_layers": 1, "num_attention_heads": )" << heads
    << R"(, "num_key_value_heads": )" << kv_heads << R"(, "head_dim": )" << head_dim
    << R"(, "vocab_size": )" << vocab
    << R"(, "rms_norm_eps": 1e-06, "rope_theta": 1000000, "max_position_embeddings": 40960})";
  return s.str();
}

// (a) group 5 like 14B (40/8), head_dim 128, a vocab that is not a multiple of 64.
const std::string& Group5Config() {
  static const std::string path = Files().Write("group5.json", HfJson(320, 10, 2, 128, 864, 1000));
  return path;
}
// (b) tiny-a-like: group 4, head_dim 64.
const std::string& TinyAConfig() {
  static const std::string path = Files().Write("tiny_a.json", HfJson(256, 8, 2, 64, 768, 2048));
  return path;
}

// Sets QWEN3_CPU_PATH for a scope and restores the previous value.
class ScopedCpuPath {
 public:
  explicit ScopedCpuPath(const char* value) {
    if (const char* old = std::getenv("QWEN3_CPU_PATH")) old_ = old;
    if (value != nullptr) {
      setenv("QWEN3_CPU_PATH", value, 1);
    } else {
      unsetenv("QWEN3_CPU_PATH");
    }
  }
  explicit ScopedCpuPath(cpu::CpuPath path) : ScopedCpuPath(cpu::ToString(path)) {}
  ~ScopedCpuPath() {
    if (old_) {
      setenv("QWEN3_CPU_PATH", old_->c_str(), 1);
    } else {
      unsetenv("QWEN3_CPU_PATH");
    }
  }
  ScopedCpuPath(const ScopedCpuPath&) = delete;
  ScopedCpuPath& operator=(const ScopedCpuPath&) = delete;

 private:
  std::optional<std::string> old_;
};

std::string Describe(const CompareResult& r) {
  std::ostringstream s;
  s << "mismatches " << r.mismatches << "/" << r.count << ", max_abs " << r.max_abs << ", max_rel "
    << r.max_rel << ", worst [" << r.worst << "] actual " << r.worst_actual << " expected "
    << r.worst_expected;
  return s.str();
}

// Distance in bf16 ulps (ordered bit patterns; +0 and -0 are 0 apart).
int UlpDistance(bf16 a, bf16 b) {
  const auto ordered = [](bf16 x) {
    const int mag = x & 0x7fff;
    return (x & 0x8000) ? -mag : mag;
  };
  return std::abs(ordered(a) - ordered(b));
}

// Seed-layout row of (slot, KV head).
size_t SeedRow(size_t slot, size_t kvh, size_t kv_heads, size_t bs) {
  return ((slot / bs) * kv_heads + kvh) * bs + slot % bs;
}

struct KvSnapshot {
  std::vector<bf16> k, v;
  bool operator==(const KvSnapshot&) const = default;
};

KvSnapshot Snapshot(const cpu::PagedKvCache& kv) {
  KvSnapshot s;
  const size_t n = kv.num_slots() * kv.kv_heads() * kv.layout().head_dim;
  s.k.resize(n);
  s.v.resize(n);
  kv.ExportSeedLayout(s.k.data(), s.v.data());
  return s;
}

// After Step() and Check(): t.k_cache / t.v_cache hold the golden's writes at the current
// slots and the untouched inputs elsewhere. The engine's cache must agree within one bf16 ulp
// at the current slots (one rounding flip of q/k/v projections summed in another order) and
// bitwise everywhere else; `before` are the seed-layout caches as they were before the step.
void ExpectKvMatchesGolden(LayerHarness& h, const std::vector<bf16>& k_before,
                           const std::vector<bf16>& v_before) {
  const LayerShape& shape = h.shape();
  const LayerTensors& t = h.tensors();
  const cpu::PagedKvCache& kv = h.kv_cache();
  const size_t dim = shape.config.head_dim, heads_kv = shape.config.kv_heads;
  const size_t bs = shape.block_size;
  std::vector<bool> current(kv.num_slots() * heads_kv, false);
  size_t written = 0;
  for (size_t b = 0; b < shape.batch; ++b) {
    const size_t slot = static_cast<size_t>(t.slot_mapping[b]);
    for (size_t kvh = 0; kvh < heads_kv; ++kvh) {
      const size_t row = SeedRow(slot, kvh, heads_kv, bs);
      current[row] = true;
      int worst_k = 0, worst_v = 0;
      bool golden_wrote = false;
      for (size_t d = 0; d < dim; ++d) {
        worst_k = std::max(worst_k, UlpDistance(kv.KAt(slot, kvh, d), t.k_cache[row * dim + d]));
        worst_v = std::max(worst_v, UlpDistance(kv.VAt(slot, kvh, d), t.v_cache[row * dim + d]));
        golden_wrote |= t.k_cache[row * dim + d] != k_before[row * dim + d] ||
                        t.v_cache[row * dim + d] != v_before[row * dim + d];
      }
      EXPECT_LE(worst_k, 1) << "K of user " << b << " slot " << slot << " kv head " << kvh;
      EXPECT_LE(worst_v, 1) << "V of user " << b << " slot " << slot << " kv head " << kvh;
      written += golden_wrote;
    }
  }
  // The new K/V are computed values, not the random cache contents they replace.
  EXPECT_EQ(written, shape.batch * heads_kv);
  const KvSnapshot engine = Snapshot(kv);
  size_t stray = 0, first_stray = 0;
  for (size_t row = 0; row < current.size(); ++row) {
    if (current[row]) continue;
    const bool same = std::memcmp(engine.k.data() + row * dim, k_before.data() + row * dim,
                                  dim * sizeof(bf16)) == 0 &&
                      std::memcmp(engine.v.data() + row * dim, v_before.data() + row * dim,
                                  dim * sizeof(bf16)) == 0;
    if (!same && stray++ == 0) first_stray = row;
  }
  EXPECT_EQ(stray, 0u) << "rows not written by this step changed; first seed row " << first_stray;
}

LayerHarnessOptions Options(const std::string& config, size_t batch, std::vector<int32_t> seq_lens,
                            size_t max_seq) {
  LayerHarnessOptions o;
  o.config = config;
  o.batch = batch;
  o.seq_lens = std::move(seq_lens);
  o.max_seq = max_seq;
  o.seed = 11;
  return o;
}

// ---------------------------------------------------------------------------------------------
// Program vs golden: every path x config x batch/length case.

struct GoldenCase {
  const char* name;
  size_t batch;
  std::vector<int32_t> seq_lens;  // empty: every user at max_seq
  size_t max_seq;
};

std::vector<GoldenCase> GoldenCases() {
  return {
      {"b1_len1", 1, {1}, 512},
      {"b1_len4096", 1, {4096}, 4096},
      {"b5", 5, {1, 127, 128, 129, 512}, 512},
      {"b16", 16, {1, 127, 128, 129, 512, 2, 255, 256, 257, 383, 384, 385, 511, 64, 300, 129}, 512},
      {"b17",
       17,
       {129, 1, 4096, 127, 128, 1, 129, 511, 512, 513, 4095, 2, 128, 127, 1000, 256, 1},
       4096},
      {"b16_allmax", 16, {}, 512},
  };
}

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.name; }

using GoldenParam = std::tuple<cpu::CpuPath, int, GoldenCase>;

class DecodeLayerGolden : public testing::TestWithParam<GoldenParam> {};

TEST_P(DecodeLayerGolden, MatchesGoldenAndWritesKv) {
  const auto& [path, config_index, c] = GetParam();
  const std::string& config = config_index == 0 ? Group5Config() : TinyAConfig();
  ScopedCpuPath env(path);
  LayerHarnessOptions o = Options(config, c.batch, c.seq_lens, c.max_seq);
  o.all_max_seq = c.seq_lens.empty();
  LayerHarness h(o);
  ASSERT_EQ(h.path(), path);
  if (o.all_max_seq) {
    for (size_t b = 0; b < c.batch; ++b) ASSERT_EQ(h.tensors().seq_lens[b], int32_t(c.max_seq));
  }
  const std::vector<bf16> k_before(h.tensors().k_cache.begin(), h.tensors().k_cache.end());
  const std::vector<bf16> v_before(h.tensors().v_cache.begin(), h.tensors().v_cache.end());

  h.Step();
  const HarnessCheck check = h.Check(3e-3, 3e-3);
  EXPECT_TRUE(check.logits.pass()) << "logits: " << Describe(check.logits);
  EXPECT_TRUE(check.next_hidden.pass()) << "next_hidden: " << Describe(check.next_hidden);
  EXPECT_EQ(check.logits.count, c.batch * size_t(h.config().vocab));
  EXPECT_EQ(check.next_hidden.count, c.batch * size_t(h.config().hidden));
  ExpectKvMatchesGolden(h, k_before, v_before);
}

std::vector<GoldenParam> GoldenParams() {
  std::vector<GoldenParam> params;
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    for (int config = 0; config < 2; ++config) {
      for (const GoldenCase& c : GoldenCases()) params.emplace_back(path, config, c);
    }
  }
  return params;
}

std::string GoldenName(const testing::TestParamInfo<GoldenParam>& info) {
  const auto& [path, config, c] = info.param;
  return std::string(cpu::ToString(path)) + (config == 0 ? "_group5_" : "_tinya_") + c.name;
}

INSTANTIATE_TEST_SUITE_P(PathsConfigsBatches, DecodeLayerGolden, testing::ValuesIn(GoldenParams()),
                         GoldenName);

// The seed's block table is the identity; a real server's is not. Blocks drawn from a larger
// pool in scrambled order, one block shared by two users (a common prefix), and entries past a
// user's length set to -1 (never read) still match the golden.
TEST(DecodeLayerBlockTable, ScrambledAndSharedBlocksMatchGolden) {
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    SCOPED_TRACE(cpu::ToString(path));
    ScopedCpuPath env(path);
    LayerHarnessOptions o = Options(Group5Config(), 5, {1, 127, 128, 129, 512}, 512);
    o.kv_blocks = 41;  // 20 needed
    LayerHarness h(o);
    LayerTensors& t = h.tensors();
    const size_t mb = h.shape().MaxBlocksPerSeq(), bs = h.shape().block_size;
    for (size_t i = 0; i < 5 * mb; ++i) t.block_table[i] = static_cast<int32_t>((i * 17 + 5) % 41);
    t.block_table[4 * mb + 0] = t.block_table[3 * mb + 0];  // users 3 and 4 share a block
    for (size_t sb = 1; sb < mb; ++sb) t.block_table[0 * mb + sb] = -1;  // user 0: one page
    for (size_t b = 0; b < 5; ++b) {
      const size_t pos = static_cast<size_t>(t.seq_lens[b]) - 1;
      t.slot_mapping[b] = static_cast<int32_t>(t.block_table[b * mb + pos / bs] * bs + pos % bs);
    }
    const std::vector<bf16> k_before(t.k_cache.begin(), t.k_cache.end());
    const std::vector<bf16> v_before(t.v_cache.begin(), t.v_cache.end());
    h.Step();
    const HarnessCheck check = h.Check(3e-3, 3e-3);
    EXPECT_TRUE(check.pass()) << Describe(check.logits) << " | " << Describe(check.next_hidden);
    ExpectKvMatchesGolden(h, k_before, v_before);

    // The same users on the identity table: same K/V contents at the same logical places,
    // different physical blocks -> different context, so the results must differ.
    LayerHarness identity(Options(Group5Config(), 5, {1, 127, 128, 129, 512}, 512));
    identity.Step();
    EXPECT_NE(identity.next_hidden(), h.next_hidden());
  }
}

// ---------------------------------------------------------------------------------------------
// Any even head_dim: KV pages and q tiles pad it to 32 inside (48 -> 64, 80 -> 96), RMSNorm
// and RoPE run over the real dims. Shapes pick q_dim / kv_dim that are not whole 64-column
// groups, 32-wide k-tiles or even 16-column blocks, so the projections' partial groups and
// out_proj's padded A rows (attn_out) run too.

struct HeadDimCase {
  int head_dim, hidden, heads, kv_heads;
};

const HeadDimCase kHeadDimCases[] = {
    {48, 128, 3, 1},   // q_dim 144 (not a multiple of 32), kv_dim 48: 3 column blocks
    {64, 128, 4, 2},   // the unpadded control
    {80, 160, 4, 2},   // q_dim 320, kv_dim 160 (not a multiple of 64), pages padded to 96
    {96, 128, 2, 1},   // q_dim 192, kv_dim 96
    {128, 128, 2, 2},  // group 1
    {40, 128, 5, 1},   // q_dim 200 (not a multiple of 16), kv_dim 40, RoPE halves of 20
};

void PrintTo(const HeadDimCase& c, std::ostream* os) { *os << "head_dim " << c.head_dim; }

const std::string& HeadDimConfig(const HeadDimCase& c) {
  static std::map<int, std::string> paths;
  auto [it, fresh] = paths.try_emplace(c.head_dim);
  if (fresh) {
    it->second = Files().Write("head_dim_" + std::to_string(c.head_dim) + ".json",
                               HfJson(c.hidden, c.heads, c.kv_heads, c.head_dim, 256, 300));
  }
  return it->second;
}

// Page lanes past the real dims (KIndex / VIndex of no real (token, dim)) that are not zero.
size_t NonZeroPadding(const cpu::PagedKvCache& kv) {
  const cpu::KvPageLayout& layout = kv.layout();
  std::vector<bool> real_k(layout.PageElems(), false), real_v(layout.PageElems(), false);
  for (size_t t = 0; t < layout.block_size; ++t) {
    for (size_t d = 0; d < layout.head_dim; ++d) {
      real_k[layout.KIndex(t, d)] = true;
      real_v[layout.VIndex(t, d)] = true;
    }
  }
  size_t bad = 0;
  for (size_t b = 0; b < kv.num_blocks(); ++b) {
    for (size_t h = 0; h < kv.kv_heads(); ++h) {
      for (size_t i = 0; i < layout.PageElems(); ++i) {
        bad += (!real_k[i] && kv.KPage(b, h)[i] != 0) + (!real_v[i] && kv.VPage(b, h)[i] != 0);
      }
    }
  }
  return bad;
}

using HeadDimParam = std::tuple<cpu::CpuPath, HeadDimCase>;

class DecodeLayerHeadDim : public testing::TestWithParam<HeadDimParam> {};

TEST_P(DecodeLayerHeadDim, MatchesGoldenAndWritesKv) {
  const auto& [path, c] = GetParam();
  ScopedCpuPath env(path);
  // Lengths on both sides of the 128-token page boundary.
  LayerHarness h(Options(HeadDimConfig(c), 4, {1, 127, 129, 300}, 384));
  ASSERT_EQ(h.path(), path);
  ASSERT_EQ(h.config().head_dim, c.head_dim);
  EXPECT_EQ(h.kv_cache().layout().padded_dim(), size_t(c.head_dim + 31) / 32 * 32);
  const std::vector<bf16> k_before(h.tensors().k_cache.begin(), h.tensors().k_cache.end());
  const std::vector<bf16> v_before(h.tensors().v_cache.begin(), h.tensors().v_cache.end());
  h.Step();
  const HarnessCheck check = h.Check(3e-3, 3e-3);
  EXPECT_TRUE(check.logits.pass()) << "logits: " << Describe(check.logits);
  EXPECT_TRUE(check.next_hidden.pass()) << "next_hidden: " << Describe(check.next_hidden);
  ExpectKvMatchesGolden(h, k_before, v_before);
  EXPECT_EQ(NonZeroPadding(h.kv_cache()), 0u);
}

std::vector<HeadDimParam> HeadDimParams() {
  std::vector<HeadDimParam> params;
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    for (const HeadDimCase& c : kHeadDimCases) params.emplace_back(path, c);
  }
  return params;
}

INSTANTIATE_TEST_SUITE_P(PathsHeadDims, DecodeLayerHeadDim, testing::ValuesIn(HeadDimParams()),
                         [](const testing::TestParamInfo<HeadDimParam>& info) {
                           return std::string(cpu::ToString(std::get<0>(info.param))) + "_hd" +
                                  std::to_string(std::get<1>(info.param).head_dim);
                         });

// ---------------------------------------------------------------------------------------------
// Padding: rows past the batch and columns past the LM head's rows are never written.

TEST(DecodeLayerPadding, Batch5RowsAllWrittenAndFinite) {
  LayerHarness h(Options(Group5Config(), 5, {1, 127, 128, 129, 512}, 512));
  h.Step();
  const size_t vocab = h.config().vocab, hidden = h.config().hidden;
  for (size_t b = 0; b < 5; ++b) {
    size_t zeros = 0, non_finite = 0;
    for (size_t v = 0; v < vocab; ++v) {
      const float x = h.out()[b * vocab + v];
      zeros += x == 0.0f;
      non_finite += !std::isfinite(x);
    }
    EXPECT_EQ(zeros, 0u) << "row " << b;
    EXPECT_EQ(non_finite, 0u) << "row " << b;
    for (size_t i = 0; i < hidden; ++i) {
      ASSERT_TRUE(IsFiniteBf16(h.next_hidden()[b * hidden + i])) << "row " << b << " col " << i;
    }
  }
  EXPECT_TRUE(h.Check(3e-3, 3e-3).pass());
}

TEST(DecodeLayerPadding, LmHeadSingleWritesOnlyFirst64Columns) {
  LayerHarnessOptions o = Options(Group5Config(), 5, {1, 127, 128, 129, 512}, 512);
  o.lm_head = LmHeadMode::kSingle;
  LayerHarness h(o);
  EXPECT_EQ(h.tensors().lm_rows, kLmHeadSingleCols);
  h.Step();
  const size_t vocab = h.config().vocab;
  for (size_t b = 0; b < 5; ++b) {
    for (size_t v = 0; v < vocab; ++v) {
      const float x = h.out()[b * vocab + v];
      if (v < kLmHeadSingleCols) {
        EXPECT_NE(x, 0.0f) << "row " << b << " col " << v;
      } else {
        ASSERT_EQ(x, 0.0f) << "row " << b << " col " << v;
      }
    }
  }
  const HarnessCheck check = h.Check(3e-3, 3e-3);
  EXPECT_TRUE(check.pass()) << Describe(check.logits) << " | " << Describe(check.next_hidden);
}

TEST(DecodeLayerPadding, LmHeadSkipLeavesOutZeroButChecksNextHidden) {
  LayerHarnessOptions o = Options(Group5Config(), 5, {1, 127, 128, 129, 512}, 512);
  o.lm_head = LmHeadMode::kSkip;
  LayerHarness h(o);
  EXPECT_EQ(h.tensors().lm_rows, 0u);
  h.Step();
  for (float x : h.out()) ASSERT_EQ(x, 0.0f);
  const HarnessCheck check = h.Check(3e-3, 3e-3);
  EXPECT_TRUE(check.pass()) << Describe(check.next_hidden);
  EXPECT_EQ(check.next_hidden.count, 5u * h.config().hidden);
  size_t nonzero = 0;
  for (bf16 x : h.next_hidden()) nonzero += Bf16ToF32(x) != 0.0f;
  EXPECT_GT(nonzero, h.next_hidden().size() / 2);  // the layer ran: a real comparison
  // Same inputs with the full LM head: the layer's output does not depend on the mode.
  LayerHarness full(Options(Group5Config(), 5, {1, 127, 128, 129, 512}, 512));
  full.Step();
  EXPECT_EQ(full.next_hidden(), h.next_hidden());
}

// A layer sized for 16 users run on 5: rows 5..15 of next_hidden and logits (canaries) are
// never written, NaN in the hidden rows past the batch does not leak, and the 5 rows equal a
// batch-5 run bitwise (after a full batch-16 step has left stale rows in the workspace).
TEST(DecodeLayerPadding, SmallerBatchOnLargerLayerWritesOnlyItsRows) {
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    SCOPED_TRACE(cpu::ToString(path));
    ScopedCpuPath env(path);
    LayerHarnessOptions o16 = Options(TinyAConfig(), 16, {}, 512);
    LayerHarness h16(o16);
    h16.Step();  // stale workspace rows
    LayerHarness h5(Options(TinyAConfig(), 5, {}, 512));
    for (size_t b = 0; b < 5; ++b) {
      ASSERT_EQ(h5.tensors().seq_lens[b], h16.tensors().seq_lens[b]);
    }
    h5.Step();

    const Qwen3Config& c = h16.config();
    const size_t hidden = c.hidden;
    const bf16 kCanary = F32ToBf16(1234.5f);
    std::vector<bf16> in(h16.tensors().hidden.begin(), h16.tensors().hidden.end());
    for (size_t i = 5 * hidden; i < in.size(); ++i) in[i] = 0x7fc0;  // NaN past the batch
    std::vector<bf16> next(16 * hidden, kCanary);
    DecodeBatch batch = h16.batch();
    batch.batch = 5;
    const LayerTensors& t = h16.tensors();
    const RopeTable rope = RopeTable::FromTables(t.rope_cos.data(), t.rope_sin.data(),
                                                 h16.shape().max_seq, c.head_dim);
    h16.layer().Run(h16.weights(), rope, h16.kv_cache(), batch, in.data(), next.data());
    for (size_t i = 0; i < 5 * hidden; ++i) {
      ASSERT_EQ(next[i], h5.next_hidden()[i]) << "row " << i / hidden << " col " << i % hidden;
    }
    for (size_t i = 5 * hidden; i < next.size(); ++i) {
      ASSERT_EQ(next[i], kCanary) << "padded row " << i / hidden << " written";
    }

    // LM head: rows past the batch and columns past lm.rows keep their canaries.
    const LmHeadWeights lm = LmHeadWeights::FromSeedLayout(c, t, h16.executor());
    const size_t ld = c.vocab + 40;
    std::vector<float> logits(16 * ld, -777.0f);
    h16.layer().RunLmHead(lm, next.data(), 5, logits.data(), ld);
    for (size_t b = 0; b < 16; ++b) {
      for (size_t v = 0; v < ld; ++v) {
        const float x = logits[b * ld + v];
        if (b < 5 && v < lm.rows) {
          ASSERT_EQ(x, h5.out()[b * c.vocab + v]) << "row " << b << " col " << v;
        } else {
          ASSERT_EQ(x, -777.0f) << "row " << b << " col " << v << " written";
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Split-KV: pages per partial change the merge tree, not the result.

TEST(DecodeLayerSplits, PagesPerSplitAgreeWithinOneUlp) {
  // Lengths on and just past the split boundaries of 2 and 7 pages.
  const std::vector<int32_t> lens = {4096, 1, 129, 1000, 2049, 896, 897, 256, 257};
  std::vector<bf16> base;
  for (size_t pps : {1, 2, 7, 32}) {
    SCOPED_TRACE("pages_per_split " + std::to_string(pps));
    LayerHarnessOptions o = Options(Group5Config(), lens.size(), lens, 4096);
    o.pages_per_split = pps;
    LayerHarness h(o);
    h.Step();
    const HarnessCheck check = h.Check(3e-3, 3e-3);
    EXPECT_TRUE(check.pass()) << Describe(check.logits) << " | " << Describe(check.next_hidden);
    if (base.empty()) {
      base = h.next_hidden();
      continue;
    }
    int worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < base.size(); ++i) {
      const int d = UlpDistance(base[i], h.next_hidden()[i]);
      if (d > worst) worst = d, worst_i = i;
    }
    EXPECT_LE(worst, 1) << "element " << worst_i << ": " << Bf16ToF32(base[worst_i]) << " vs "
                        << Bf16ToF32(h.next_hidden()[worst_i]);
  }
}

TEST(DecodeLayerSplits, PagesPerSplitOutOfRangeThrows) {
  const Qwen3Config c = ResolveConfig(TinyAConfig());
  ThreadPool pool(1);
  cpu::CpuExecutor k(DimsOf(c), cpu::GetCpuKernels(cpu::CpuPath::kScalar), pool);
  DecodeLayer::Options lo;
  lo.pages_per_split = 0;  // automatic
  EXPECT_NO_THROW(DecodeLayer(c, lo, k));
  lo.pages_per_split = 65;
  EXPECT_TRUE(ThrowsError([&] { DecodeLayer(c, lo, k); }, {"pages_per_split = 65"}));
  lo.pages_per_split = 64;
  lo.max_batch = 0;
  EXPECT_TRUE(ThrowsError([&] { DecodeLayer(c, lo, k); }, {"max_batch = 0"}));
}

// ---------------------------------------------------------------------------------------------
// Determinism.

TEST(DecodeLayerDeterminism, SameSeedSameBitsDifferentSeedDiffers) {
  LayerHarnessOptions o = Options(TinyAConfig(), 5, {}, 512);
  o.seed = 3;
  LayerHarness a(o), b(o);
  a.Step();
  b.Step();
  EXPECT_EQ(a.out(), b.out());
  EXPECT_EQ(a.next_hidden(), b.next_hidden());
  // A second step on the same harness rewrites the same slots with the same values.
  a.Step();
  EXPECT_EQ(a.out(), b.out());
  // The thread count only splits independent blocks.
  o.threads = 1;
  LayerHarness single(o);
  single.Step();
  EXPECT_EQ(single.out(), b.out());
  EXPECT_EQ(single.next_hidden(), b.next_hidden());

  o.threads = 0;
  o.seed = 4;
  LayerHarness c(o);
  c.Step();
  EXPECT_NE(c.out(), a.out());
  EXPECT_NE(c.next_hidden(), a.next_hidden());
}

// ---------------------------------------------------------------------------------------------
// DecodeLayer::Validate, through Run: each bad input throws a one-line Error naming the value,
// before anything is written.

class DecodeLayerValidate : public testing::Test {
 protected:
  static constexpr size_t kBatch = 4;
  static constexpr size_t kMaxSeq = 512;

  DecodeLayerValidate()
      : h_(Options(TinyAConfig(), kBatch, {1, 200, 129, 512}, kMaxSeq)),
        rope_(RopeTable::FromTables(h_.tensors().rope_cos.data(), h_.tensors().rope_sin.data(),
                                    kMaxSeq, h_.config().head_dim)) {
    const LayerTensors& t = h_.tensors();
    seq_lens_.assign(t.seq_lens.begin(), t.seq_lens.end());
    block_table_.assign(t.block_table.begin(), t.block_table.end());
    slot_mapping_.assign(t.slot_mapping.begin(), t.slot_mapping.end());
    hidden_.assign(t.hidden.begin(), t.hidden.end());
    next_.assign(kBatch * h_.config().hidden, F32ToBf16(99.0f));
    before_ = Snapshot(h_.kv_cache());
  }

  // The harness batch, pointed at the modifiable copies.
  DecodeBatch Batch() {
    DecodeBatch b = h_.batch();
    b.seq_lens = seq_lens_.data();
    b.block_table = block_table_.data();
    b.slot_mapping = slot_mapping_.data();
    return b;
  }
  size_t Mb() const { return h_.shape().MaxBlocksPerSeq(); }

  // Runs the layer and expects the error; then the KV cache and the output are untouched.
  void ExpectRejected(const DecodeBatch& batch, std::initializer_list<std::string_view> parts,
                      const RopeTable* rope = nullptr) {
    const RopeTable& r = rope ? *rope : rope_;
    const std::vector<bf16> next_before = next_;
    EXPECT_TRUE(ThrowsError(
        [&] {
          h_.layer().Run(h_.weights(), r, h_.kv_cache(), batch, hidden_.data(), next_.data());
        },
        parts));
    EXPECT_TRUE(Snapshot(h_.kv_cache()) == before_) << "KV cache changed";
    EXPECT_EQ(next_, next_before) << "next_hidden written";
  }

  LayerHarness h_;
  RopeTable rope_;
  std::vector<int32_t> seq_lens_, block_table_, slot_mapping_;
  std::vector<bf16> hidden_, next_;
  KvSnapshot before_;
};

TEST_F(DecodeLayerValidate, ValidBatchRuns) {
  // The fixture's unmodified copies are accepted, and they write the cache.
  h_.layer().Run(h_.weights(), rope_, h_.kv_cache(), Batch(), hidden_.data(), next_.data());
  EXPECT_FALSE(Snapshot(h_.kv_cache()) == before_);
}

TEST_F(DecodeLayerValidate, BatchZero) {
  DecodeBatch b = Batch();
  b.batch = 0;
  ExpectRejected(b, {"batch = 0", "1..4"});
}

TEST_F(DecodeLayerValidate, BatchAboveMaxBatch) {
  DecodeBatch b = Batch();
  b.batch = kBatch + 1;
  ExpectRejected(b, {"batch = 5", "1..4"});
}

TEST_F(DecodeLayerValidate, SeqLenZero) {
  seq_lens_[2] = 0;
  ExpectRejected(Batch(), {"seq_lens[2] = 0", "1..512"});
}

TEST_F(DecodeLayerValidate, SeqLenNegative) {
  seq_lens_[1] = -3;
  ExpectRejected(Batch(), {"seq_lens[1] = -3"});
}

TEST_F(DecodeLayerValidate, SeqLenAboveMaxSeq) {
  seq_lens_[2] = 5000;
  ExpectRejected(Batch(), {"seq_lens[2] = 5000", "1..512"});
  seq_lens_[2] = kMaxSeq + 1;
  ExpectRejected(Batch(), {"seq_lens[2] = 513"});
}

TEST_F(DecodeLayerValidate, SeqLenPastRopeTable) {
  // A rope table shorter than the layer's max_seq bounds seq_lens too.
  const LayerTensors& t = h_.tensors();
  const RopeTable short_rope =
      RopeTable::FromTables(t.rope_cos.data(), t.rope_sin.data(), 256, h_.config().head_dim);
  ExpectRejected(Batch(), {"seq_lens[3] = 512", "1..256"}, &short_rope);
}

TEST_F(DecodeLayerValidate, BlockTableNegative) {
  block_table_[1 * Mb() + 0] = -1;
  ExpectRejected(Batch(), {"block_table[1, 0] = -1"});
}

TEST_F(DecodeLayerValidate, BlockTablePastPool) {
  const size_t blocks = h_.kv_cache().num_blocks();
  block_table_[3 * Mb() + 3] = static_cast<int32_t>(blocks);
  ExpectRejected(Batch(), {"block_table[3, 3] = " + std::to_string(blocks)});
}

TEST_F(DecodeLayerValidate, SlotMappingInconsistent) {
  slot_mapping_[3] += 1;
  ExpectRejected(Batch(), {"slot_mapping[3] = " + std::to_string(slot_mapping_[3])});
}

TEST_F(DecodeLayerValidate, SlotMappingOtherBlock) {
  // Points into another user's block at the right offset.
  slot_mapping_[1] = static_cast<int32_t>(block_table_[0] * 128 + 199 % 128);
  ExpectRejected(Batch(), {"slot_mapping[1] = " + std::to_string(slot_mapping_[1])});
}

TEST_F(DecodeLayerValidate, TwoUsersWriteOneSlot) {
  // User 2 shares user 0's block and current position.
  seq_lens_[2] = seq_lens_[0];
  block_table_[2 * Mb()] = block_table_[0];
  slot_mapping_[2] = slot_mapping_[0];
  ExpectRejected(Batch(), {"users 0 and 2", "slot " + std::to_string(slot_mapping_[0])});
}

TEST_F(DecodeLayerValidate, UsersSharingABlockAtDifferentPositionsAreFine) {
  // Shared prefix block, distinct current slots: valid (no throw).
  seq_lens_[2] = 2;
  block_table_[2 * Mb()] = block_table_[0];
  slot_mapping_[2] = block_table_[0] * 128 + 1;
  EXPECT_NO_THROW(
      h_.layer().Run(h_.weights(), rope_, h_.kv_cache(), Batch(), hidden_.data(), next_.data()));
}

TEST_F(DecodeLayerValidate, NaNHidden) {
  const size_t hidden = h_.config().hidden;
  hidden_[3 * hidden + 7] = 0x7fc0;
  ExpectRejected(Batch(), {"hidden_states[3, 7]", "NaN"});
  hidden_[3 * hidden + 7] = 0xffc1;  // negative NaN with other payload bits
  ExpectRejected(Batch(), {"hidden_states[3, 7]", "NaN"});
}

TEST_F(DecodeLayerValidate, InfHidden) {
  const size_t hidden = h_.config().hidden;
  hidden_[0 * hidden + 255] = 0x7f80;
  ExpectRejected(Batch(), {"hidden_states[0, 255]", "Inf"});
  hidden_[0 * hidden + 255] = 0;
  hidden_[2 * hidden + 0] = 0xff80;
  ExpectRejected(Batch(), {"hidden_states[2, 0]", "Inf"});
}

TEST_F(DecodeLayerValidate, BlockTableTooNarrow) {
  DecodeBatch b = Batch();
  b.max_blocks_per_seq = 3;
  ExpectRejected(b, {"block_table has 3 blocks per user", "4"});
}

TEST_F(DecodeLayerValidate, KvCacheShapeMismatch) {
  const Qwen3Config& c = h_.config();
  cpu::PagedKvCache other(h_.kv_cache().num_blocks(), c.kv_heads + 1, c.head_dim, 128);
  EXPECT_TRUE(ThrowsError(
      [&] { h_.layer().Run(h_.weights(), rope_, other, Batch(), hidden_.data(), next_.data()); },
      {"KV cache has 3 heads of 64", "expected 2 of 64"}));
  EXPECT_TRUE(Snapshot(h_.kv_cache()) == before_);
}

TEST_F(DecodeLayerValidate, RopeHeadDimMismatch) {
  const RopeTable rope = RopeTable::FromTheta(1e6, kMaxSeq, 128);
  ExpectRejected(Batch(), {"rope table head_dim = 128", "64"}, &rope);
}

TEST_F(DecodeLayerValidate, LmHeadBatchOutOfRange) {
  const LmHeadWeights lm = LmHeadWeights::FromSeedLayout(h_.config(), h_.tensors(), h_.executor());
  std::vector<float> logits((kBatch + 1) * h_.config().vocab);
  EXPECT_TRUE(ThrowsError(
      [&] { h_.layer().RunLmHead(lm, next_.data(), 0, logits.data(), h_.config().vocab); },
      {"batch = 0"}));
  EXPECT_TRUE(ThrowsError(
      [&] { h_.layer().RunLmHead(lm, next_.data(), 5, logits.data(), h_.config().vocab); },
      {"batch = 5"}));
}

// ---------------------------------------------------------------------------------------------
// LayerHarness option errors: thrown before anything is allocated.

TEST(LayerHarnessErrors, BadOptionsThrowBeforeAllocating) {
  LayerHarnessOptions o = Options(TinyAConfig(), 0, {}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"batch 0"}));

  o = Options(TinyAConfig(), 5, {}, 512);
  o.kv_blocks = 10;  // 5 users x 4 blocks = 20
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"--kv-blocks", "20", "10"}));

  o = Options(TinyAConfig(), 5, {1, 2, 3}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"--seq-lens has 3 values", "batch 5"}));

  o = Options(TinyAConfig(), 3, {1, 600, 3}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"seq_lens[1] = 600", "1..512"}));
  o = Options(TinyAConfig(), 3, {1, 2, 0}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"seq_lens[2] = 0"}));

  const std::string bad = Files().Write("malformed.json", "{\"hidden_size\": 256,");
  o = Options(bad, 1, {}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {bad, "malformed JSON"}));
  o = Options("/nonexistent/qwen3/config.json", 1, {}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"/nonexistent/qwen3/config.json"}));

  o = Options("99b", 1, {}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"'99b'"}));

  o = Options(TinyAConfig(), 1, {}, 512);
  o.vocab = -5;
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"--vocab -5"}));
  o.vocab = 0;
  o.block_size = 100;
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"block size 100"}));
  o.block_size = 128;
  o.max_seq = 0;
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"max_seq 0"}));

  // An unknown QWEN3_CPU_PATH is an error too.
  ScopedCpuPath env("bogus");
  o = Options(TinyAConfig(), 1, {}, 512);
  EXPECT_TRUE(ThrowsError([&] { LayerHarness h(o); }, {"'bogus'"}));
}

// A pool larger than the batch needs (--kv-blocks) and a smaller block size still match.
TEST(LayerHarnessPool, LargerPoolAndBlockSize64) {
  LayerHarnessOptions o = Options(Group5Config(), 5, {1, 63, 64, 65, 512}, 512);
  o.kv_blocks = 64;
  o.block_size = 64;
  LayerHarness h(o);
  EXPECT_EQ(h.kv_cache().num_blocks(), 64u);
  h.Step();
  const HarnessCheck check = h.Check(3e-3, 3e-3);
  EXPECT_TRUE(check.pass()) << Describe(check.logits) << " | " << Describe(check.next_hidden);
}

// ---------------------------------------------------------------------------------------------
// The seed's own shape: 14B dims, vocab 152064, batch 16, every user at 4096, one LM chunk.

TEST(DecodeLayer14B, MaxSeqLmHeadSinglePasses) {
  ScopedCpuPath env(nullptr);  // the best path
  LayerHarnessOptions o;
  o.config = "14b";
  o.vocab = 152064;
  o.batch = 16;
  o.all_max_seq = true;
  o.lm_head = LmHeadMode::kSingle;
  LayerHarness h(o);
  EXPECT_EQ(h.path(), cpu::AvailableCpuPaths().front());
  h.Step();
  const HarnessCheck check = h.Check(3e-3, 3e-3);
  EXPECT_TRUE(check.logits.pass()) << Describe(check.logits);
  EXPECT_TRUE(check.next_hidden.pass()) << Describe(check.next_hidden);
  EXPECT_EQ(check.logits.count, 16u * 152064u);
}

}  // namespace
}  // namespace qwen3
