#include "model/config.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "base/error.h"

namespace qwen3 {
namespace {

using json = nlohmann::json;

[[noreturn]] void Fail(const std::string& name, const std::string& what) {
  throw Error("config " + name + ": " + what);
}

// Every message is one line, even when it echoes text from the file.
std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

// A value as JSON writes it ("abc" keeps its quotes), cut short to keep the message short.
std::string Shown(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() <= 40 ? s : s.substr(0, 37) + "...";
}

std::string Num(double d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", d);
  return buf;
}

// The field if present and not null, else nullptr: HF writes null for unset optionals.
const json* Field(const json& obj, const std::string& key) {
  const auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

int PositiveInt(const json& v, const std::string& key, const std::string& src) {
  // Integral floats (128.0) pass: some exporters write every number as a float.
  if (v.is_number()) {
    const double d = v.get<double>();
    if (d >= 1 && d <= INT_MAX && d == std::floor(d)) return static_cast<int>(d);
  }
  Fail(src, "field '" + key + "' = " + Shown(v) + ": expected a positive integer");
}

int RequiredInt(const json& obj, const std::string& key, const std::string& src) {
  const json* v = Field(obj, key);
  if (v == nullptr) Fail(src, "missing field '" + key + "'");
  return PositiveInt(*v, key, src);
}

double Number(const json& v, const std::string& key, const std::string& src) {
  if (!v.is_number()) Fail(src, "field '" + key + "' = " + Shown(v) + ": expected a number");
  return v.get<double>();
}

// Checks an optional string field against the one value the engine implements.
void ExpectText(const json& obj, const std::string& key, const std::string& want,
                const std::string& src) {
  const json* v = Field(obj, key);
  if (v == nullptr) return;
  if (!v->is_string()) Fail(src, "field '" + key + "' = " + Shown(*v) + ": expected a string");
  const std::string got = v->get<std::string>();
  if (got != want) Fail(src, OneLine(key + " '" + got + "': expected '" + want + "'"));
}

// RoPE scaling (YaRN, linear, ...) changes the angles; refuse it rather than run it wrong.
// transformers 4 writes rope_scaling (null, or {"rope_type"|"type": ...}); 5 writes
// rope_parameters {"rope_theta", "rope_type": "default"}.
void CheckRopeType(const json& obj, const std::string& key, const std::string& src) {
  if (!obj.is_object()) {
    Fail(src, "field '" + key + "' = " + Shown(obj) + ": expected an object");
  }
  for (const char* type_key : {"rope_type", "type"}) {
    const json* t = Field(obj, type_key);
    if (t != nullptr && *t != "default") {
      Fail(src, "field '" + key + "." + type_key + "' = " + Shown(*t) +
                    ": expected \"default\" (RoPE scaling is not supported)");
    }
  }
}

Qwen3Config Preset(const char* name, int hidden, int intermediate, int layers, int heads,
                   bool tied) {
  // Shared by every size in the spec's table.
  Qwen3Config c;
  c.name = name;
  c.hidden = hidden;
  c.intermediate = intermediate;
  c.layers = layers;
  c.heads = heads;
  c.kv_heads = 8;
  c.head_dim = 128;
  c.vocab = 151936;
  c.tied_embeddings = tied;
  return c;
}

struct NamedPreset {
  const char* name;
  Qwen3Config (*make)();
};

constexpr NamedPreset kPresets[] = {
    {"0.6b", Qwen3_0_6B},         {"1.7b", Qwen3_1_7B},          {"4b", Qwen3_4B},
    {"8b", Qwen3_8B},             {"14b", Qwen3_14B},            {"32b", Qwen3_32B},
    {"30b-a3b", Qwen3_30B_A3B},   {"235b-a22b", Qwen3_235B_A22B},
};

Qwen3Config MoePreset(const char* name, int hidden, int layers, int heads, int moe_inter) {
  Qwen3Config c = Preset(name, hidden, 6144, layers, heads, false);  // HF's unused dense width
  c.kv_heads = 4;
  c.experts = 128;
  c.experts_used = 8;
  c.moe_intermediate = moe_inter;
  c.norm_topk_prob = true;
  return c;
}

}  // namespace

// spec/qwen3-models.md, "Configs".
Qwen3Config Qwen3_0_6B() { return Preset("qwen3-0.6b", 1024, 3072, 28, 16, true); }
Qwen3Config Qwen3_1_7B() { return Preset("qwen3-1.7b", 2048, 6144, 28, 16, true); }
Qwen3Config Qwen3_4B() { return Preset("qwen3-4b", 2560, 9728, 36, 32, true); }
Qwen3Config Qwen3_8B() { return Preset("qwen3-8b", 4096, 12288, 36, 32, false); }
Qwen3Config Qwen3_14B() { return Preset("qwen3-14b", 5120, 17408, 40, 40, false); }
Qwen3Config Qwen3_32B() { return Preset("qwen3-32b", 5120, 25600, 64, 64, false); }

// config.json of Qwen/Qwen3-30B-A3B and Qwen/Qwen3-235B-A22B (intermediate_size 6144 and
// 12288: unused, every layer is MoE).
Qwen3Config Qwen3_30B_A3B() { return MoePreset("qwen3-30b-a3b", 2048, 48, 32, 768); }
Qwen3Config Qwen3_235B_A22B() {
  Qwen3Config c = MoePreset("qwen3-235b-a22b", 4096, 94, 64, 1536);
  c.intermediate = 12288;
  return c;
}

std::string Describe(const Qwen3Config& c) {
  std::string s = std::to_string(c.layers) + "-layer Qwen3";
  if (c.moe()) s += "-MoE (" + std::to_string(c.experts) + " experts)";
  return s;
}

bool Qwen3Config::IsMoeLayer(int layer) const {
  return experts > 0 && (layer + 1) % decoder_sparse_step == 0 &&
         std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) == mlp_only_layers.end();
}

Qwen3Config Qwen3_14BSeed() {
  Qwen3Config c = Qwen3_14B();
  c.name = "qwen3-14b-seed";
  c.vocab = 152064;
  return c;
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const NamedPreset& p : kPresets) names.push_back(p.name);
  return names;
}

