#include "io/synthetic_checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "base/bf16.h"
#include "base/error.h"
#include "base/rng.h"
#include "io/hf_checkpoint.h"
#include "io/safetensors.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

uint64_t NameHash(const std::string& s) {  // FNV-1a: a stream id per tensor name
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// A tensor's values as bf16, written where the shard wants them.
SafetensorsWriter::Fill Values(const std::string& name, size_t count, size_t hidden,
                               uint64_t seed) {
  return [=](uint8_t* dst) {
    const SyntheticValues values(name, hidden, seed);
    for (size_t i = 0; i < count; ++i) {
      const bf16 v = F32ToBf16(values(i));
      std::memcpy(dst + 2 * i, &v, 2);
    }
  };
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out.flush()) throw Error("file " + path.string() + ": write failed");
}

}  // namespace

SyntheticValues::SyntheticValues(const std::string& name, size_t hidden, uint64_t seed)
    : rng_(seed, NameHash(name)) {
  const bool norm = name.find("norm") != std::string::npos;
  const bool router = name.ends_with("mlp.gate.weight");
  offset_ = norm ? 1.0f : 0.0f;
  scale_ = norm     ? 0.1f
           : router ? 3.0f * std::sqrt(3.0f / static_cast<float>(hidden))
                    : 0.0346f;
}

float SyntheticValues::operator()(size_t i) const {
  return offset_ + scale_ * (rng_.Uniform(i) * 2.0f - 1.0f);  // [-1, 1) scaled
}

std::string HfConfigJson(const Qwen3Config& c) {
  json j = {{"architectures", {c.moe() ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM"}},
            {"model_type", c.moe() ? "qwen3_moe" : "qwen3"},
            {"rope_scaling", nullptr},
            {"hidden_act", "silu"},
            {"attention_bias", false},
            {"torch_dtype", "bfloat16"},
            {"bos_token_id", 151643},
            {"eos_token_id", 151645}};
  if (c.moe()) j["mlp_only_layers"] = c.mlp_only_layers;
  for (const ConfigKey& k : ConfigKeys()) {
    if (k.moe && !c.moe()) continue;
    if (k.integer) j[k.json] = c.*k.integer;
    if (k.real) j[k.json] = c.*k.real;
    if (k.flag) j[k.json] = c.*k.flag;
  }
  return j.dump(2) + "\n";
}

SyntheticCheckpointInfo WriteSyntheticCheckpoint(const Qwen3Config& c,
                                                 const SyntheticCheckpointOptions& options,
                                                 const std::string& dir) {
  ValidateConfig(c);
  const fs::path root(dir);
  if (fs::exists(root) && !(fs::is_directory(root) && fs::is_empty(root))) {
    throw Error("output directory " + dir + ": exists and is not empty: expected a new directory");
  }
  // Tensors in HF order: embedding, layers, final norm, LM head.
  const std::vector<TensorSpec> schema = TensorSchema(c);

  // Shards: consecutive tensors while they fit in max_shard_bytes (a bigger tensor alone).
  std::vector<SafetensorsWriter> shards(1);
  std::vector<std::vector<std::string>> shard_names(1);
  SyntheticCheckpointInfo info;
  for (const TensorSpec& t : schema) {
    for (const std::string& name : t.HfTensors()) {  // each expert's own tensors
      const std::vector<size_t>& shape = t.shape;
      size_t count = 1;
      for (size_t d : shape) count *= d;
      const size_t bytes = count * 2;
      if (shards.back().size() > 0 &&
          shards.back().data_bytes() + bytes > options.max_shard_bytes) {
        shards.emplace_back();
        shard_names.emplace_back();
      }
      shards.back().Add(name, DType::kBF16, shape,
                        Values(name, count, static_cast<size_t>(c.hidden), options.seed));
      shard_names.back().push_back(name);
      info.bytes += bytes;
      ++info.tensors;
    }
  }
  info.shards = shards.size();

  const fs::path partial = root.string() + ".partial";
  fs::remove_all(partial);
  fs::create_directories(partial);
  try {
    WriteText(partial / "config.json", HfConfigJson(c));
    if (shards.size() == 1) {
      shards[0].SetMetadata("format", "pt");
      shards[0].Write((partial / "model.safetensors").string());
    } else {
      json map = json::object();
      const size_t n = shards.size();
      for (size_t s = 0; s < n; ++s) {
        char file[64];
        std::snprintf(file, sizeof(file), "model-%05zu-of-%05zu.safetensors", s + 1, n);
        shards[s].SetMetadata("format", "pt");
        shards[s].Write((partial / file).string());
        for (const std::string& name : shard_names[s]) map[name] = file;
      }
      const json index = {{"metadata", {{"total_size", info.bytes}}}, {"weight_map", map}};
      WriteText(partial / "model.safetensors.index.json", index.dump(2) + "\n");
    }
    if (fs::exists(root)) fs::remove(root);  // the empty directory
    fs::rename(partial, root);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(partial, ec);
    throw;
  }
  return info;
}

}  // namespace qwen3
