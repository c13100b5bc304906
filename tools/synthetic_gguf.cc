#include "tools/synthetic_gguf.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "base/bf16.h"
#include "base/error.h"
#include "exec/cpu/quant_blocks.h"
#include "io/gguf_checkpoint.h"
#include "io/gguf_writer.h"
#include "io/synthetic_checkpoint.h"
#include "model/tensor_schema.h"
#include "runtime/thread_pool.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json ReadJson(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("file " + path.string() + ": cannot read");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    throw Error("file " + path.string() + ": not valid JSON: " + e.what());
  }
}

// tokenizer.json -> tokenizer.ggml.*, as convert_hf_to_gguf's gpt2 vocabulary: ids past the
// tokenizer's up to the model's vocabulary are "[PAD<id>]" (type 5, unused); added tokens are
// control (3) when special, else user-defined (4).
void AddTokenizer(GgufWriter& w, const std::string& from, int vocab) {
  const fs::path dir = fs::is_directory(from) ? fs::path(from) : fs::path(from).parent_path();
  const fs::path file = fs::is_directory(from) ? dir / "tokenizer.json" : fs::path(from);
  const json t = ReadJson(file);
  const json& model = t.at("model");
  std::vector<std::string> tokens(static_cast<size_t>(vocab));
  std::vector<int32_t> types(static_cast<size_t>(vocab), 5);
  const auto put = [&](const std::string& text, int64_t id, int32_t type) {
    if (id < 0 || id >= vocab) {
      throw Error("file " + file.string() + ": token id " + std::to_string(id) +
                  ": expected below the model's vocab_size " + std::to_string(vocab));
    }
    tokens[static_cast<size_t>(id)] = text;
    types[static_cast<size_t>(id)] = type;
  };
  for (const auto& [text, id] : model.at("vocab").items()) put(text, id.get<int64_t>(), 1);
  std::map<std::string, int64_t> ids;
  for (const json& a : t.value("added_tokens", json::array())) {
    const std::string text = a.at("content").get<std::string>();
    put(text, a.at("id").get<int64_t>(), a.value("special", false) ? 3 : 4);
    ids[text] = a.at("id").get<int64_t>();
  }
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (types[i] == 5) tokens[i] = "[PAD" + std::to_string(i) + "]";
  }
  std::vector<std::string> merges;
  for (const json& m : model.at("merges")) {  // "a b", or ["a", "b"] (tokenizers >= 0.20)
    merges.push_back(m.is_string() ? m.get<std::string>()
                                   : m.at(0).get<std::string>() + " " + m.at(1).get<std::string>());
  }
  w.AddString("tokenizer.ggml.model", "gpt2");
  w.AddString("tokenizer.ggml.pre", "qwen2");
  w.AddStringArray("tokenizer.ggml.tokens", tokens);
  w.AddInt32Array("tokenizer.ggml.token_type", types);
  w.AddStringArray("tokenizer.ggml.merges", merges);
  if (ids.count("<|im_end|>")) w.AddUint32("tokenizer.ggml.eos_token_id", static_cast<uint32_t>(ids["<|im_end|>"]));
  if (ids.count("<|endoftext|>")) {
    w.AddUint32("tokenizer.ggml.padding_token_id", static_cast<uint32_t>(ids["<|endoftext|>"]));
    w.AddUint32("tokenizer.ggml.bos_token_id", static_cast<uint32_t>(ids["<|endoftext|>"]));
  }
  w.AddBool("tokenizer.ggml.add_bos_token", false);
  if (fs::is_regular_file(dir / "tokenizer_config.json")) {
    const json cfg = ReadJson(dir / "tokenizer_config.json");
    if (cfg.contains("chat_template") && cfg["chat_template"].is_string()) {
      w.AddString("tokenizer.chat_template", cfg["chat_template"].get<std::string>());
    }
  }
}

// llama-quantize's use_more_bits: the first and last eighth of the layers, every third between.
bool MoreBits(int layer, int layers) {
  return layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2;
}

// The ggml type of a tensor in a file of `type`.
GgmlType TypeOf(const TensorSpec& t, const Qwen3Config& c, const std::string& type) {
  if (t.kind == TensorKind::kNorm || t.kind == TensorKind::kRouter) return GgmlType::kF32;
  if (type == "bf16") return GgmlType::kBF16;
  if (type == "q8_0") return GgmlType::kQ8_0;
  const bool k_ok = t.shape[1] % 256 == 0;  // a K-quant's row is whole super-blocks
  if (type == "q4_0") return t.role == TensorRole::kLmHead && k_ok ? GgmlType::kQ6_K : GgmlType::kQ4_0;
  const bool six = t.role == TensorRole::kLmHead ||
                   ((t.role == TensorRole::kV || t.role == TensorRole::kDown ||
                     t.role == TensorRole::kExpertDown) &&
                    MoreBits(t.layer, c.layers));
  if (!k_ok) return GgmlType::kQ8_0;  // llama-quantize falls back to a 32-block type too
  return six ? GgmlType::kQ6_K : GgmlType::kQ4_K;
}

}  // namespace