Qwen3Config PresetConfig(const std::string& name) {
  std::string known;
  for (const NamedPreset& p : kPresets) {
    if (name == p.name) return p.make();
    known += known.empty() ? p.name : std::string(", ") + p.name;
  }
  throw Error(OneLine("unknown config preset '" + name + "': expected one of " + known));
}

// In reading order: head_dim's default needs hidden_size and the heads.
constexpr ConfigKey kConfigKeys[] = {
    {"hidden_size", &Qwen3Config::hidden, nullptr, nullptr, true},
    {"intermediate_size", &Qwen3Config::intermediate, nullptr, nullptr, true},
    {"num_hidden_layers", &Qwen3Config::layers, nullptr, nullptr, true},
    {"num_attention_heads", &Qwen3Config::heads, nullptr, nullptr, true},
    {"num_key_value_heads", &Qwen3Config::kv_heads, nullptr, nullptr, true},
    {"head_dim", &Qwen3Config::head_dim},
    {"vocab_size", &Qwen3Config::vocab, nullptr, nullptr, true},
    {"max_position_embeddings", &Qwen3Config::max_position_embeddings},
    {"tie_word_embeddings", nullptr, nullptr, &Qwen3Config::tied_embeddings},
    {"rope_theta", nullptr, &Qwen3Config::rope_theta},
    {"rms_norm_eps", nullptr, &Qwen3Config::rms_norm_eps},
    {"num_experts", &Qwen3Config::experts, nullptr, nullptr, true, true},
    {"num_experts_per_tok", &Qwen3Config::experts_used, nullptr, nullptr, true, true},
    {"moe_intermediate_size", &Qwen3Config::moe_intermediate, nullptr, nullptr, true, true},
    {"norm_topk_prob", nullptr, nullptr, &Qwen3Config::norm_topk_prob, false, true},
    {"decoder_sparse_step", &Qwen3Config::decoder_sparse_step, nullptr, nullptr, false, true},
};

std::span<const ConfigKey> ConfigKeys() { return kConfigKeys; }

