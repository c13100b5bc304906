#include "io/hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "base/error.h"

namespace qwen3 {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("file " + path.string() + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool IsFloat(DType d) {
  return d == DType::kBF16 || d == DType::kF16 || d == DType::kF32;
}

}  // namespace

std::map<std::string, std::vector<size_t>> ExpectedTensors(const Qwen3Config& c) {
  std::map<std::string, std::vector<size_t>> t;
  for (const TensorSpec& spec : TensorSchema(c)) {
    for (const std::string& name : spec.HfTensors()) t[name] = spec.shape;
  }
  return t;
}

HfCheckpoint HfCheckpoint::Open(const std::string& dir) {
  HfCheckpoint ck;
  ck.dir_ = dir;
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw Error("model directory " + dir + ": not a directory");
  ck.config_ = LoadHfConfig((root / "config.json").string());

  // Which file holds each tensor: the index's weight_map, or the single file.
  std::map<std::string, std::string> weight_map;  // name -> file name
  const fs::path index_path = root / "model.safetensors.index.json";
  const fs::path single = root / "model.safetensors";
  std::vector<std::string> file_names;
  if (fs::exists(index_path)) {
    const std::string where = "file " + index_path.string();
    json index;
    try {
      index = json::parse(ReadText(index_path));
    } catch (const json::exception& e) {
      throw Error(where + ": not valid JSON: " + e.what());
    }
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw Error(where + ": expected an object with a weight_map object");
    }
    std::set<std::string> files;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error(where + ": weight_map." + it.key() + " is not a string");
      const std::string file = it.value().get<std::string>();
      if (file.empty() || file.find('/') != std::string::npos) {
        throw Error(where + ": weight_map." + it.key() + " = \"" + file +
                    "\": expected a file name in the model directory");
      }
      weight_map[it.key()] = file;
      files.insert(file);
    }
    file_names.assign(files.begin(), files.end());
  } else if (fs::exists(single)) {
    file_names = {"model.safetensors"};
  } else {
    throw Error("model directory " + dir +
                ": no model.safetensors and no model.safetensors.index.json");
  }

  for (const std::string& name : file_names) {
    ck.files_.push_back(SafetensorsFile::Open((root / name).string()));
    const SafetensorsFile& f = *ck.files_.back();
    for (const TensorView& t : f.tensors()) {
      const auto prev = ck.tensors_.find(t.name);
      if (prev != ck.tensors_.end()) {
        throw Error("tensor " + t.name + ": in both " + *prev->second->file + " and " + f.path());
      }
      if (!weight_map.empty()) {
        const auto w = weight_map.find(t.name);
        if (w == weight_map.end()) {
          throw Error(t.Where() + ": not in the weight_map of " + index_path.string());
        }
        if (w->second != name) {
          throw Error(t.Where() + ": the index puts it in " + w->second);
        }
      }
      ck.tensors_[t.name] = &t;
    }
  }
  for (const auto& [name, file] : weight_map) {
    if (!ck.tensors_.count(name)) {
      throw Error("tensor " + name + ": the index puts it in " + file + ", which lacks it");
    }
  }

  const auto expected = ExpectedTensors(ck.config_);
  for (const auto& [name, shape] : expected) {
    const auto it = ck.tensors_.find(name);
    if (it == ck.tensors_.end()) {
      throw Error("tensor " + name + ": missing from " + dir + " (config " +
                  ck.config_.name + " needs it)");
    }
    const TensorView& t = *it->second;
    if (!IsFloat(t.dtype)) {
      throw Error(t.Where() + ": dtype " + ToString(t.dtype) + ", expected BF16, F16 or F32");
    }
    t.ExpectShape(shape);
  }
  for (const auto& [name, t] : ck.tensors_) {
    // transformers also ignores a stored lm_head of a tied model; its shape must still fit.
    if (name == HfNames::LmHead() && ck.config_.tied_embeddings) {
      t->ExpectShape({static_cast<size_t>(ck.config_.vocab), static_cast<size_t>(ck.config_.hidden)});
      continue;
    }
    if (!expected.count(name)) {
      throw Error(t->Where() + ": unexpected for a " + Describe(ck.config_) + " checkpoint");
    }
  }
  return ck;
}

const TensorView& HfCheckpoint::Get(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("tensor " + name + ": not in " + dir_);
  return *it->second;
}

size_t HfCheckpoint::bytes() const {
  size_t n = 0;
  for (const auto& [name, t] : tensors_) n += t->bytes;
  return n;
}

}  // namespace qwen3
