// Presets match spec/qwen3-models.md, round-trip through HF config.json, and every bad input
// gets a one-line qwen3::Error naming the value.
#include "model/config.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "tests/error_matchers.h"

namespace qwen3 {
namespace {

using ojson = nlohmann::ordered_json;

// config.json as transformers 4.51 writes it for the released Qwen3 checkpoints.
ojson HfJson(const Qwen3Config& c) {
  if (c.moe()) {  // Qwen3-30B-A3B's config.json
    Qwen3Config dense = c;
    dense.experts = 0;
    ojson j = HfJson(dense);
    j["architectures"] = {"Qwen3MoeForCausalLM"};
    j["model_type"] = "qwen3_moe";
    j["num_experts"] = c.experts;
    j["num_experts_per_tok"] = c.experts_used;
    j["moe_intermediate_size"] = c.moe_intermediate;
    j["norm_topk_prob"] = c.norm_topk_prob;
    j["decoder_sparse_step"] = c.decoder_sparse_step;
    j["mlp_only_layers"] = c.mlp_only_layers;
    j["output_router_logits"] = false;
    j["router_aux_loss_coef"] = 0.001;
    return j;
  }
  return ojson{
      {"architectures", {"Qwen3ForCausalLM"}},
      {"attention_bias", false},
      {"attention_dropout", 0.0},
      {"bos_token_id", 151643},
      {"eos_token_id", 151645},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"hidden_size", c.hidden},
      {"initializer_range", 0.02},
      {"intermediate_size", c.intermediate},
      {"max_position_embeddings", c.max_position_embeddings},
      {"max_window_layers", c.layers},
      {"model_type", "qwen3"},
      {"num_attention_heads", c.heads},
      {"num_hidden_layers", c.layers},
      {"num_key_value_heads", c.kv_heads},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_scaling", nullptr},
      {"rope_theta", static_cast<long>(c.rope_theta)},  // HF writes 1000000, an integer
      {"sliding_window", nullptr},
      {"tie_word_embeddings", c.tied_embeddings},
      {"torch_dtype", "bfloat16"},
      {"transformers_version", "4.51.0"},
      {"use_cache", true},
      {"use_sliding_window", false},
      {"vocab_size", c.vocab},
  };
}

// A small valid config that the error tests break one field at a time.
ojson Small() {
  Qwen3Config c = Qwen3_0_6B();
  c.hidden = 256;
  c.intermediate = 768;
  c.layers = 2;
  c.heads = 8;
  c.kv_heads = 2;
  c.head_dim = 64;
  c.vocab = 1000;
  return HfJson(c);
}

Qwen3Config Parse(const ojson& j) { return ParseHfConfig(j.dump(2), "t.json"); }

TEST(ConfigTest, PresetsMatchSpecTable) {
  struct Row {
    Qwen3Config config;
    const char* name;
    int hidden, intermediate, layers, heads, kv_heads, group;
    bool tied;
  };
  const Row rows[] = {
      {Qwen3_0_6B(), "qwen3-0.6b", 1024, 3072, 28, 16, 8, 2, true},
      {Qwen3_1_7B(), "qwen3-1.7b", 2048, 6144, 28, 16, 8, 2, true},
      {Qwen3_4B(), "qwen3-4b", 2560, 9728, 36, 32, 8, 4, true},
      {Qwen3_8B(), "qwen3-8b", 4096, 12288, 36, 32, 8, 4, false},
      {Qwen3_14B(), "qwen3-14b", 5120, 17408, 40, 40, 8, 5, false},
      {Qwen3_32B(), "qwen3-32b", 5120, 25600, 64, 64, 8, 8, false},
  };
  for (const Row& r : rows) {
    const Qwen3Config& c = r.config;
    SCOPED_TRACE(r.name);
    EXPECT_NO_THROW(ValidateConfig(c));
    EXPECT_EQ(c.name, r.name);
    EXPECT_EQ(c.hidden, r.hidden);
    EXPECT_EQ(c.intermediate, r.intermediate);
    EXPECT_EQ(c.layers, r.layers);
    EXPECT_EQ(c.heads, r.heads);
    EXPECT_EQ(c.kv_heads, r.kv_heads);
    EXPECT_EQ(c.GroupSize(), r.group);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.vocab, 151936);
    EXPECT_EQ(c.tied_embeddings, r.tied);
    EXPECT_EQ(c.rope_theta, 1e6);
    EXPECT_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_EQ(c.max_position_embeddings, 40960);
    EXPECT_EQ(c.KvDim(), 1024);
  }
  // q_proj is not square on 0.6B (spec).
  EXPECT_EQ(Qwen3_0_6B().QDim(), 2048);
}

