#include "io/gguf_checkpoint.h"

#include <algorithm>
#include <climits>

#include "base/error.h"

namespace qwen3 {
namespace {

constexpr GgmlType kMatrixTypes[] = {
    GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ4_0,
    GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ4_K, GgmlType::kQ5_K,
    GgmlType::kQ6_K};
constexpr GgmlType kVectorTypes[] = {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16};

[[noreturn]] void Fail(const GgufFile& f, const std::string& what) {
  throw Error("file " + f.path() + ": " + what);
}

std::string Quoted(const std::string& s) { return "\"" + s + "\""; }

void ExpectString(const GgufFile& f, const std::string& key, const std::string& want) {
  const std::string& got = f.GetString(key);
  if (got != want)
    Fail(f, "metadata key " + key + " = " + Quoted(got) + ": expected " + Quoted(want));
}

int IntKey(const GgufFile& f, const std::string& key) {
  const uint64_t v = f.GetUint(key);
  if (v > INT_MAX) {
    Fail(f, "metadata key " + key + " = " + std::to_string(v) + ": expected at most " +
                std::to_string(INT_MAX));
  }
  return static_cast<int>(v);
}

// A token id key: absent is -1, else an id of the vocabulary.
int64_t TokenIdKey(const GgufFile& f, const std::string& key, size_t tokens) {
  if (!f.Has(key)) return -1;
  const int64_t id = f.GetInt(key);
  if (id < 0 || static_cast<uint64_t>(id) >= tokens) {
    Fail(f, "metadata key " + key + " = " + std::to_string(id) + ": expected a token id below " +
                std::to_string(tokens));
  }
  return id;
}

std::string DimsString(const std::vector<uint64_t>& dims) {
  GgufTensor t;
  t.dims = dims;
  return t.DimsString();
}

template <size_t N>
void ExpectType(const GgufTensor& t, const GgmlType (&allowed)[N]) {
  if (std::find(std::begin(allowed), std::end(allowed), t.type) != std::end(allowed)) return;
  std::string names;
  for (GgmlType a : allowed) names += (names.empty() ? "" : ", ") + ToString(a);
  throw Error(t.Where() + ": type " + ToString(t.type) + ": supported are " + names);
}

GgufTokenizerData ReadTokenizer(const GgufFile& f, int vocab) {
  GgufTokenizerData d;
  if (!f.Has("tokenizer.ggml.model")) return d;
  ExpectString(f, "tokenizer.ggml.model", "gpt2");  // byte-level BPE
  ExpectString(f, "tokenizer.ggml.pre", "qwen2");   // the Qwen2 split pattern
  d.model = "gpt2";
  d.pre = "qwen2";
  d.tokens = f.GetStringArray("tokenizer.ggml.tokens");
  if (d.tokens.size() != static_cast<size_t>(vocab)) {
    Fail(f, "metadata key tokenizer.ggml.tokens: " + std::to_string(d.tokens.size()) +
                " tokens, expected " + std::to_string(vocab) + " (the rows of " +
                GgufNames::Embed() + ")");
  }
  const std::vector<int64_t> types = f.GetIntArray("tokenizer.ggml.token_type");
  if (types.size() != d.tokens.size()) {
    Fail(f, "metadata key tokenizer.ggml.token_type: " + std::to_string(types.size()) +
                " entries, expected one per token (" + std::to_string(d.tokens.size()) + ")");
  }
  d.token_types.reserve(types.size());
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i] < INT32_MIN || types[i] > INT32_MAX) {
      Fail(f, "metadata key tokenizer.ggml.token_type: element " + std::to_string(i) + " = " +
                  std::to_string(types[i]) + ": expected a 32-bit integer");
    }
    d.token_types.push_back(static_cast<int32_t>(types[i]));
  }
  d.merges = f.GetStringArray("tokenizer.ggml.merges");
  d.eos_id = TokenIdKey(f, "tokenizer.ggml.eos_token_id", d.tokens.size());
  d.bos_id = TokenIdKey(f, "tokenizer.ggml.bos_token_id", d.tokens.size());
  d.pad_id = TokenIdKey(f, "tokenizer.ggml.padding_token_id", d.tokens.size());
  if (f.Has("tokenizer.ggml.add_bos_token")) d.add_bos = f.GetBool("tokenizer.ggml.add_bos_token");
  return d;
}

}  // namespace

WeightType WeightTypeOf(GgmlType t) {
  switch (t) {
    case GgmlType::kQ8_0:
      return WeightType::kQ8_0;
    case GgmlType::kQ4_0:
      return WeightType::kQ4_0;
    case GgmlType::kQ4_K:
      return WeightType::kQ4_K;
    case GgmlType::kQ6_K:
      return WeightType::kQ6_K;
    case GgmlType::kQ4_1:
      return WeightType::kQ4_1;
    case GgmlType::kQ5_0:
      return WeightType::kQ5_0;
    case GgmlType::kQ5_1:
      return WeightType::kQ5_1;
    case GgmlType::kQ5_K:
      return WeightType::kQ5_K;
    default:
      return WeightType::kBf16;
  }
}

std::map<std::string, std::vector<uint64_t>> ExpectedGgufTensors(const Qwen3Config& c) {
  std::map<std::string, std::vector<uint64_t>> t;
  for (const TensorSpec& spec : TensorSchema(c)) t[spec.gguf] = spec.GgufDims();
  return t;
}

