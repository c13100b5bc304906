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

// The schema names exactly what the shared files hold: transformers' checkpoint and llama.cpp's
// GGUF of tiny-a (their openers check the set both ways).
TEST(TensorSchemaTest, MatchesRealFiles) {
  const HfCheckpoint hf = HfCheckpoint::Open(kTestData + "hf-qwen3/tiny-a");
  const GgufCheckpoint gguf = GgufCheckpoint::Open(kTestData + "gguf/tiny-a.q4_k_m.gguf");
  for (const TensorSpec& t : TensorSchema(hf.config())) {
    EXPECT_EQ(hf.Get(t.hf).shape, t.shape) << t.hf;
    const GgufTensor& g = gguf.Get(t.gguf);
    EXPECT_EQ(std::vector<size_t>(g.dims.rbegin(), g.dims.rend()), t.shape) << t.gguf;
  }
}

}  // namespace
}  // namespace qwen3
