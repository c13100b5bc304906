#include "io/hf_checkpoint.h"
#include "io/load_weights.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "exec/cpu/cpu_path.h"
#include "model/model.h"
#include "model/model_weights.h"
#include "runtime/thread_pool.h"
#include "tests/executor_util.h"
#include "tests/checkpoint_util.h"
#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

using testing_ck::Keep;
using testing_ck::RewriteSingleFile;
using testing_ck::ScratchDir;
using testing_ck::TinyConfig;
namespace fs = std::filesystem;

// Greedy logits of a short prompt: the fingerprint of a loaded model.
std::vector<float> Logits(const std::string& dir) {
  ThreadPool pool(2);
  const HfCheckpoint ck = HfCheckpoint::Open(dir);
  const auto x = MakeCpuExecutor(ck.config(), pool);
  const ModelWeights w = LoadModelWeights(ck, *x);
  Model::Options o;
  o.max_users = 1;
  o.max_seq = 64;
  Model m(w, o, *x);
  std::vector<float> logits(w.config.vocab);
  const std::vector<int32_t> users = {0};
  m.Prefill(users, {{1, 5, 9, 42, 99}}, logits.data());
  return logits;
}

TEST(HfCheckpointTest, LoadsASingleFileCheckpoint) {
  ScratchDir d("single");
  const Qwen3Config c = TinyConfig(false);
  const auto info = WriteSyntheticCheckpoint(c, {.seed = 3}, d.Sub("m"));
  EXPECT_EQ(info.shards, 1u);
  EXPECT_EQ(info.tensors, 3u + 11u * c.layers);
  const HfCheckpoint ck = HfCheckpoint::Open(d.Sub("m"));
  EXPECT_EQ(ck.config().hidden, c.hidden);
  EXPECT_EQ(ck.config().layers, c.layers);
  EXPECT_EQ(ck.num_files(), 1u);
  EXPECT_EQ(ck.bytes(), info.bytes);
  EXPECT_EQ(ck.Get("model.layers.1.mlp.down_proj.weight").ShapeString(), "[64, 128]");
  EXPECT_TRUE(ck.Has(HfNames::LmHead()));
  const std::vector<float> logits = Logits(d.Sub("m"));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
}

// The same weights in 1 file or in shards load to the same model, bit for bit.
TEST(HfCheckpointTest, ShardedEqualsSingleFile) {
  ScratchDir d("sharded");
  const Qwen3Config c = TinyConfig(false);
  WriteSyntheticCheckpoint(c, {.seed = 5}, d.Sub("one"));
  const auto info = WriteSyntheticCheckpoint(c, {.seed = 5, .max_shard_bytes = 60000}, d.Sub("many"));
  ASSERT_GT(info.shards, 1u);
  ASSERT_LT(info.shards, 10u);
  EXPECT_TRUE(fs::exists(d.Sub("many") + "/model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(d.Sub("many") + "/model-00001-of-0000" + std::to_string(info.shards) +
                         ".safetensors"));
  EXPECT_EQ(HfCheckpoint::Open(d.Sub("many")).num_files(), info.shards);
  EXPECT_EQ(Logits(d.Sub("one")), Logits(d.Sub("many")));
}

// Tied: no lm_head.weight; the LM head is the embedding, stored once (packed) and embedding
// rows are looked up there.
TEST(HfCheckpointTest, TiedEmbeddingsUseEmbedTokens) {
  ScratchDir d("tied");
  WriteSyntheticCheckpoint(TinyConfig(true), {.seed = 7}, d.Sub("m"));
  const HfCheckpoint ck = HfCheckpoint::Open(d.Sub("m"));
  EXPECT_FALSE(ck.Has(HfNames::LmHead()));
  ThreadPool pool(1);
  const auto x = MakeCpuExecutor(ck.config(), pool);
  const ModelWeights w = LoadModelWeights(ck, *x);
  EXPECT_TRUE(w.embed == nullptr);
  const AlignedBuffer<bf16> embed = ck.Get(HfNames::Embed()).ToBf16();
  std::vector<bf16> row(64);
  for (int32_t tok : {0, 37, 99}) {
    x->Embed(w.embedding(), {&tok, 1}, Act::kHidden);
    x->Download(Act::kHidden, 1, row.data());
    for (size_t k = 0; k < 64; ++k) ASSERT_EQ(row[k], embed[tok * 64 + k]);
  }
}

