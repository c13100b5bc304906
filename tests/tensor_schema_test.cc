#include "model/tensor_schema.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "io/gguf_checkpoint.h"
#include "io/hf_checkpoint.h"

namespace qwen3 {
namespace {

const std::string kTestData = std::string(QWEN3_SHARED_DIR) + "/testdata/";

TEST(TensorSchemaTest, OneRowPerTensorInHfOrder) {
  Qwen3Config c = Qwen3_14B();
  c.layers = 3;
  const std::vector<TensorSpec> t = TensorSchema(c);
  ASSERT_EQ(t.size(), 3 + 11 * 3u);
  EXPECT_EQ(t.front().hf, "model.embed_tokens.weight");
  EXPECT_EQ(t.front().gguf, "token_embd.weight");
  EXPECT_EQ(t[t.size() - 2].hf, "model.norm.weight");
  EXPECT_EQ(t.back().gguf, "output.weight");
  std::set<std::string> hf, gguf;
  for (size_t i = 0; i < t.size(); ++i) {
    EXPECT_TRUE(hf.insert(t[i].hf).second) << t[i].hf;
    EXPECT_TRUE(gguf.insert(t[i].gguf).second) << t[i].gguf;
    EXPECT_EQ(t[i].layer >= 0, t[i].slot != nullptr) << t[i].hf;
    EXPECT_EQ(t[i].kind == TensorKind::kNorm, !t[i].matrix()) << t[i].hf;
    if (t[i].kind == TensorKind::kGate) {  // the loaders pack the next row with it
      ASSERT_LT(i + 1, t.size());
      EXPECT_EQ(t[i + 1].kind, TensorKind::kUp);
      EXPECT_EQ(t[i + 1].layer, t[i].layer);
    }
  }
  const TensorSpec& q = t[1 + 2];  // layer 0: input norm, post norm, q
  EXPECT_EQ(q.hf, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.gguf, "blk.0.attn_q.weight");
  EXPECT_EQ(q.shape, (std::vector<size_t>{5120, 5120}));
  EXPECT_EQ(q.weight_role, WeightRole::kQ);
  EXPECT_EQ(q.slot, &LayerWeights::wq);
  c.tied_embeddings = true;
  EXPECT_EQ(TensorSchema(c).size(), 2 + 11 * 3u);
}

TEST(TensorSchemaTest, MoeLayersHoldARouterAndStackedExperts) {
  Qwen3Config c = PresetConfig("30b-a3b");
  c.layers = 3;
  c.mlp_only_layers = {1};
  const std::vector<TensorSpec> t = TensorSchema(c);
  ASSERT_EQ(t.size(), 3 + 8 * 3 + 4 * 2 + 3u);  // attention, then MoE or the dense MLP
  const TensorSpec& router = t[1 + 8];
  EXPECT_EQ(router.kind, TensorKind::kRouter);
  EXPECT_EQ(router.hf, "model.layers.0.mlp.gate.weight");
  EXPECT_EQ(router.gguf, "blk.0.ffn_gate_inp.weight");
  EXPECT_EQ(router.shape, (std::vector<size_t>{128, 2048}));
  EXPECT_EQ(router.slot, &LayerWeights::router);
  const TensorSpec& gate = t[1 + 9];
  EXPECT_EQ(gate.kind, TensorKind::kGate);
  EXPECT_EQ(t[1 + 10].kind, TensorKind::kUp);
  EXPECT_EQ(gate.experts, 128);
  EXPECT_EQ(gate.experts_slot, &LayerWeights::expert_gate_up);
  EXPECT_EQ(gate.HfExpert(5), "model.layers.0.mlp.experts.5.gate_proj.weight");
  EXPECT_EQ(gate.HfTensors().size(), 128u);
  EXPECT_EQ(gate.gguf, "blk.0.ffn_gate_exps.weight");
  EXPECT_EQ(gate.GgufDims(), (std::vector<uint64_t>{2048, 768, 128}));
  const TensorSpec& down = t[1 + 11];
  EXPECT_EQ(down.gguf, "blk.0.ffn_down_exps.weight");
  EXPECT_EQ(down.GgufDims(), (std::vector<uint64_t>{768, 2048, 128}));
  EXPECT_EQ(t[1 + 12 + 8].hf, "model.layers.1.mlp.gate_proj.weight");  // dense layer 1
  EXPECT_EQ(t[1 + 12 + 8].shape, (std::vector<size_t>{6144, 2048}));
}

// The schema names exactly what the shared files hold: transformers' checkpoints and llama.cpp's
// GGUFs of tiny-a and tiny-moe-a (their openers check the set both ways).
TEST(TensorSchemaTest, MatchesRealFiles) {
  for (const char* name : {"tiny-a", "tiny-moe-a"}) {
    const HfCheckpoint hf = HfCheckpoint::Open(kTestData + "hf-qwen3/" + name);
    const GgufCheckpoint gguf =
        GgufCheckpoint::Open(kTestData + "gguf/" + name + ".q4_k_m.gguf");
    for (const TensorSpec& t : TensorSchema(hf.config())) {
      for (const std::string& n : t.HfTensors()) EXPECT_EQ(hf.Get(n).shape, t.shape) << n;
      EXPECT_EQ(gguf.Get(t.gguf).dims, t.GgufDims()) << t.gguf;
    }
  }
}

}  // namespace
}  // namespace qwen3