Qwen3Config ParseHfConfig(const std::string& json_text, const std::string& source_name) {
  const std::string& src = source_name;
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::exception& e) {
    // Not only parse_error: a number past double's range (1e400) is out_of_range.
    Fail(src, OneLine(std::string("malformed JSON: ") + e.what()));
  }
  if (!j.is_object()) {
    Fail(src, std::string("malformed JSON: expected an object, got ") + j.type_name());
  }
  bool moe = false;
  if (const json* t = Field(j, "model_type")) {
    if (!t->is_string()) Fail(src, "field 'model_type' = " + Shown(*t) + ": expected a string");
    moe = *t == "qwen3_moe";
    if (!moe && *t != "qwen3") {
      Fail(src, OneLine("model_type '" + t->get<std::string>() + "': expected 'qwen3' or 'qwen3_moe'"));
    }
  }
  ExpectText(j, "hidden_act", "silu", src);

  Qwen3Config c;
  c.name = source_name;
  for (const ConfigKey& k : kConfigKeys) {
    if (k.moe && !moe) continue;
    const json* v = Field(j, k.json);
    if (k.required && v == nullptr) RequiredInt(j, k.json, src);  // the missing-field error
    if (k.integer == &Qwen3Config::head_dim && v == nullptr) {
      c.head_dim = c.hidden / c.heads;  // HF's default
    } else if (v == nullptr) {
      continue;
    } else if (k.integer) {
      c.*k.integer = PositiveInt(*v, k.json, src);
    } else if (k.real) {
      c.*k.real = Number(*v, k.json, src);
    } else if (!v->is_boolean()) {
      Fail(src, std::string("field '") + k.json + "' = " + Shown(*v) + ": expected true or false");
    } else {
      c.*k.flag = v->get<bool>();
    }
  }
  if (const json* v = Field(j, "mlp_only_layers"); v != nullptr && moe) {
    if (!v->is_array()) {
      Fail(src, "field 'mlp_only_layers' = " + Shown(*v) + ": expected a list of layer indices");
    }
    for (const json& e : *v) {
      if (!e.is_number_integer()) {
        Fail(src, "field 'mlp_only_layers' element " + Shown(e) + ": expected a layer index");
      }
      c.mlp_only_layers.push_back(static_cast<int>(std::clamp<int64_t>(e.get<int64_t>(), -1, INT_MAX)));
    }
  }
  if (const json* v = Field(j, "rope_scaling")) CheckRopeType(*v, "rope_scaling", src);
  if (const json* p = Field(j, "rope_parameters")) {
    CheckRopeType(*p, "rope_parameters", src);
    if (const json* v = Field(*p, "rope_theta")) {
      c.rope_theta = Number(*v, "rope_parameters.rope_theta", src);
    }
  }
  ValidateConfig(c);
  return c;
}

Qwen3Config LoadHfConfig(const std::string& path) {
  const auto errno_text = [] { return std::generic_category().message(errno); };
  struct Closer {
    void operator()(FILE* f) const { std::fclose(f); }
  };
  const std::unique_ptr<FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) Fail(path, "cannot open: " + errno_text());
  std::string text;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof(buf), file.get())) > 0;) text.append(buf, n);
  // A directory opens fine and fails here (EISDIR).
  if (std::ferror(file.get())) Fail(path, "cannot read: " + errno_text());
  return ParseHfConfig(text, path);
}

Qwen3Config ResolveConfig(const std::string& preset_or_path) {
  const bool is_path =
      preset_or_path.find('/') != std::string::npos || preset_or_path.ends_with(".json");
  return is_path ? LoadHfConfig(preset_or_path) : PresetConfig(preset_or_path);
}

size_t Qwen3Config::KvBytesPerToken() const {
  const size_t stored_dim = (static_cast<size_t>(head_dim) + kKvDimAlign - 1) / kKvDimAlign * kKvDimAlign;
  return static_cast<size_t>(layers) * 2 * static_cast<size_t>(kv_heads) * stored_dim * 2;
}

