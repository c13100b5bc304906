// The executor seam: one layer program, two executors. The CPU executor (bf16 weights and
// activations at the seed's rounding points) and the reference (float32 throughout) run the
// same DecodeLayer on the same synthetic layer and agree to the bf16 recipe's error; the
// reference agrees with the golden (bf16 rounding points) the same way.
#include "exec/executor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <vector>

#include "exec/cpu/cpu_executor.h"
#include "exec/cpu/cpu_path.h"
#include "exec/reference/reference_executor.h"
#include "golden/reference.h"
#include "golden/synthetic.h"
#include "model/decode_layer.h"
#include "model/layer_weights.h"
#include "runtime/thread_pool.h"
#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

Qwen3Config SmallConfig() {
  Qwen3Config c;
  c.name = "small";
  c.hidden = 256;
  c.intermediate = 512;
  c.layers = 1;
  c.heads = 8;
  c.kv_heads = 2;
  c.head_dim = 64;
  c.vocab = 300;
  return c;
}

double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, r = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    d += (a[i] - b[i]) * static_cast<double>(a[i] - b[i]);
    r += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(d / r);
}

std::vector<float> ToF32(const std::vector<bf16>& v) {
  std::vector<float> f(v.size());
  for (size_t i = 0; i < v.size(); ++i) f[i] = Bf16ToF32(v[i]);
  return f;
}

struct LayerRun {
  std::vector<bf16> next_hidden;
  std::vector<float> logits;
};

// One step of the seed's program (layer, final norm, LM head) on executor x.
LayerRun RunStep(Executor& x, const LayerShape& shape, const LayerTensors& t) {
  const Qwen3Config& c = shape.config;
  const LayerWeights w = LayerWeights::FromSeedLayout(c, t, x);
  const LmHeadWeights lm = LmHeadWeights::FromSeedLayout(c, t, x);
  const std::unique_ptr<KvCache> kv = x.NewKvCache(shape.PoolBlocks(), shape.block_size);
  x.ImportKv(*kv, t.k_cache.data(), t.v_cache.data());
  DecodeLayer::Options o;
  o.max_batch = shape.batch;
  o.max_seq = shape.max_seq;
  DecodeLayer layer(c, o, x);
  const RopeTable rope =
      RopeTable::FromTables(t.rope_cos.data(), t.rope_sin.data(), shape.max_seq, c.head_dim);
  const DecodeBatch batch{shape.batch, t.seq_lens.data(), t.block_table.data(),
                          shape.MaxBlocksPerSeq(), t.slot_mapping.data()};
  LayerRun r;
  r.next_hidden.resize(shape.batch * c.hidden);
  r.logits.resize(shape.batch * c.vocab);
  layer.Run(w, rope, *kv, batch, t.hidden.data(), r.next_hidden.data());
  layer.RunLmHead(lm, r.next_hidden.data(), shape.batch, r.logits.data(), c.vocab);
  return r;
}

TEST(ExecutorTest, CpuAndReferenceRunTheSameProgram) {
  ThreadPool pool(2);
  LayerShape shape;
  shape.config = SmallConfig();
  shape.batch = 5;
  shape.max_seq = 300;
  shape.block_size = 32;
  LayerTensors t = MakeSyntheticLayer(shape, {.seed = 3}, pool);
  const ModelDims dims = DimsOf(shape.config);
  cpu::CpuExecutor cpu_x(dims, cpu::GetCpuKernels(cpu::CpuPath::kScalar), pool);
  ReferenceExecutor ref_x(dims, pool);
  const LayerRun a = RunStep(cpu_x, shape, t), b = RunStep(ref_x, shape, t);
  const GoldenOutputs golden = GoldenDecodeLayer(shape, t, pool);
  // The bf16 recipe against float32 on one layer: 4.0e-4 (next hidden) and 1.6e-3 (logits)
  // measured; bounds at 10x.
  const double cpu_vs_ref = RelL2(ToF32(a.next_hidden), ToF32(b.next_hidden));
  const double golden_vs_ref = RelL2(ToF32(golden.next_hidden), ToF32(b.next_hidden));
  EXPECT_LT(cpu_vs_ref, 4e-3);
  EXPECT_GT(cpu_vs_ref, 0.0);  // different recipes: not the same bits
  EXPECT_LT(golden_vs_ref, 4e-3);
  EXPECT_LT(RelL2(a.logits, b.logits), 1.6e-2);
}

