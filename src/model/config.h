// Qwen3 model shapes: named presets (spec/qwen3-models.md, "Configs") and a reader for
// Hugging Face config.json. Every config the engine runs passes ValidateConfig first, which
// also enforces the kernels' tile requirements, so kernels may assume them.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace qwen3 {

// The engine's bounds on shapes: head_dim (the attention tiles hold at most 256 dims) and the
// KV pages' alignment (whole 32-element k-tiles: head_dim is stored padded to it, and a block
// holds a multiple of it; executors' KvBytesPerToken agree).
constexpr int kMaxHeadDim = 256;
constexpr size_t kKvDimAlign = 32;
constexpr size_t kMaxBlockSize = 256;  // KV block tokens: a multiple of kKvDimAlign up to this

struct Qwen3Config {
  std::string name;              // "qwen3-14b", or the path for a file
  int hidden = 0;                // hidden_size
  int intermediate = 0;          // intermediate_size
  int layers = 0;                // num_hidden_layers
  int heads = 0;                 // num_attention_heads
  int kv_heads = 0;              // num_key_value_heads
  int head_dim = 0;              // head_dim (HF default hidden/heads when absent)
  int vocab = 0;                 // vocab_size
  bool tied_embeddings = false;  // tie_word_embeddings
  double rope_theta = 1e6;
  double rms_norm_eps = 1e-6;
  int max_position_embeddings = 40960;
  // Mixture of experts (model_type "qwen3_moe"; experts = 0: a dense model). A layer is MoE
  // unless listed in mlp_only_layers or off the sparse step ((layer + 1) % step != 0), as
  // transformers' Qwen3MoeDecoderLayer decides; a dense layer's MLP is intermediate wide.
  int experts = 0;               // num_experts
  int experts_used = 0;          // num_experts_per_tok (top-k)
  int moe_intermediate = 0;      // moe_intermediate_size: each expert's FFN width
  bool norm_topk_prob = false;   // renormalize the top-k weights to sum 1
  int decoder_sparse_step = 1;
  std::vector<int> mlp_only_layers;

  bool moe() const { return experts > 0; }
  bool IsMoeLayer(int layer) const;
  int QDim() const { return heads * head_dim; }
  int KvDim() const { return kv_heads * head_dim; }
  // KV cache bytes of one token over all layers (bf16 K and V) as the pages store them:
  // head_dim padded to a multiple of kKvDimAlign (the executors' KV tiles).
  size_t KvBytesPerToken() const;
  int GroupSize() const { return heads / kv_heads; }

  bool operator==(const Qwen3Config&) const = default;
};

Qwen3Config Qwen3_0_6B();
Qwen3Config Qwen3_1_7B();
Qwen3Config Qwen3_4B();
Qwen3Config Qwen3_8B();
Qwen3Config Qwen3_14B();
Qwen3Config Qwen3_32B();
// The mixture-of-experts models: 30B-A3B (48 layers, 128 experts, top-8, expert FFN 768) and
// 235B-A22B (94 layers, 128 experts, top-8, expert FFN 1536).
Qwen3Config Qwen3_30B_A3B();
Qwen3Config Qwen3_235B_A22B();
// The seed harness's 14B: Qwen3_14B() with the padded vocab 152064 (spec: the real
// checkpoint has 151936). Named "qwen3-14b-seed".
Qwen3Config Qwen3_14BSeed();

// {"0.6b", "1.7b", "4b", "8b", "14b", "32b", "30b-a3b", "235b-a22b"}.
std::vector<std::string> PresetNames();
// Throws Error for a name not in PresetNames().
Qwen3Config PresetConfig(const std::string& name);

// config.json <-> Qwen3Config: one row per key the engine reads and writes (ParseHfConfig,
// ValidateConfig's names and io's HfConfigJson all read this table). Exactly one member is set.
struct ConfigKey {
  const char* json;
  int Qwen3Config::*integer = nullptr;  // a positive integer
  double Qwen3Config::*real = nullptr;  // a positive finite number
  bool Qwen3Config::*flag = nullptr;
  bool required = false;  // absent: the member's default (head_dim: hidden_size / heads)
  bool moe = false;       // read (and written) for model_type "qwen3_moe" only
};
std::span<const ConfigKey> ConfigKeys();

// "4-layer Qwen3", or "48-layer Qwen3-MoE (128 experts)": what a file's tensors are checked for.
std::string Describe(const Qwen3Config& c);

// Parses the text of a Hugging Face config.json (transformers 4 or 5 layout); the result is
// named source_name, which also prefixes every error message. Throws Error for malformed
// JSON, missing or mistyped fields, a model_type other than "qwen3" or "qwen3_moe", an
// activation other than silu, RoPE scaling, or a config ValidateConfig rejects.
Qwen3Config ParseHfConfig(const std::string& json_text, const std::string& source_name);
// Reads and parses the file at path; errors name the path.
Qwen3Config LoadHfConfig(const std::string& path);
// A preset name ("0.6b" .. "32b"), or a path to a config.json: anything containing '/' or
// ending in ".json".
Qwen3Config ResolveConfig(const std::string& preset_or_path);

// Upper bounds ValidateConfig enforces (released Qwen3: hidden <= 5120, intermediate <= 25600,
// layers <= 94, heads <= 64, vocab 151936).
constexpr int kMaxHidden = 1 << 16;
constexpr int kMaxIntermediate = 1 << 18;
constexpr int kMaxLayers = 1 << 12;
constexpr int kMaxHeads = 1 << 12;
constexpr int kMaxVocab = 1 << 24;
constexpr int kMaxExperts = 1 << 10;  // released: 128

// Throws Error ("config <name>: ...") unless every dimension is positive and at most its
// kMax* bound, and the shapes fit the kernels: head_dim even and <= 256, hidden and
// intermediate multiples of 32, heads a multiple of kv_heads with at most 16 query heads per
// KV head, and a positive theta and eps; for MoE, 1 <= experts_used <= experts <= kMaxExperts,
// moe_intermediate a multiple of 32, a positive sparse step and mlp_only_layers in range.
void ValidateConfig(const Qwen3Config& c);

}  // namespace qwen3