// F32 and F16 checkpoints are converted at load: F32 holding bf16 values gives the same model.
TEST(HfCheckpointTest, Fp32AndFp16CheckpointsAreConverted) {
  ScratchDir d("dtypes");
  const Qwen3Config c = TinyConfig(false);
  WriteSyntheticCheckpoint(c, {.seed = 9}, d.Sub("bf16"));
  for (const char* name : {"f32", "f16"}) {
    WriteSyntheticCheckpoint(c, {.seed = 9}, d.Sub(name));
    const bool f16 = std::string(name) == "f16";
    RewriteSingleFile(d.Sub(name), [&](const TensorView& t, SafetensorsWriter& w) {
      const AlignedBuffer<float> v = t.ToF32();
      if (!f16) {
        w.AddCopy(t.name, DType::kF32, t.shape, v.data());
        return;
      }
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i) {  // values are normal in f16 range: exact enough
        const float x = v[i];
        uint32_t bits;
        std::memcpy(&bits, &x, 4);
        const int e = static_cast<int>((bits >> 23) & 0xff) - 127;
        h[i] = x == 0 ? 0
                      : static_cast<uint16_t>(((bits >> 16) & 0x8000) |
                                              (e < -14 ? 0 : ((e + 15) << 10) | ((bits >> 13) & 0x3ff)));
      }
      w.AddCopy(t.name, DType::kF16, t.shape, h.data());
    });
  }
  const std::vector<float> ref = Logits(d.Sub("bf16"));
  EXPECT_EQ(Logits(d.Sub("f32")), ref);
  const std::vector<float> half = Logits(d.Sub("f16"));
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::fabs(double(half[i]) - ref[i]));
  EXPECT_LT(worst, 0.05);
}

struct BadCase {
  const char* tag;
  std::function<void(const std::string& dir)> spoil;
  std::vector<std::string> parts;
};

TEST(HfCheckpointTest, BadCheckpointsAreOneLineErrorsNamingFileAndTensor) {
  const std::string q = "model.layers.0.self_attn.q_proj.weight";
  const std::vector<BadCase> cases = {
      {"missing",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           if (t.name != q) Keep(t, w);
         });
       },
       {"tensor " + q, "missing"}},
      {"extra",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, Keep, [](SafetensorsWriter& w) {
           const float x = 1;
           w.AddCopy("model.layers.7.mlp.gate_proj.weight", DType::kF32, {1}, &x);
         });
       },
       {"tensor model.layers.7.mlp.gate_proj.weight", "unexpected", "model.safetensors"}},
      {"shape",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           if (t.name == q) {
             w.AddCopy(t.name, t.dtype, {t.shape[1], t.shape[0]}, t.data);
           } else {
             Keep(t, w);
           }
         });
       },
       {"tensor " + q, "shape [64, 128], expected [128, 64]"}},
      {"dtype",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           w.AddCopy(t.name, t.name == q ? DType::kI16 : t.dtype, t.shape, t.data);
         });
       },
       {"tensor " + q, "dtype I16, expected BF16, F16 or F32"}},
      {"nan",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           std::vector<uint8_t> bytes(t.data, t.data + t.bytes);
           if (t.name == q) bytes[2 * 70] = 0xc0, bytes[2 * 70 + 1] = 0x7f;  // element 70: NaN
           w.AddCopy(t.name, t.dtype, t.shape, bytes.data());
         });
       },
       {"tensor " + q, "[1, 6]", "NaN"}},
      {"truncated",
       [&](const std::string& dir) {
         fs::resize_file(dir + "/model.safetensors", fs::file_size(dir + "/model.safetensors") - 100);
       },
       {"model.safetensors", "truncated"}},
      {"no-weights", [&](const std::string& dir) { fs::remove(dir + "/model.safetensors"); },
       {"no model.safetensors"}},
      {"bad-config",
       [&](const std::string& dir) { std::ofstream(dir + "/config.json") << "{\"hidden_size\": "; },
       {"config.json"}},
  };
  for (const BadCase& bc : cases) {
    ScratchDir d(std::string("bad_") + bc.tag);
    WriteSyntheticCheckpoint(TinyConfig(false), {.seed = 1}, d.Sub("m"));
    bc.spoil(d.Sub("m"));
    const auto load = [&] {
      ThreadPool pool(1);
      const HfCheckpoint ck = HfCheckpoint::Open(d.Sub("m"));
      LoadModelWeights(ck, *MakeCpuExecutor(ck.config(), pool));
    };
    for (const std::string& part : bc.parts) EXPECT_TRUE(ThrowsError(load, {part})) << bc.tag;
  }
}