TEST(ExecutorTest, MakeExecutorByName) {
  ThreadPool pool(1);
  const ModelDims dims = DimsOf(SmallConfig());
  EXPECT_EQ(MakeExecutor(dims, {.device = "reference"}, pool)->name(), "reference");
  EXPECT_EQ(MakeExecutor(dims, {.device = "cpu"}, pool)->name().rfind("cpu (", 0), 0u);
  EXPECT_TRUE(ThrowsError([&] { MakeExecutor(dims, {.device = "gpu"}, pool); },
                          {"--device gpu", "expected cpu | reference"}));
}

TEST(ExecutorTest, SupportsSaysNo) {
  ThreadPool pool(1);
  const ModelDims dims = DimsOf(SmallConfig());
  for (const auto& x : {MakeExecutor(dims, {.device = "cpu"}, pool),
                        MakeExecutor(dims, {.device = "reference"}, pool)}) {
    EXPECT_FALSE(x->Supports(Op::kMoeFfn, {&dims, 16, 128})) << x->name();
    EXPECT_TRUE(x->Supports(Op::kAttention, {&dims, 16, 128})) << x->name();
    EXPECT_TRUE(x->Supports(Op::kLinear, {&dims, 16, 0, WeightType::kQ4_K})) << x->name();
  }
  cpu::CpuExecutor cpu_x(dims, cpu::GetCpuKernels(cpu::CpuPath::kScalar), pool);
  EXPECT_FALSE(cpu_x.Supports(Op::kAttention, {&dims, 16, 48}));  // not whole 32-token tiles
}

TEST(ExecutorTest, WeightsAreTheirExecutorsOwn) {
  ThreadPool pool(1);
  const ModelDims dims = DimsOf(SmallConfig());
  cpu::CpuExecutor cpu_x(dims, cpu::GetCpuKernels(cpu::CpuPath::kScalar), pool);
  ReferenceExecutor ref_x(dims, pool);
  const std::vector<float> ones(dims.hidden, 1.0f);
  const auto norm = ref_x.PackNorm(ones.data(), ones.size(), "n");
  EXPECT_TRUE(ThrowsError(
      [&] { cpu_x.RmsNorm(Stage::kInputNorm, *norm, Act::kHidden, Act::kNormed, 1); },
      {"another executor"}));
  const std::vector<float> bad = {1.0f, NAN};
  EXPECT_TRUE(ThrowsError([&] { ref_x.PackNorm(bad.data(), 2, "q_norm"); }, {"q_norm", "NaN"}));
  EXPECT_TRUE(ThrowsError([&] { cpu_x.PackNorm(bad.data(), 2, "q_norm"); }, {"q_norm", "NaN"}));
}

// Upload then Download gives the rows back; the reference keeps them in fp32 (exact for bf16).
TEST(ExecutorTest, HostEdgesRoundTrip) {
  ThreadPool pool(1);
  const ModelDims dims = DimsOf(SmallConfig());
  for (const auto& x : {MakeExecutor(dims, {.device = "cpu"}, pool),
                        MakeExecutor(dims, {.device = "reference"}, pool)}) {
    std::vector<bf16> rows(3 * dims.hidden), back(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = F32ToBf16(static_cast<float>(i % 97) - 48);
    x->Upload(Act::kHidden, rows.data(), 3);
    x->Download(Act::kHidden, 3, back.data());
    EXPECT_EQ(rows, back) << x->name();
    rows[dims.hidden + 5] = 0x7fc0;  // NaN at [1, 5]
    x->Upload(Act::kHidden, rows.data(), 3);
    EXPECT_TRUE(ThrowsError([&] { x->CheckFinite(Act::kHidden, 3); }, {"hidden_states[1, 5]"}))
        << x->name();
  }
}

}  // namespace
}  // namespace qwen3