Qwen3Config ReadGgufConfig(const GgufFile& f) {
  const std::string& arch = f.GetString("general.architecture");
  if (arch != "qwen3" && arch != "qwen3moe") {
    Fail(f, "metadata key general.architecture = " + Quoted(arch) + ": expected " +
                Quoted("qwen3") + " or " + Quoted("qwen3moe"));
  }
  const std::string p = arch + ".";  // the hyperparameters' prefix
  Qwen3Config c;
  c.name = f.path();
  c.layers = IntKey(f, p + "block_count");
  c.hidden = IntKey(f, p + "embedding_length");
  c.intermediate = IntKey(f, p + "feed_forward_length");
  c.heads = IntKey(f, p + "attention.head_count");
  // llama.cpp's defaults where a key is optional: kv heads = heads, theta 10000.
  c.kv_heads = f.Has(p + "attention.head_count_kv") ? IntKey(f, p + "attention.head_count_kv")
                                                    : c.heads;
  c.head_dim = f.Has(p + "attention.key_length") ? IntKey(f, p + "attention.key_length")
               : c.heads > 0                     ? c.hidden / c.heads
                                                 : 0;
  if (f.Has(p + "attention.value_length")) {
    const int v = IntKey(f, p + "attention.value_length");
    if (v != c.head_dim) {
      Fail(f, "metadata key " + p + "attention.value_length = " + std::to_string(v) +
                  ": expected the key length " + std::to_string(c.head_dim));
    }
  }
  c.rope_theta = f.Has(p + "rope.freq_base") ? f.GetFloat(p + "rope.freq_base") : 10000.0;
  c.rms_norm_eps = f.GetFloat(p + "attention.layer_norm_rms_epsilon");
  c.max_position_embeddings = IntKey(f, p + "context_length");
  if (f.Has(p + "rope.scaling.type")) {
    const std::string& type = f.GetString(p + "rope.scaling.type");
    if (type != "none") {
      Fail(f, "metadata key " + p + "rope.scaling.type = " + Quoted(type) +
                  ": RoPE scaling is not supported (expected \"none\")");
    }
  }
  for (const std::string& key : {p + "rope.scaling.factor", p + "rope.scale_linear"}) {
    // llama.cpp reads 0 as "no scaling", like 1.
    if (f.Has(key) && f.GetFloat(key) != 0 && f.GetFloat(key) != 1) {
      Fail(f, "metadata key " + key + " = " + std::to_string(f.GetFloat(key)) +
                  ": RoPE scaling is not supported (expected 1)");
    }
  }
  if (arch == "qwen3moe") {
    // llama.cpp's qwen3moe graph: softmax gating over every expert, the top-k weights
    // renormalized, no shared expert, every layer MoE.
    c.experts = IntKey(f, p + "expert_count");
    c.experts_used = IntKey(f, p + "expert_used_count");
    c.moe_intermediate = IntKey(f, p + "expert_feed_forward_length");
    c.norm_topk_prob = true;
    if (c.experts == 0) Fail(f, "metadata key " + p + "expert_count = 0: expected at least 1");
    if (f.Has(p + "expert_shared_count") && f.GetUint(p + "expert_shared_count") != 0) {
      Fail(f, "metadata key " + p + "expert_shared_count = " +
                  std::to_string(f.GetUint(p + "expert_shared_count")) +
                  ": expected 0 (Qwen3-MoE has no shared expert)");
    }
  }
  const GgufTensor* embed = f.Find(GgufNames::Embed());
  if (embed == nullptr) {
    throw Error("tensor " + GgufNames::Embed() + ": missing from " + f.path() +
                " (its dims[1] is the vocabulary size)");
  }
  if (embed->dims.size() != 2 || embed->dims[1] > INT_MAX) {
    throw Error(embed->Where() + ": dims " + embed->DimsString() + ", expected [" +
                std::to_string(c.hidden) + ", vocab]");
  }
  c.vocab = static_cast<int>(embed->dims[1]);
  c.tied_embeddings = f.Find(GgufNames::LmHead()) == nullptr;
  ValidateConfig(c);
  return c;
}

GgufCheckpoint GgufCheckpoint::Open(const std::string& path) {
  GgufCheckpoint ck;
  ck.file_ = GgufFile::Open(path);
  const GgufFile& f = *ck.file_;
  ck.config_ = ReadGgufConfig(f);
  const auto expected = ExpectedGgufTensors(ck.config_);
  for (const TensorSpec& spec : TensorSchema(ck.config_)) {
    const GgufTensor* t = f.Find(spec.gguf);
    if (t == nullptr) {
      throw Error("tensor " + spec.gguf + ": missing from " + path + " (a " +
                  Describe(ck.config_) + " model needs it)");
    }
    const std::vector<uint64_t> dims = spec.GgufDims();
    if (t->dims != dims) {
      throw Error(t->Where() + ": dims " + t->DimsString() + ", expected " + DimsString(dims) +
                  " (ne0 first" + (spec.experts ? ", then the experts" : "") + ")");
    }
    if (spec.kind == TensorKind::kNorm || spec.kind == TensorKind::kRouter) {
      ExpectType(*t, kVectorTypes);
    } else {
      ExpectType(*t, kMatrixTypes);
    }
  }
  for (const GgufTensor& t : f.tensors()) {
    if (!expected.count(t.name)) {
      throw Error(t.Where() + ": unexpected for a " + Describe(ck.config_) + " model");
    }
  }
  ck.tokenizer_ = ReadTokenizer(f, ck.config_.vocab);
  if (f.Has("tokenizer.chat_template")) ck.chat_template_ = f.GetString("tokenizer.chat_template");
  return ck;
}

size_t GgufCheckpoint::bytes() const {
  size_t n = 0;
  for (const GgufTensor& t : file_->tensors()) n += t.bytes;
  return n;
}

}  // namespace qwen3