// A tiny Qwen3-MoE: 4 experts, top-2 (or top-4 of 4), layer 1 a dense MLP (mlp_only_layers).
Qwen3Config TinyMoe(int used = 2, bool norm_topk = true) {
  Qwen3Config c = TinyConfig(false);
  c.name = "tiny-moe";
  c.experts = 4;
  c.experts_used = used;
  c.moe_intermediate = 64;
  c.norm_topk_prob = norm_topk;
  c.mlp_only_layers = {1};
  return c;
}

// Logits of one prompt on the named executor, and the experts each token chose in layer 0.
struct MoeRun {
  std::vector<float> logits;
  std::vector<int32_t> experts;
};
MoeRun RunMoe(const std::string& dir, const std::string& device) {
  ThreadPool pool(2);
  const HfCheckpoint ck = HfCheckpoint::Open(dir);
  const auto x = MakeExecutor(DimsOf(ck.config()), {device, 16}, pool);
  const ModelWeights w = LoadModelWeights(ck, *x);
  EXPECT_TRUE(w.layers[0].moe());
  EXPECT_EQ(w.layers[0].expert_gate_up.size(), 4u);
  EXPECT_FALSE(w.layers[1].moe());  // mlp_only_layers
  EXPECT_TRUE(w.layers[1].w_gate_up != nullptr);
  Model::Options o;
  o.max_users = 1;
  o.max_seq = 64;
  Model m(w, o, *x);
  MoeRun run;
  run.logits.resize(w.config.vocab);
  const Model::Observer observe = [&](size_t, size_t n, size_t depth, const bf16*,
                                      const int32_t* experts) {
    EXPECT_EQ(experts != nullptr, depth == 1) << depth;  // layer 0 only
    if (experts) run.experts.assign(experts, experts + n * w.config.experts_used);
  };
  const std::vector<int32_t> prompt = {1, 5, 9, 42, 99, 3, 7};
  std::vector<Model::Row> rows;
  for (int32_t t : prompt) rows.push_back({0, t});
  std::vector<uint8_t> want(prompt.size(), 0);
  want.back() = 1;
  m.Forward(rows, want, run.logits.data(), &observe);
  return run;
}

double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff += (a[i] - b[i]) * (a[i] - b[i]);
    norm += b[i] * b[i];
  }
  return std::sqrt(diff / norm);
}