void ValidateConfig(const Qwen3Config& c) {
  const auto fail = [&](const std::string& what) { Fail(c.name, what); };
  for (const ConfigKey& k : kConfigKeys) {
    if (k.moe && !c.moe() && k.integer != &Qwen3Config::experts) continue;
    if (k.integer && c.*k.integer < 0) {
      fail(std::string(k.json) + " = " + std::to_string(c.*k.integer) +
           ": expected a positive integer");
    }
    if (k.integer == &Qwen3Config::experts) continue;  // 0: dense
    if (k.integer && c.*k.integer <= 0) {
      fail(std::string(k.json) + " = " + std::to_string(c.*k.integer) +
           ": expected a positive integer");
    }
  }
  // Far above any released model, and low enough that the products made from them (heads *
  // head_dim in int, vocab * hidden bytes, a name per tensor of every layer) cannot overflow
  // or exhaust memory before a tensor is read: a hostile config fails here, not in new[].
  const std::pair<const char*, int> maxima[] = {
      {"hidden_size", c.hidden},       {"intermediate_size", c.intermediate},
      {"num_hidden_layers", c.layers}, {"num_attention_heads", c.heads},
      {"vocab_size", c.vocab},
  };
  const int limits[] = {kMaxHidden, kMaxIntermediate, kMaxLayers, kMaxHeads, kMaxVocab};
  for (size_t i = 0; i < std::size(maxima); ++i) {
    if (maxima[i].second > limits[i]) {
      fail(std::string(maxima[i].first) + " = " + std::to_string(maxima[i].second) +
           ": expected at most " + std::to_string(limits[i]));
    }
  }
  if (c.heads % c.kv_heads != 0) {
    fail("num_attention_heads " + std::to_string(c.heads) +
         " is not a multiple of num_key_value_heads " + std::to_string(c.kv_heads));
  }
  if (c.GroupSize() > 16) {
    fail("num_attention_heads / num_key_value_heads = " + std::to_string(c.GroupSize()) +
         ": expected at most 16 (attention uses one 16-row query tile per KV head)");
  }
  if (c.head_dim % 2 != 0 || c.head_dim > kMaxHeadDim) {
    fail("head_dim = " + std::to_string(c.head_dim) + ": expected an even number in 2.." +
         std::to_string(kMaxHeadDim) +
         " (RoPE rotates two halves; the attention tiles hold at most 256)");
  }
  if (c.hidden % 32 != 0) {
    fail("hidden_size = " + std::to_string(c.hidden) +
         ": expected a multiple of 32 (the kernels' tile requirement)");
  }
  if (c.intermediate % 32 != 0) {
    fail("intermediate_size = " + std::to_string(c.intermediate) +
         ": expected a multiple of 32 (the kernels' tile requirement)");
  }
  if (c.moe()) {
    if (c.experts > kMaxExperts) {
      fail("num_experts = " + std::to_string(c.experts) + ": expected at most " +
           std::to_string(kMaxExperts));
    }
    if (c.experts_used > c.experts) {
      fail("num_experts_per_tok = " + std::to_string(c.experts_used) + ": expected 1.." +
           std::to_string(c.experts) + " (num_experts)");
    }
    if (c.moe_intermediate > kMaxIntermediate || c.moe_intermediate % 32 != 0) {
      fail("moe_intermediate_size = " + std::to_string(c.moe_intermediate) +
           ": expected a multiple of 32 up to " + std::to_string(kMaxIntermediate) +
           " (the kernels' tile requirement)");
    }
    for (int l : c.mlp_only_layers) {
      if (l < 0 || l >= c.layers) {
        fail("mlp_only_layers has " + std::to_string(l) + ": expected layers 0.." +
             std::to_string(c.layers - 1));
      }
    }
  }
  if (!(c.rope_theta > 0) || !std::isfinite(c.rope_theta)) {
    fail("rope_theta = " + Num(c.rope_theta) + ": expected a positive finite number");
  }
  if (!(c.rms_norm_eps > 0) || !std::isfinite(c.rms_norm_eps)) {
    fail("rms_norm_eps = " + Num(c.rms_norm_eps) + ": expected a positive finite number");
  }
}

}  // namespace qwen3