SyntheticGgufInfo WriteSyntheticGguf(const Qwen3Config& c, const SyntheticGgufOptions& o,
                                     const std::string& path, ThreadPool& pool) {
  ValidateConfig(c);
  if (o.type != "bf16" && o.type != "q8_0" && o.type != "q4_0" && o.type != "q4_k_m") {
    throw Error("--gguf " + o.type + ": expected bf16, q8_0, q4_0 or q4_k_m");
  }
  if (c.moe() && (!c.mlp_only_layers.empty() || c.decoder_sparse_step != 1 || !c.norm_topk_prob)) {
    throw Error("config " + c.name + ": llama.cpp's qwen3moe has every layer MoE with renormalized "
                "top-k weights: expected no mlp_only_layers, decoder_sparse_step 1, norm_topk_prob");
  }
  if (fs::exists(path)) throw Error("output file " + path + ": exists: expected a new file");
  const std::string arch = c.moe() ? "qwen3moe" : "qwen3";
  const std::string p = arch + ".";
  GgufWriter w;
  w.AddString("general.architecture", arch);
  w.AddString("general.name", "synthetic " + c.name + " " + o.type);
  w.AddUint32(p + "block_count", static_cast<uint32_t>(c.layers));
  w.AddUint32(p + "context_length", static_cast<uint32_t>(c.max_position_embeddings));
  w.AddUint32(p + "embedding_length", static_cast<uint32_t>(c.hidden));
  w.AddUint32(p + "feed_forward_length", static_cast<uint32_t>(c.intermediate));
  w.AddUint32(p + "attention.head_count", static_cast<uint32_t>(c.heads));
  w.AddUint32(p + "attention.head_count_kv", static_cast<uint32_t>(c.kv_heads));
  w.AddUint32(p + "attention.key_length", static_cast<uint32_t>(c.head_dim));
  w.AddUint32(p + "attention.value_length", static_cast<uint32_t>(c.head_dim));
  w.AddFloat32(p + "rope.freq_base", static_cast<float>(c.rope_theta));
  w.AddFloat32(p + "attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
  if (c.moe()) {
    w.AddUint32(p + "expert_count", static_cast<uint32_t>(c.experts));
    w.AddUint32(p + "expert_used_count", static_cast<uint32_t>(c.experts_used));
    w.AddUint32(p + "expert_feed_forward_length", static_cast<uint32_t>(c.moe_intermediate));
  }
  if (!o.tokenizer.empty()) AddTokenizer(w, o.tokenizer, c.vocab);

  SyntheticGgufInfo info;
  const size_t hidden = static_cast<size_t>(c.hidden);
  for (const TensorSpec& spec : TensorSchema(c)) {
    const GgmlType type = TypeOf(spec, c, o.type);
    const std::vector<std::string> names = spec.HfTensors();  // one per expert, or one
    const size_t out = spec.shape[0], in = spec.matrix() ? spec.shape[1] : 1;
    w.AddTensor(spec.gguf, type, spec.GgufDims(), [=, &pool](uint8_t* dst) {
      const GgmlTypeInfo& ti = *FindGgmlType(static_cast<uint32_t>(type));
      const size_t row_bytes = in * (spec.matrix() ? 1 : out) / ti.block_elems * ti.block_bytes;
      const size_t rows = spec.matrix() ? out : 1, width = spec.matrix() ? in : out;
      for (size_t e = 0; e < names.size(); ++e) {
        const SyntheticValues values(names[e], hidden, o.seed);
        uint8_t* slab = dst + e * rows * row_bytes;
        pool.Spmd(rows, [&](size_t r, size_t) {
          std::vector<float> x(width);
          for (size_t i = 0; i < width; ++i) {  // the HF checkpoint's bf16 values
            x[i] = Bf16ToF32(F32ToBf16(values(r * width + i)));
          }
          uint8_t* d = slab + r * row_bytes;
          if (type == GgmlType::kF32) {
            std::memcpy(d, x.data(), width * sizeof(float));
          } else if (type == GgmlType::kBF16) {
            for (size_t i = 0; i < width; ++i) {
              const bf16 b = F32ToBf16(x[i]);
              std::memcpy(d + 2 * i, &b, 2);
            }
          } else {
            cpu::QuantizeRow(WeightTypeOf(type), x.data(), width, d);
          }
        });
      }
    });
    ++info.tensors;
  }
  info.bytes = w.Write(path);
  return info;
}

}  // namespace qwen3