// The router's edge cases end to end, the CPU against the float32 reference: top-2
// renormalized, top-2 not renormalized (norm_topk_prob false), top-4 of 4 (every expert); a
// dense layer inside. Every token routes to the same experts, in the same order, on both.
// (These synthetic weights move the logits little: routed three ways they differ by only
// 3-4e-3, below the bf16 recipe's 5e-3, so the routing itself is what is compared; the
// weights' renormalization is RouteTopKTest's, shared by both executors.)
TEST(HfCheckpointTest, MoeCheckpointWithADenseLayerRunsAsTheReference) {
  for (const auto& [used, norm_topk] : {std::pair{2, true}, std::pair{2, false}, std::pair{4, true}}) {
    SCOPED_TRACE(testing::Message() << "top-" << used << " norm " << norm_topk);
    ScratchDir d("moe" + std::to_string(used) + std::to_string(norm_topk));
    const Qwen3Config c = TinyMoe(used, norm_topk);
    const SyntheticCheckpointInfo info = WriteSyntheticCheckpoint(c, {.seed = 3}, d.Sub("m"));
    EXPECT_EQ(info.tensors, 1 + 2 * 8 + (1 + 3 * 4) + 3 + 2u);  // embed, attention, MoE, MLP, head
    Qwen3Config want = c;
    want.name = d.Sub("m") + "/config.json";
    EXPECT_EQ(HfCheckpoint::Open(d.Sub("m")).config(), want);  // config.json round trip
    const MoeRun cpu = RunMoe(d.Sub("m"), "cpu"), ref = RunMoe(d.Sub("m"), "reference");
    EXPECT_LT(RelL2(cpu.logits, ref.logits), 3e-2);  // the bf16 recipe
    ASSERT_EQ(ref.experts.size(), 7u * used);
    EXPECT_EQ(cpu.experts, ref.experts);
    if (used == 4) {  // top-4 of 4: every expert, each once
      for (size_t t = 0; t < 7; ++t) {
        std::vector<int32_t> e(ref.experts.begin() + t * 4, ref.experts.begin() + t * 4 + 4);
        std::sort(e.begin(), e.end());
        EXPECT_EQ(e, (std::vector<int32_t>{0, 1, 2, 3}));
      }
    }
  }
}

TEST(HfCheckpointTest, BadMoeCheckpointsNameTheTensor) {
  const std::string up = "model.layers.0.mlp.experts.3.up_proj.weight";
  const std::string router = "model.layers.0.mlp.gate.weight";
  const std::vector<BadCase> cases = {
      {"missing-expert",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           if (t.name != up) Keep(t, w);
         });
       },
       {"tensor " + up + ": missing"}},
      {"extra-expert",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, Keep, [](SafetensorsWriter& w) {
           const float x = 1;
           w.AddCopy("model.layers.0.mlp.experts.4.up_proj.weight", DType::kF32, {1}, &x);
         });
       },
       {"tensor model.layers.0.mlp.experts.4.up_proj.weight",
        "unexpected for a 2-layer Qwen3-MoE (4 experts) checkpoint"}},
      {"router-shape",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           if (t.name == router) {
             w.AddCopy(t.name, t.dtype, {t.shape[0] - 1, t.shape[1]}, t.data);
           } else {
             Keep(t, w);
           }
         });
       },
       {"tensor " + router, "shape [3, 64], expected [4, 64]"}},
      {"dense-in-moe-layer",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, Keep, [](SafetensorsWriter& w) {
           const float x = 1;
           w.AddCopy("model.layers.0.mlp.up_proj.weight", DType::kF32, {1}, &x);
         });
       },
       {"tensor model.layers.0.mlp.up_proj.weight", "unexpected"}},
      {"router-nan",
       [&](const std::string& dir) {
         RewriteSingleFile(dir, [&](const TensorView& t, SafetensorsWriter& w) {
           std::vector<uint8_t> bytes(t.data, t.data + t.bytes);
           if (t.name == router) bytes[2 * 65] = 0xc0, bytes[2 * 65 + 1] = 0x7f;  // [1, 1]
           w.AddCopy(t.name, t.dtype, t.shape, bytes.data());
         });
       },
       {"tensor " + router, "NaN"}},
  };
  for (const BadCase& bc : cases) {
    ScratchDir d(std::string("badmoe_") + bc.tag);
    WriteSyntheticCheckpoint(TinyMoe(), {.seed = 1}, d.Sub("m"));
    bc.spoil(d.Sub("m"));
    const auto load = [&] {
      ThreadPool pool(1);
      const HfCheckpoint ck = HfCheckpoint::Open(d.Sub("m"));
      LoadModelWeights(ck, *MakeCpuExecutor(ck.config(), pool));
    };
    for (const std::string& part : bc.parts) EXPECT_TRUE(ThrowsError(load, {part})) << bc.tag;
  }
}