TEST(ConfigTest, SeedIs14BWithPaddedVocab) {
  Qwen3Config seed = Qwen3_14BSeed();
  EXPECT_NO_THROW(ValidateConfig(seed));
  EXPECT_EQ(seed.vocab, 152064);
  seed.vocab = Qwen3_14B().vocab;
  seed.name = Qwen3_14B().name;
  EXPECT_EQ(seed, Qwen3_14B());
}

TEST(ConfigTest, PresetNamesResolve) {
  const std::vector<std::string> want = {"0.6b", "1.7b", "4b", "8b", "14b", "32b", "30b-a3b",
                                         "235b-a22b"};
  EXPECT_EQ(PresetNames(), want);
  EXPECT_EQ(PresetConfig("0.6b"), Qwen3_0_6B());
  EXPECT_EQ(PresetConfig("14b"), Qwen3_14B());
  EXPECT_EQ(ResolveConfig("32b"), Qwen3_32B());
}

TEST(ConfigTest, EveryPresetRoundTripsThroughHfJson) {
  for (const std::string& name : PresetNames()) {
    const Qwen3Config c = PresetConfig(name);
    SCOPED_TRACE(name);
    EXPECT_EQ(ParseHfConfig(HfJson(c).dump(2), c.name), c);
  }
}

TEST(ConfigTest, OptionalFieldsDefaultLikeHf) {
  ojson j = Small();
  for (const char* key : {"head_dim", "tie_word_embeddings", "rope_theta", "rms_norm_eps",
                          "max_position_embeddings", "model_type", "hidden_act"}) {
    j.erase(key);
  }
  const Qwen3Config c = Parse(j);
  EXPECT_EQ(c.name, "t.json");
  EXPECT_EQ(c.head_dim, 256 / 8);
  EXPECT_FALSE(c.tied_embeddings);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_EQ(c.max_position_embeddings, 40960);
}

TEST(ConfigTest, ReadsTransformers5RopeParameters) {
  ojson j = Small();
  j.erase("rope_theta");
  j.erase("rope_scaling");
  j["rope_parameters"] = {{"rope_theta", 500000.0}, {"rope_type", "default"}};
  EXPECT_EQ(Parse(j).rope_theta, 5e5);
}

TEST(ConfigTest, AcceptsIntegralFloats) {
  ojson j = Small();
  j["hidden_size"] = 256.0;
  EXPECT_EQ(Parse(j).hidden, 256);
}

#ifdef QWEN3_SHARED_DIR
const std::string kHfDir = std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3";
#endif

