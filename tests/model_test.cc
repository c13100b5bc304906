#include "model/model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "io/hf_checkpoint.h"
#include "io/load_weights.h"
#include "exec/cpu/cpu_path.h"
#include "exec/cpu/kernels.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "tests/executor_util.h"
#include "exec/cpu/cpu_weight.h"
#include "tests/checkpoint_util.h"
#include "tests/error_matchers.h"
#include "tools/replay.h"

namespace qwen3 {
namespace {

using testing_ck::ScratchDir;
using testing_ck::TinyConfig;

const std::string kTestData = std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3/";

double RelL2(const float* a, const float* b, size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; ++i) {
    d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    r += double(b[i]) * b[i];
  }
  return std::sqrt(d / r);
}

// transformers' logits, all prompts as one batch, on every kernel path this CPU has.
class ReplayTest : public testing::TestWithParam<std::tuple<std::string, cpu::CpuPath>> {};

TEST_P(ReplayTest, MatchesTransformersWithinTolerance) {
  const auto& [name, path] = GetParam();
  if (!cpu::IsSupported(path)) GTEST_SKIP() << cpu::ToString(path) << " not supported here";
  ThreadPool pool(2);
  ReplayOptions o;
  o.model_dir = kTestData + name;
  o.reference = kTestData + name + "/reference.safetensors";
  o.max_rows = 48;  // prompts of 129..300 tokens span several passes
  const ReplayResult r = RunReplay(o, cpu::GetCpuKernels(path), pool);
  EXPECT_TRUE(r.pass);
  ASSERT_GE(r.steps.size(), 5u);
  for (const ReplayStep& s : r.steps) {
    EXPECT_LE(s.rel_l2, 3.5e-2);
    EXPECT_EQ(s.guarded_mismatches, 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    TinyModels, ReplayTest,
    testing::Combine(testing::Values("tiny-a", "tiny-b"),
                     testing::Values(cpu::CpuPath::kAmx, cpu::CpuPath::kAvx512Bf16,
                                     cpu::CpuPath::kAvx512, cpu::CpuPath::kAvx2,
                                     cpu::CpuPath::kScalar)),
    [](const auto& info) {
      std::string n = std::get<0>(info.param) + "_" + cpu::ToString(std::get<1>(info.param));
      for (char& ch : n) ch = ch == '-' ? '_' : ch;
      return n;
    });

// The reference executor (plain float32 loops) is the engine's own truth: transformers' float32
// logits within 1e-4 per step, where the fast paths' bf16 recipe is ~1e-2 off.
class ReferenceReplayTest : public testing::TestWithParam<std::string> {};

TEST_P(ReferenceReplayTest, MatchesTransformersWithin1e4) {
  ReplayOptions o;
  o.model_dir = kTestData + GetParam();
  o.reference = kTestData + GetParam() + "/reference.safetensors";
  o.device = "reference";
  o.threads = 2;
  o.max_rows = 48;
  o.max_rel_l2 = 1e-4;
  const ReplayResult r = RunReplay(o);
  EXPECT_TRUE(r.pass);
  ASSERT_GE(r.steps.size(), 5u);
  for (const ReplayStep& s : r.steps) {
    EXPECT_LE(s.rel_l2, 1e-4);
    EXPECT_EQ(s.top1_agree, s.rows);
  }
}

INSTANTIATE_TEST_SUITE_P(TinyModels, ReferenceReplayTest, testing::Values("tiny-a", "tiny-b"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) ch = ch == '-' ? '_' : ch;
                           return n;
                         });

// tiny-a's reference holds the hidden state of each prompt's last position after every layer.
TEST(ModelTest, HiddenStatesMatchTransformersAtEveryLayer) {
  ThreadPool pool(2);
  const HfCheckpoint ck = HfCheckpoint::Open(kTestData + "tiny-a");
  const auto x = MakeCpuExecutor(ck.config(), pool);
  const ModelWeights w = LoadModelWeights(ck, *x);
  const auto ref = SafetensorsFile::Open(kTestData + "tiny-a/reference.safetensors");
  const TensorView& ids_view = ref->Get("prompt_ids");
  const std::vector<int32_t> ids = ids_view.ToI32(), lens = ref->Get("prompt_lens").ToI32();
  const size_t n = lens.size(), width = ids_view.shape[1], layers = w.config.layers;
  const size_t h = w.config.hidden;
  const AlignedBuffer<float> hidden_ref = ref->Get("prefill_last_hidden_per_layer").ToF32();
  ASSERT_EQ(hidden_ref.size(), n * (layers + 1) * h);

  Model::Options o;
  o.max_users = n;
  o.max_seq = width;
  o.max_rows = 64;
  Model model(w, o, *x);
  std::vector<Model::Row> rows;
  std::vector<uint8_t> want;
  std::vector<size_t> last_row(n);
  for (size_t b = 0; b < n; ++b) {
    for (int32_t j = 0; j < lens[b]; ++j) {
      rows.push_back({static_cast<int32_t>(b), ids[b * width + j]});
      want.push_back(0);
    }
    last_row[b] = rows.size() - 1;
  }
  // got[b][depth]: the engine's hidden state of user b's last prompt token.
  std::vector<std::vector<std::vector<float>>> got(n, std::vector<std::vector<float>>(layers + 1));
  const Model::Observer observer = [&](size_t row0, size_t count, size_t depth, const bf16* hid,
                                       const int32_t*) {
    for (size_t b = 0; b < n; ++b) {
      if (last_row[b] < row0 || last_row[b] >= row0 + count) continue;
      const bf16* row = hid + (last_row[b] - row0) * h;
      std::vector<float>& g = got[b][depth];
      g.resize(h);
      if (depth == layers) {  // transformers' last entry is after the final norm
        std::vector<bf16> normed(h);
        cpu::GetCpuKernels(cpu::CpuPath::kScalar)
            .rms_norm_bf16(row, cpu::AsCpu(*w.lm.final_norm).vec.data(), h,
                           static_cast<float>(w.config.rms_norm_eps), normed.data());
        for (size_t k = 0; k < h; ++k) g[k] = Bf16ToF32(normed[k]);
      } else {
        for (size_t k = 0; k < h; ++k) g[k] = Bf16ToF32(row[k]);
      }
    }
  };
  model.Forward(rows, want, nullptr, &observer);
  for (size_t b = 0; b < n; ++b) {
    for (size_t depth = 0; depth <= layers; ++depth) {
      ASSERT_EQ(got[b][depth].size(), h);
      const float* r = hidden_ref.data() + (b * (layers + 1) + depth) * h;
      // The embedding is exact (a bf16 row); each layer adds bf16 rounding of its stages.
      const double err = RelL2(got[b][depth].data(), r, h);
      EXPECT_LE(err, depth == 0 ? 0.0 : 2e-2) << "user " << b << " depth " << depth;
    }
  }
}

// The tiny model at head_dim GetParam(): 32 (no padding), 48 (KV pages and q tiles padded
// to 64 inside; q_dim 192, kv_dim 96). One checkpoint per head_dim, written on first use.
class ModelFixture : public testing::TestWithParam<int> {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("model");
    pool_ = new ThreadPool(2);
  }
  static void TearDownTestSuite() {
    for (auto& [head_dim, w] : weights_) delete w;
    weights_.clear();
    executors_.clear();
    delete pool_;
    delete dir_;
  }
  static const ModelWeights& Weights(int head_dim) {
    ModelWeights*& w = weights_[head_dim];
    if (w == nullptr) {
      Qwen3Config c = TinyConfig(true);
      c.head_dim = head_dim;
      const std::string sub = dir_->Sub("m" + std::to_string(head_dim));
      WriteSyntheticCheckpoint(c, {.seed = 11}, sub);
      w = new ModelWeights(LoadModelWeights(HfCheckpoint::Open(sub), Executor(head_dim)));
    }
    return *w;
  }
  Model Make(size_t max_rows, size_t max_seq = 512, size_t block_size = 32,
             cpu::CpuPath path = cpu::SelectCpuPath()) const {
    Model::Options o;
    o.max_users = 4;
    o.max_seq = max_seq;
    o.block_size = block_size;
    o.max_rows = max_rows;
    o.pages_per_split = 2;  // the same splits whatever the batch: comparable bit for bit
    return Model(Weights(GetParam()), o, Executor(GetParam(), path));
  }
  // One executor per (head_dim, path): models borrow them.
  static cpu::CpuExecutor& Executor(int head_dim, cpu::CpuPath path = cpu::SelectCpuPath()) {
    std::unique_ptr<cpu::CpuExecutor>& x = executors_[{head_dim, path}];
    if (x == nullptr) {
      Qwen3Config c = TinyConfig(true);
      c.head_dim = head_dim;
      x = MakeCpuExecutor(c, *pool_, path);
    }
    return *x;
  }
  static std::vector<int32_t> Prompt(size_t len, int32_t salt) {
    std::vector<int32_t> p(len);
    for (size_t i = 0; i < len; ++i) p[i] = static_cast<int32_t>((i * 37 + salt * 11) % 100);
    return p;
  }
  static inline ScratchDir* dir_ = nullptr;
  static inline ThreadPool* pool_ = nullptr;
  static inline std::map<int, ModelWeights*> weights_;
  static inline std::map<std::pair<int, cpu::CpuPath>, std::unique_ptr<cpu::CpuExecutor>>
      executors_;
};

// Users with different prompt lengths prefilled together, in passes of 16 rows, equal the
// same tokens fed one decode step at a time.
TEST_P(ModelFixture, PrefillEqualsTokenByTokenDecode) {
  const size_t vocab = 100;
  const std::vector<std::vector<int32_t>> prompts = {Prompt(70, 1), Prompt(1, 2), Prompt(33, 3)};
  const std::vector<int32_t> users = {2, 0, 3};
  Model batched = Make(16);
  std::vector<float> pre(prompts.size() * vocab);
  batched.Prefill(users, prompts, pre.data());
  for (size_t i = 0; i < users.size(); ++i) EXPECT_EQ(batched.Length(users[i]), prompts[i].size());

  Model single = Make(16);
  std::vector<float> step(vocab);
  for (size_t i = 0; i < prompts.size(); ++i) {
    for (int32_t tok : prompts[i]) {
      const int32_t u[] = {users[i]}, t[] = {tok};
      single.Decode(u, t, step.data());
    }
    double worst = 0;
    for (size_t v = 0; v < vocab; ++v) {
      worst = std::max(worst, std::fabs(double(step[v]) - pre[i * vocab + v]));
    }
    EXPECT_LT(worst, 1e-4) << "prompt " << i;
  }
  // A further decode step continues both the same way.
  const int32_t u[] = {2, 0, 3}, t[] = {5, 6, 7};
  std::vector<float> a(3 * vocab), b(3 * vocab);
  batched.Decode(u, t, a.data());
  single.Decode(u, t, b.data());
  EXPECT_LT(RelL2(a.data(), b.data(), a.size()), 1e-5);
}

TEST_P(ModelFixture, PassSizeDoesNotChangeTheResult) {
  const std::vector<std::vector<int32_t>> prompts = {Prompt(45, 4), Prompt(20, 5)};
  const std::vector<int32_t> users = {0, 1};
  std::vector<float> a(200), b(200);
  Model small = Make(5);
  small.Prefill(users, prompts, a.data());
  Model big = Make(64);
  big.Prefill(users, prompts, b.data());
  EXPECT_EQ(a, b);
}

TEST_P(ModelFixture, BadRequestsAreErrorsThatChangeNothing) {
  Model m = Make(16, 64);
  std::vector<float> logits(400);
  const std::vector<int32_t> u0 = {0};
  m.Prefill(u0, {Prompt(10, 1)}, logits.data());
  ASSERT_EQ(m.Length(0), 10u);
  EXPECT_TRUE(ThrowsError([&] { m.Prefill(u0, {{1, 2, 100}}, logits.data()); },
                          {"token id 100", "expected 0..99"}));
  EXPECT_TRUE(ThrowsError([&] { m.Prefill(u0, {{-1}}, logits.data()); }, {"token id -1"}));
  const std::vector<int32_t> u9 = {9};
  EXPECT_TRUE(ThrowsError([&] { m.Prefill(u9, {{1}}, logits.data()); }, {"user 9", "0..3"}));
  EXPECT_TRUE(ThrowsError([&] { m.Prefill(u0, {Prompt(55, 2)}, logits.data()); },
                          {"user 0", "65 tokens", "max_seq = 64"}));
  EXPECT_TRUE(ThrowsError([&] { m.Prefill(u0, {{}}, logits.data()); }, {"prompt 0 is empty"}));
  const std::vector<int32_t> dup = {1, 1}, toks = {3, 4};
  EXPECT_TRUE(ThrowsError([&] { m.Decode(dup, toks, logits.data()); }, {"user 1 appears twice"}));
  EXPECT_EQ(m.Length(0), 10u);
  EXPECT_EQ(m.Length(1), 0u);
  // The cache is intact: the next token gives what an untouched model gives.
  Model fresh = Make(16, 64);
  fresh.Prefill(u0, {Prompt(10, 1)}, logits.data());
  std::vector<float> a(100), b(100);
  const int32_t t[] = {42};
  m.Decode(u0, t, a.data());
  fresh.Decode(u0, t, b.data());
  EXPECT_EQ(a, b);
  m.Reset(0);
  EXPECT_EQ(m.Length(0), 0u);
}

// Whole-model decode equals prefill bit for bit, logits included, on every CPU path: the
// same users' prompts prefilled in one 16-row pass and fed one token per step. Rows of a pass
// never mix (per-row matmuls; fixed pages_per_split).
TEST_P(ModelFixture, PrefillEqualsTokenByTokenDecodeBitForBitOnEveryPath) {
  const size_t vocab = 100;
  const std::vector<std::vector<int32_t>> prompts = {Prompt(40, 6), Prompt(3, 7), Prompt(70, 8)};
  const std::vector<int32_t> users = {1, 3, 0};
  for (cpu::CpuPath path : cpu::AvailableCpuPaths()) {
    SCOPED_TRACE(cpu::ToString(path));
    Model batched = Make(16, 512, 32, path);
    std::vector<float> pre(prompts.size() * vocab);
    batched.Prefill(users, prompts, pre.data());
    Model single = Make(16, 512, 32, path);
    std::vector<float> step(vocab);
    for (size_t i = 0; i < prompts.size(); ++i) {
      for (int32_t tok : prompts[i]) {
        const int32_t u[] = {users[i]}, t[] = {tok};
        single.Decode(u, t, step.data());
      }
      EXPECT_EQ(std::vector<float>(pre.begin() + i * vocab, pre.begin() + (i + 1) * vocab), step)
          << "prompt " << i;
    }
    const int32_t u[] = {1, 3, 0}, t[] = {9, 10, 11};
    std::vector<float> a(3 * vocab), b(3 * vocab);
    batched.Decode(u, t, a.data());
    single.Decode(u, t, b.data());
    EXPECT_EQ(a, b);
  }
}

TEST_P(ModelFixture, BadOptionsAreErrors) {
  EXPECT_TRUE(ThrowsError([&] { Make(16, 64, 48); }, {"block_size = 48", "multiple of 32"}));
  EXPECT_TRUE(ThrowsError([&] { Make(16, 0); }, {"max_seq = 0"}));
}

INSTANTIATE_TEST_SUITE_P(HeadDims, ModelFixture, testing::Values(32, 48),
                         [](const testing::TestParamInfo<int>& info) {
                           return "head_dim_" + std::to_string(info.param);
                         });

}  // namespace
}  // namespace qwen3