TEST(HfCheckpointTest, BadShardIndexesAreErrors) {
  const Qwen3Config c = TinyConfig(true);
  using json = nlohmann::json;
  const auto edit_index = [](const std::string& dir, const std::function<void(json&)>& f) {
    const std::string path = dir + "/model.safetensors.index.json";
    json j = json::parse(std::ifstream(path));
    f(j);
    std::ofstream(path) << j.dump();
  };
  const std::string e = HfNames::Embed();
  const std::vector<BadCase> cases = {
      {"wrong-file",
       [&](const std::string& dir) {
         edit_index(dir, [&](json& j) { j["weight_map"][e] = "model-00002-of-00004.safetensors"; });
       },
       {"tensor " + e, "the index puts it in model-00002-of-00004.safetensors"}},
      {"not-indexed",
       [&](const std::string& dir) { edit_index(dir, [&](json& j) { j["weight_map"].erase(e); }); },
       {"tensor " + e, "not in the weight_map"}},
      {"absent",
       [&](const std::string& dir) {
         edit_index(dir, [&](json& j) { j["weight_map"]["model.extra.weight"] = "model-00001-of-00004.safetensors"; });
       },
       {"tensor model.extra.weight", "lacks it"}},
      {"duplicated",
       [&](const std::string& dir) {
         // The embedding also in shard 2.
         const std::string s1 = dir + "/model-00001-of-00004.safetensors";
         const std::string s2 = dir + "/model-00002-of-00004.safetensors";
         SafetensorsWriter w;
         {
           const auto f1 = SafetensorsFile::Open(s1), f2 = SafetensorsFile::Open(s2);
           for (const TensorView& t : f2->tensors()) Keep(t, w);
           Keep(f1->Get(e), w);
         }
         w.Write(s2);
       },
       {"tensor " + e, "in both"}},
      {"bad-json",
       [&](const std::string& dir) { std::ofstream(dir + "/model.safetensors.index.json") << "{"; },
       {"model.safetensors.index.json", "not valid JSON"}},
      {"missing-shard",
       [&](const std::string& dir) { fs::remove(dir + "/model-00003-of-00004.safetensors"); },
       {"model-00003-of-00004.safetensors"}},
  };
  for (const BadCase& bc : cases) {
    ScratchDir d(std::string("idx_") + bc.tag);
    const auto info = WriteSyntheticCheckpoint(c, {.seed = 1, .max_shard_bytes = 70000}, d.Sub("m"));
    ASSERT_EQ(info.shards, 4u);
    bc.spoil(d.Sub("m"));
    for (const std::string& part : bc.parts) {
      EXPECT_TRUE(ThrowsError([&] { HfCheckpoint::Open(d.Sub("m")); }, {part})) << bc.tag;
    }
  }
}

TEST(HfCheckpointTest, MakeCheckpointRefusesANonEmptyDirectory) {
  ScratchDir d("nonempty");
  fs::create_directories(d.Sub("m"));
  std::ofstream(d.Sub("m") + "/keep.txt") << "x";
  EXPECT_TRUE(ThrowsError([&] { WriteSyntheticCheckpoint(TinyConfig(false), {}, d.Sub("m")); },
                          {d.Sub("m"), "not empty"}));
  EXPECT_TRUE(fs::exists(d.Sub("m") + "/keep.txt"));
}

}  // namespace
}  // namespace qwen3