TEST(ConfigTest, LoadsTinyCheckpointConfigs) {
#ifndef QWEN3_SHARED_DIR
  GTEST_SKIP() << "QWEN3_SHARED_DIR not defined";
#else
  const Qwen3Config a = ResolveConfig(kHfDir + "/tiny-a/config.json");
  EXPECT_EQ(a.name, kHfDir + "/tiny-a/config.json");
  EXPECT_EQ(a.hidden, 256);
  EXPECT_EQ(a.intermediate, 768);
  EXPECT_EQ(a.layers, 4);
  EXPECT_EQ(a.heads, 8);
  EXPECT_EQ(a.kv_heads, 2);
  EXPECT_EQ(a.head_dim, 64);
  EXPECT_EQ(a.vocab, 2048);
  EXPECT_FALSE(a.tied_embeddings);
  EXPECT_EQ(a.rope_theta, 1e6);
  EXPECT_EQ(a.rms_norm_eps, 1e-6);
  EXPECT_EQ(a.max_position_embeddings, 4096);

  const Qwen3Config b = LoadHfConfig(kHfDir + "/tiny-b/config.json");
  EXPECT_EQ(b.hidden, 320);
  EXPECT_EQ(b.intermediate, 896);
  EXPECT_EQ(b.layers, 3);
  EXPECT_EQ(b.heads, 10);
  EXPECT_EQ(b.kv_heads, 2);
  EXPECT_EQ(b.GroupSize(), 5);  // like 14B
  EXPECT_EQ(b.head_dim, 32);
  EXPECT_EQ(b.vocab, 3000);
  EXPECT_TRUE(b.tied_embeddings);
#endif
}

TEST(ConfigTest, MoePresetsMatchTheReleasedConfigs) {
  const Qwen3Config a = PresetConfig("30b-a3b");
  EXPECT_NO_THROW(ValidateConfig(a));
  EXPECT_EQ(a.name, "qwen3-30b-a3b");
  EXPECT_EQ(a.hidden, 2048);
  EXPECT_EQ(a.layers, 48);
  EXPECT_EQ(a.heads, 32);
  EXPECT_EQ(a.kv_heads, 4);
  EXPECT_EQ(a.head_dim, 128);
  EXPECT_EQ(a.experts, 128);
  EXPECT_EQ(a.experts_used, 8);
  EXPECT_EQ(a.moe_intermediate, 768);
  EXPECT_TRUE(a.norm_topk_prob);
  EXPECT_FALSE(a.tied_embeddings);
  EXPECT_EQ(a.vocab, 151936);
  for (int l = 0; l < a.layers; ++l) EXPECT_TRUE(a.IsMoeLayer(l)) << l;
  const Qwen3Config b = PresetConfig("235b-a22b");
  EXPECT_EQ(b.hidden, 4096);
  EXPECT_EQ(b.layers, 94);
  EXPECT_EQ(b.heads, 64);
  EXPECT_EQ(b.kv_heads, 4);
  EXPECT_EQ(b.moe_intermediate, 1536);
  EXPECT_FALSE(Qwen3_8B().moe());
  EXPECT_FALSE(Qwen3_8B().IsMoeLayer(0));
}

TEST(ConfigTest, ReadsQwen3Moe) {
  Qwen3Config c = PresetConfig("30b-a3b");
  c.layers = 6;
  c.decoder_sparse_step = 2;
  c.mlp_only_layers = {3};
  c.norm_topk_prob = false;
  const Qwen3Config got = Parse(HfJson(c));
  EXPECT_EQ(got.experts, 128);
  EXPECT_EQ(got.experts_used, 8);
  EXPECT_EQ(got.moe_intermediate, 768);
  EXPECT_FALSE(got.norm_topk_prob);
  EXPECT_EQ(got.mlp_only_layers, std::vector<int>{3});
  // transformers: MoE where (layer + 1) % step == 0 and not listed in mlp_only_layers.
  const bool want[] = {false, true, false, false, false, true};
  for (int l = 0; l < 6; ++l) EXPECT_EQ(got.IsMoeLayer(l), want[l]) << l;
  // Optional keys default as transformers' Qwen3MoeConfig.
  ojson j = HfJson(c);
  for (const char* key : {"norm_topk_prob", "decoder_sparse_step", "mlp_only_layers"}) j.erase(key);
  const Qwen3Config d = Parse(j);
  EXPECT_FALSE(d.norm_topk_prob);
  EXPECT_EQ(d.decoder_sparse_step, 1);
  EXPECT_TRUE(d.mlp_only_layers.empty());
#ifdef QWEN3_SHARED_DIR
  const Qwen3Config tiny = LoadHfConfig(kHfDir + "/tiny-moe-a/config.json");
  EXPECT_EQ(tiny.experts, 8);
  EXPECT_EQ(tiny.experts_used, 2);
  EXPECT_EQ(tiny.moe_intermediate, 128);
  EXPECT_TRUE(tiny.norm_topk_prob);
#endif
}

