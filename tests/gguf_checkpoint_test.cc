// A Qwen3 model in a GGUF file: the config of llama.cpp's tiny-a files against its HF
// config.json, the tensor-set checks, and the tokenizer metadata, on the shared files and on
// edited copies of them (tests/gguf_writer.h).
#include "io/gguf_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tests/checkpoint_util.h"
#include "tests/error_matchers.h"
#include "tests/gguf_writer.h"
#include "tokenizer/chat_template.h"

namespace qwen3 {
namespace {

using testing_gguf::CopyOf;
using testing_gguf::GgufWriter;
using testing_gguf::Num;
using testing_gguf::Pod;
using VT = GgufValueType;

const std::string kGgufDir = std::string(QWEN3_SHARED_DIR) + "/testdata/gguf/";
const std::string kHfConfig =
    std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3/tiny-a/config.json";
const std::vector<std::string> kFiles = {"tiny-a.bf16.gguf", "tiny-a.q8_0.gguf",
                                         "tiny-a.q4_k_m.gguf", "tiny-a.q4_0.gguf"};

class GgufCheckpointTest : public testing::Test {
 protected:
  std::string Path(const std::string& name) const { return scratch_.Sub(name); }
  // The smallest shared file, to edit.
  static GgufWriter TinyA() { return CopyOf(*GgufFile::Open(kGgufDir + "tiny-a.q4_0.gguf")); }
  const testing_ck::ScratchDir scratch_{
      testing::UnitTest::GetInstance()->current_test_info()->name()};
};

TEST_F(GgufCheckpointTest, ConfigOfEachFileEqualsTheHfConfig) {
  const Qwen3Config hf = LoadHfConfig(kHfConfig);
  for (const std::string& name : kFiles) {
    SCOPED_TRACE(name);
    const std::string path = kGgufDir + name;
    const GgufCheckpoint ck = GgufCheckpoint::Open(path);
    const Qwen3Config& c = ck.config();
    EXPECT_EQ(c.name, path);
    EXPECT_EQ(c.hidden, hf.hidden);
    EXPECT_EQ(c.intermediate, hf.intermediate);
    EXPECT_EQ(c.layers, hf.layers);
    EXPECT_EQ(c.heads, hf.heads);
    EXPECT_EQ(c.kv_heads, hf.kv_heads);
    EXPECT_EQ(c.head_dim, hf.head_dim);
    EXPECT_EQ(c.vocab, hf.vocab);
    EXPECT_EQ(c.tied_embeddings, hf.tied_embeddings);
    EXPECT_EQ(c.rope_theta, hf.rope_theta);
    EXPECT_EQ(c.rms_norm_eps, hf.rms_norm_eps);
    EXPECT_EQ(c.max_position_embeddings, hf.max_position_embeddings);
    Qwen3Config named = c;
    named.name = hf.name;
    EXPECT_EQ(named, hf);  // and nothing else differs

    EXPECT_FALSE(ck.tied());
    EXPECT_TRUE(ck.Has(GgufNames::LmHead()));
    EXPECT_EQ(ck.Get(GgufNames::Layer(3, "ffn_down.weight")).DimsString(), "[768, 256]");
    EXPECT_EQ(ck.file().path(), path);
    size_t bytes = 0;
    for (const GgufTensor& t : ck.file().tensors()) bytes += t.bytes;
    EXPECT_EQ(ck.bytes(), bytes);
    EXPECT_EQ(ExpectedGgufTensors(c).size(), ck.file().tensors().size());
  }
}

TEST_F(GgufCheckpointTest, NoOutputWeightMeansTied) {
  GgufWriter w = TinyA();
  w.RemoveTensor(GgufNames::LmHead());
  const GgufCheckpoint ck = GgufCheckpoint::Open(w.Write(Path("tied.gguf")));
  EXPECT_TRUE(ck.tied());
  EXPECT_TRUE(ck.config().tied_embeddings);
  EXPECT_FALSE(ck.Has(GgufNames::LmHead()));
  EXPECT_EQ(ck.file().tensors().size(), 46u);
}

TEST_F(GgufCheckpointTest, OptionalKeysTakeLlamaCppDefaults) {
  GgufWriter w = TinyA();
  w.Remove("qwen3.attention.head_count_kv");  // = head_count
  w.Remove("qwen3.attention.key_length");     // = hidden / heads
  w.Remove("qwen3.attention.value_length");
  w.Remove("qwen3.rope.freq_base");  // 10000
  w.tensors.clear();  // 8 kv heads: k and v are [256, 256] now, so only read the config
  w.AddTensor(GgufNames::Embed(), Num(GgmlType::kF32), {256, 2048});
  const Qwen3Config c = ReadGgufConfig(*GgufFile::Open(w.Write(Path("defaults.gguf"))));
  EXPECT_EQ(c.kv_heads, 8);
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.tied_embeddings);
}

TEST_F(GgufCheckpointTest, TokenizerData) {
  for (const std::string& name : kFiles) {
    SCOPED_TRACE(name);
    const GgufCheckpoint ck = GgufCheckpoint::Open(kGgufDir + name);
    const GgufTokenizerData& t = ck.tokenizer();
    EXPECT_EQ(t.model, "gpt2");
    EXPECT_EQ(t.pre, "qwen2");
    ASSERT_EQ(t.tokens.size(), 2048u);
    ASSERT_EQ(t.token_types.size(), 2048u);
    EXPECT_EQ(t.merges.size(), 1783u);
    const std::vector<std::string> special = {
        "<|endoftext|>", "<|im_start|>", "<|im_end|>",      "<think>",         "</think>",
        "<tool_call>",   "</tool_call>", "<tool_response>", "</tool_response>"};
    for (size_t i = 0; i < special.size(); ++i) {
      EXPECT_EQ(t.tokens[2039 + i], special[i]);
      EXPECT_EQ(t.token_types[2039 + i], i < 3 ? 3 : 4) << special[i];  // CONTROL, USER_DEFINED
    }
    for (size_t i = 0; i < 2039; ++i) ASSERT_EQ(t.token_types[i], 1) << i;
    EXPECT_EQ(t.tokens[0], "!");
    EXPECT_EQ(t.tokens[188], "Ā");  // byte 0 in GPT-2's byte-to-unicode map
    EXPECT_EQ(t.eos_id, 2041);
    EXPECT_EQ(t.pad_id, 2039);
    EXPECT_EQ(t.bos_id, -1);
    EXPECT_FALSE(t.add_bos);
    CheckQwen3ChatTemplateText(ck.chat_template(), ck.file().path());  // no throw
  }
  EXPECT_TRUE(ThrowsError([] { CheckQwen3ChatTemplateText("{{ messages }}", "x.gguf"); },
                          {"x.gguf", "not Qwen3's"}));
}

TEST_F(GgufCheckpointTest, NoTokenizerMetadataIsEmpty) {
  GgufWriter w = TinyA();
  std::erase_if(w.kvs, [](const GgufWriter::Kv& kv) { return kv.key.starts_with("tokenizer."); });
  const GgufCheckpoint ck = GgufCheckpoint::Open(w.Write(Path("notok.gguf")));
  EXPECT_TRUE(ck.tokenizer().model.empty());
  EXPECT_TRUE(ck.tokenizer().tokens.empty());
  EXPECT_TRUE(ck.chat_template().empty());
}

struct BadCase {
  const char* tag;
  std::function<void(GgufWriter&)> spoil;
  std::vector<std::string> parts;
};

TEST_F(GgufCheckpointTest, BadModelsAreOneLineErrorsNamingFileAndTensorOrKey) {
  const auto u32 = [](uint32_t v) { return Pod(v); };
  const auto str = [](const std::string& s) { return testing_gguf::Str(s); };
  const std::string up = "blk.0.ffn_up.weight";
  const std::vector<BadCase> cases = {
      {"missing",
       [](GgufWriter& w) { w.RemoveTensor("blk.1.attn_k_norm.weight"); },
       {"tensor blk.1.attn_k_norm.weight", "missing from", "4-layer Qwen3 model needs it"}},
      {"missing-embed",
       [](GgufWriter& w) { w.RemoveTensor("token_embd.weight"); },
       {"tensor token_embd.weight", "missing from"}},
      {"unexpected",
       [](GgufWriter& w) { w.AddTensor("blk.4.ffn_up.weight", 0, {4}); },
       {"tensor blk.4.ffn_up.weight in", "unexpected for a 4-layer Qwen3 model"}},
      {"shape",
       [](GgufWriter& w) {
         w.FindTensor("blk.0.attn_q.weight")->dims = {512, 256};
       },
       {"tensor blk.0.attn_q.weight in", "dims [512, 256], expected [256, 512] (ne0 first)"}},
      {"norm-shape",
       [](GgufWriter& w) {
         w.FindTensor("output_norm.weight")->dims = {128, 2};
       },
       {"tensor output_norm.weight in", "dims [128, 2], expected [256]"}},
      {"type",
       [&](GgufWriter& w) {
         GgufWriter::Tensor& t = *w.FindTensor(up);
         t.type = Num(GgmlType::kQ2_K);
         t.data.assign(256 * 768 / 256 * 84, '\0');
       },
       {"tensor " + up + " in",
        "type Q2_K: supported are F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K"}},
      {"norm-type",
       [](GgufWriter& w) {
         GgufWriter::Tensor& t = *w.FindTensor("blk.2.ffn_norm.weight");
         t.type = Num(GgmlType::kQ8_0);
         t.data.assign(256 / 32 * 34, '\0');
       },
       {"tensor blk.2.ffn_norm.weight in", "type Q8_0: supported are F32, F16, BF16"}},
      {"architecture",
       [&](GgufWriter& w) { w.Set("general.architecture", Num(VT::kString), str("llama")); },
       {"metadata key general.architecture = \"llama\": expected \"qwen3\" or \"qwen3moe\""}},
      {"no-layers",
       [](GgufWriter& w) { w.Remove("qwen3.block_count"); },
       {"metadata key qwen3.block_count: missing"}},
      {"layers-type",
       [&](GgufWriter& w) { w.Set("qwen3.block_count", Num(VT::kString), str("4")); },
       {"metadata key qwen3.block_count: expected an unsigned integer, got string"}},
      {"no-eps",
       [](GgufWriter& w) { w.Remove("qwen3.attention.layer_norm_rms_epsilon"); },
       {"metadata key qwen3.attention.layer_norm_rms_epsilon: missing"}},
      {"value-length",
       [&](GgufWriter& w) { w.Set("qwen3.attention.value_length", Num(VT::kUint32), u32(32)); },
       {"metadata key qwen3.attention.value_length = 32: expected the key length 64"}},
      {"heads-zero",
       [&](GgufWriter& w) { w.Set("qwen3.attention.head_count", Num(VT::kUint32), u32(0)); },
       {"config ", "tiny.gguf"}},
      {"huge-hidden",
       [&](GgufWriter& w) {
         w.Set("qwen3.embedding_length", Num(VT::kUint64), Pod<uint64_t>(1ull << 40));
       },
       {"metadata key qwen3.embedding_length = 1099511627776: expected at most 2147483647"}},
      {"rope-scaling",
       [&](GgufWriter& w) { w.AddString("qwen3.rope.scaling.type", "yarn"); },
       {"metadata key qwen3.rope.scaling.type = \"yarn\": RoPE scaling is not supported"}},
      {"rope-factor",
       [&](GgufWriter& w) { w.Add("qwen3.rope.scaling.factor", Num(VT::kFloat32), Pod(4.0f)); },
       {"metadata key qwen3.rope.scaling.factor", "RoPE scaling is not supported"}},
      {"tokenizer-model",
       [&](GgufWriter& w) { w.Set("tokenizer.ggml.model", Num(VT::kString), str("llama")); },
       {"metadata key tokenizer.ggml.model = \"llama\": expected \"gpt2\""}},
      {"tokenizer-pre",
       [&](GgufWriter& w) { w.Set("tokenizer.ggml.pre", Num(VT::kString), str("llama-bpe")); },
       {"metadata key tokenizer.ggml.pre = \"llama-bpe\": expected \"qwen2\""}},
      {"token-types",
       [&](GgufWriter& w) {
         w.Set("tokenizer.ggml.token_type", Num(VT::kArray),
               Pod(Num(VT::kInt32)) + Pod<uint64_t>(1) + Pod<int32_t>(1));
       },
       {"metadata key tokenizer.ggml.token_type: 1 entries, expected one per token (2048)"}},
      {"tokens",
       [&](GgufWriter& w) {
         w.Set("tokenizer.ggml.tokens", Num(VT::kArray),
               Pod(Num(VT::kString)) + Pod<uint64_t>(1) + str("a"));
       },
       {"metadata key tokenizer.ggml.tokens: 1 tokens, expected 2048"}},
      {"merges",
       [&](GgufWriter& w) { w.Remove("tokenizer.ggml.merges"); },
       {"metadata key tokenizer.ggml.merges: missing"}},
      {"eos",
       [&](GgufWriter& w) { w.Set("tokenizer.ggml.eos_token_id", Num(VT::kUint32), u32(5000)); },
       {"metadata key tokenizer.ggml.eos_token_id = 5000: expected a token id below 2048"}},
      {"template",
       [&](GgufWriter& w) { w.Set("tokenizer.chat_template", Num(VT::kUint32), u32(1)); },
       {"metadata key tokenizer.chat_template: expected string, got uint32"}},
  };
  for (const BadCase& bc : cases) {
    GgufWriter w = TinyA();
    bc.spoil(w);
    const std::string path = w.Write(Path(std::string(bc.tag) + ".tiny.gguf"));
    EXPECT_TRUE(ThrowsError([&] { GgufCheckpoint::Open(path); }, {path})) << bc.tag;
    for (const std::string& part : bc.parts) {
      EXPECT_TRUE(ThrowsError([&] { GgufCheckpoint::Open(path); }, {part})) << bc.tag;
    }
  }
}

// llama.cpp's qwen3moe files: the config from the qwen3moe.* keys, the experts stacked.
TEST_F(GgufCheckpointTest, ReadsQwen3MoeFiles) {
  const Qwen3Config hf =
      LoadHfConfig(std::string(QWEN3_SHARED_DIR) + "/testdata/hf-qwen3/tiny-moe-a/config.json");
  for (const char* type : {"bf16", "q8_0", "q4_k_m"}) {
    SCOPED_TRACE(type);
    const GgufCheckpoint ck = GgufCheckpoint::Open(kGgufDir + "tiny-moe-a." + type + ".gguf");
    Qwen3Config named = ck.config();
    named.name = hf.name;
    named.max_position_embeddings = hf.max_position_embeddings;
    EXPECT_EQ(named, hf);  // experts, top-k, expert width, norm_topk_prob too
    EXPECT_EQ(ck.Get("blk.3.ffn_down_exps.weight").DimsString(), "[128, 256, 8]");
    EXPECT_EQ(ExpectedGgufTensors(ck.config()).size(), ck.file().tensors().size());
  }
}

TEST_F(GgufCheckpointTest, BadMoeFilesAreOneLineErrorsNamingTheTensorOrKey) {
  const auto u32 = [](uint32_t v) { return Pod(v); };
  const std::vector<BadCase> cases = {
      {"expert-count",
       [&](GgufWriter& w) { w.Set("qwen3moe.expert_count", Num(VT::kUint32), u32(7)); },
       {"tensor blk.0.ffn_gate_inp.weight in", "dims [256, 8], expected [256, 7]"}},
      {"no-expert-count",
       [](GgufWriter& w) { w.Remove("qwen3moe.expert_count"); },
       {"metadata key qwen3moe.expert_count: missing"}},
      {"used-count",
       [&](GgufWriter& w) { w.Set("qwen3moe.expert_used_count", Num(VT::kUint32), u32(9)); },
       {"num_experts_per_tok = 9: expected 1..8 (num_experts)"}},
      {"shared",
       [&](GgufWriter& w) { w.Add("qwen3moe.expert_shared_count", Num(VT::kUint32), u32(1)); },
       {"metadata key qwen3moe.expert_shared_count = 1: expected 0"}},
      {"missing-experts",
       [](GgufWriter& w) { w.RemoveTensor("blk.2.ffn_down_exps.weight"); },
       {"tensor blk.2.ffn_down_exps.weight: missing from",
        "a 4-layer Qwen3-MoE (8 experts) model needs it"}},
      {"experts-dims",
       [](GgufWriter& w) { w.FindTensor("blk.1.ffn_up_exps.weight")->dims = {256, 128, 7}; },
       {"tensor blk.1.ffn_up_exps.weight in",
        "dims [256, 128, 7], expected [256, 128, 8] (ne0 first, then the experts)"}},
      {"router-dims",
       [](GgufWriter& w) {
         GgufWriter::Tensor& t = *w.FindTensor("blk.3.ffn_gate_inp.weight");
         t.dims = {256, 7};
         t.data.resize(256 * 7 * 4);
       },
       {"tensor blk.3.ffn_gate_inp.weight in", "dims [256, 7], expected [256, 8]"}},
      {"router-type",
       [](GgufWriter& w) {
         GgufWriter::Tensor& t = *w.FindTensor("blk.0.ffn_gate_inp.weight");
         t.type = Num(GgmlType::kQ8_0);
         t.data.assign(8 * 256 / 32 * 34, '\0');
       },
       {"tensor blk.0.ffn_gate_inp.weight in", "type Q8_0: supported are F32, F16, BF16"}},
      {"dense-ffn",
       [](GgufWriter& w) { w.AddTensor("blk.0.ffn_up.weight", 0, {4}); },
       {"tensor blk.0.ffn_up.weight in", "unexpected for a 4-layer Qwen3-MoE (8 experts) model"}},
  };
  for (const BadCase& bc : cases) {
    GgufWriter w = CopyOf(*GgufFile::Open(kGgufDir + "tiny-moe-a.q8_0.gguf"));
    bc.spoil(w);
    const std::string path = w.Write(Path(std::string(bc.tag) + ".moe.gguf"));
    EXPECT_TRUE(ThrowsError([&] { GgufCheckpoint::Open(path); }, {path})) << bc.tag;
    for (const std::string& part : bc.parts) {
      EXPECT_TRUE(ThrowsError([&] { GgufCheckpoint::Open(path); }, {part})) << bc.tag;
    }
  }
}

}  // namespace
}  // namespace qwen3
