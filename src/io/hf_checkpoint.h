// A Hugging Face Qwen3 model directory: config.json and the weights, in one model.safetensors
// or in shards named by model.safetensors.index.json. Opening maps every file and checks the
// tensor set against the config (each expected name present once, with the expected shape and
// a float dtype; nothing unexpected; every index entry in the shard it names), so the model
// can be built without further checks. Errors name the file and the tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/config.h"
#include "model/tensor_schema.h"

namespace qwen3 {

// Every tensor a checkpoint of config c must hold (the schema's HF names), with its shape
// ([out, in] for linears).
std::map<std::string, std::vector<size_t>> ExpectedTensors(const Qwen3Config& c);

class HfCheckpoint {
 public:
  static HfCheckpoint Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const Qwen3Config& config() const { return config_; }
  // Checked at Open: every expected name is present.
  const TensorView& Get(const std::string& name) const;
  bool Has(const std::string& name) const { return tensors_.count(name) != 0; }
  size_t num_files() const { return files_.size(); }
  size_t bytes() const;

 private:
  std::string dir_;
  Qwen3Config config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
};

}  // namespace qwen3