TEST(ConfigTest, RejectsBadMoeConfigs) {
  Qwen3Config c = PresetConfig("30b-a3b");
  c.layers = 4;
  ojson j = HfJson(c);
  j.erase("num_experts");
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"config t.json: missing field 'num_experts'"}));
  j = HfJson(c);
  j["num_experts_per_tok"] = 129;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); },
                          {"num_experts_per_tok = 129: expected 1..128 (num_experts)"}));
  j = HfJson(c);
  j["moe_intermediate_size"] = 100;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"moe_intermediate_size = 100", "multiple of 32"}));
  j = HfJson(c);
  j["mlp_only_layers"] = {0, 4};
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"mlp_only_layers has 4: expected layers 0..3"}));
  j["mlp_only_layers"] = "0";
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"'mlp_only_layers' = \"0\"", "list of layer"}));
  j = HfJson(c);
  j["num_experts"] = 0;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"num_experts' = 0: expected a positive integer"}));
}

TEST(ConfigTest, MalformedJson) {
  EXPECT_TRUE(ThrowsError([] { ParseHfConfig("{\n  \"hidden_size\": 256,\n", "t.json"); },
                          {"config t.json", "malformed JSON"}));
  EXPECT_TRUE(ThrowsError([] { ParseHfConfig("[1, 2]", "t.json"); },
                          {"config t.json", "malformed JSON", "object"}));
  // A number past double's range is nlohmann's out_of_range, not a parse_error.
  EXPECT_TRUE(ThrowsError([] { ParseHfConfig("{\"rms_norm_eps\": 1e400}", "t.json"); },
                          {"config t.json: malformed JSON", "number overflow"}));
}

TEST(ConfigTest, MissingField) {
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "vocab_size"}) {
    ojson j = Small();
    j.erase(key);
    EXPECT_TRUE(ThrowsError([&] { Parse(j); },
                            {"config t.json", "missing field '" + std::string(key) + "'"}));
  }
}

TEST(ConfigTest, WrongTypesAndValues) {
  const std::pair<const char*, ojson> cases[] = {
      {"hidden_size", "abc"},   {"hidden_size", -256}, {"num_hidden_layers", 0},
      {"vocab_size", 1000.5},   {"head_dim", true},    {"intermediate_size", 1e12},
      {"max_position_embeddings", ojson::array()},
  };
  for (const auto& [key, value] : cases) {
    ojson j = Small();
    j[key] = value;
    EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"config t.json", "field '" + std::string(key) + "'",
                                                value.dump(), "expected a positive integer"}));
  }
  ojson j = Small();
  j["rope_theta"] = "1e6";
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"'rope_theta' = \"1e6\"", "expected a number"}));
  j = Small();
  j["tie_word_embeddings"] = 1;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"'tie_word_embeddings' = 1", "true or false"}));
}

TEST(ConfigTest, RejectsOtherArchitectures) {
  ojson j = Small();
  j["model_type"] = "llama";
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"config t.json: model_type 'llama': expected 'qwen3'"}));
  j = Small();
  j["hidden_act"] = "gelu";
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"hidden_act 'gelu'", "expected 'silu'"}));
  j = Small();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"rope_scaling.rope_type", "yarn", "not supported"}));
}

TEST(ConfigTest, RejectsShapesTheKernelsCannotRun) {
  ojson j = Small();
  j["num_attention_heads"] = 10;
  j["num_key_value_heads"] = 3;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); },
                          {"config t.json: num_attention_heads 10 is not a multiple of "
                           "num_key_value_heads 3"}));
  for (int head_dim : {47, 1, 258, 288}) {  // odd, or past the attention tiles
    j = Small();
    j["head_dim"] = head_dim;
    EXPECT_TRUE(
        ThrowsError([&] { Parse(j); }, {"config t.json: head_dim = " + std::to_string(head_dim),
                                        "expected an even number in 2..256"}));
  }
  j = Small();
  j["hidden_size"] = 100;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"hidden_size = 100", "multiple of 32"}));
  j = Small();
  j["intermediate_size"] = 770;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"intermediate_size = 770", "multiple of 32"}));
  j = Small();
  j["num_attention_heads"] = 34;
  j["num_key_value_heads"] = 2;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"= 17", "at most 16"}));

  // Past the bounds a config is corrupt: refused before anything is sized by it.
  for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size"}) {
    j = Small();
    j[key] = 2147483616;  // a multiple of 32
    EXPECT_TRUE(ThrowsError([&] { Parse(j); },
                            {"config t.json: " + std::string(key) + " = 2147483616: expected at most"}))
        << key;
  }
  j = Small();
  j["num_attention_heads"] = 1 << 30;
  j["num_key_value_heads"] = 1 << 26;
  EXPECT_TRUE(ThrowsError([&] { Parse(j); }, {"num_attention_heads = 1073741824: expected at most 4096"}));

  Qwen3Config c = Qwen3_8B();
  c.rms_norm_eps = 0;
  EXPECT_TRUE(ThrowsError([&] { ValidateConfig(c); }, {"config qwen3-8b: rms_norm_eps = 0"}));
  c = Qwen3_8B();
  c.rope_theta = -1;
  EXPECT_TRUE(ThrowsError([&] { ValidateConfig(c); }, {"rope_theta = -1", "positive"}));
  c = Qwen3_8B();
  c.kv_heads = 0;
  EXPECT_TRUE(ThrowsError([&] { ValidateConfig(c); }, {"num_key_value_heads = 0", "positive"}));
}

// Any even head_dim runs: pages and q tiles pad it to 32 internally (exec/cpu/attention.h).
TEST(ConfigTest, AcceptsAnyEvenHeadDimUpTo256) {
  for (int head_dim : {2, 48, 64, 80, 96, 100, 128, 250, 256}) {
    ojson j = Small();
    j["head_dim"] = head_dim;
    EXPECT_EQ(Parse(j).head_dim, head_dim);
  }
  // HF's default hidden / heads: 384 / 8 = 48.
  ojson j = Small();
  j.erase("head_dim");
  j["hidden_size"] = 384;
  EXPECT_EQ(Parse(j).head_dim, 48);
}

// The KV pool is sized by the bytes the pages store: head_dim padded to 32.
TEST(ConfigTest, KvBytesPerTokenCountsPaddedPages) {
  Qwen3Config c = Qwen3_8B();  // 36 layers, 8 KV heads, head_dim 128: no padding
  EXPECT_EQ(c.KvBytesPerToken(), 36u * 2 * 8 * 128 * 2);
  c.head_dim = 48;  // stored as 64
  EXPECT_EQ(c.KvBytesPerToken(), 36u * 2 * 8 * 64 * 2);
  c.head_dim = 80;  // stored as 96
  EXPECT_EQ(c.KvBytesPerToken(), 36u * 2 * 8 * 96 * 2);
}

TEST(ConfigTest, UnknownPreset) {
  EXPECT_TRUE(ThrowsError([] { PresetConfig("7b"); },
                          {"unknown config preset '7b': expected one of 0.6b, 1.7b, 4b, 8b, "
                           "14b, 32b"}));
  EXPECT_TRUE(ThrowsError([] { ResolveConfig("qwen3-14b"); }, {"unknown config preset"}));
}

TEST(ConfigTest, UnreadablePath) {
  const std::string missing = "/nonexistent-dir/config.json";
  EXPECT_TRUE(ThrowsError([&] { ResolveConfig(missing); }, {"config " + missing, "cannot open"}));
  EXPECT_TRUE(ThrowsError([] { LoadHfConfig("/"); }, {"config /: cannot read"}));
}

}  // namespace
}  // namespace qwen3
