// A Qwen3 model in one GGUF file, as llama.cpp's convert_hf_to_gguf.py and llama-quantize
// write it: the config from the qwen3.* metadata, the tensors under llama.cpp's names (ggml
// dims, ne0 first: a linear's [out, in] weight is dims [in, out]), and the tokenizer and chat
// template from the tokenizer.* metadata. Opening checks the tensor set against the config
// (each expected name present with its dims and a supported type, nothing unexpected), so the
// model can be built without further checks. Errors name the file and the key or tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "model/config.h"
#include "model/tensor_schema.h"

namespace qwen3 {

// Every tensor a GGUF of config c must hold (the schema's GGUF names), with its dims (ne0
// first: the HF shape reversed).
std::map<std::string, std::vector<uint64_t>> ExpectedGgufTensors(const Qwen3Config& c);

// The weight type a GGUF type is held as: its own quantized type, or bf16 for the float types
// (and any type Open refuses).
WeightType WeightTypeOf(GgmlType t);

// The tokenizer.ggml.* metadata (llama.cpp's token types: 1 normal, 3 control, 4 user-defined,
// 5 unused; see Tokenizer::FromVocab).
struct GgufTokenizerData {
  std::string model, pre;           // "gpt2", "qwen2"; both empty when the file has no tokenizer
  std::vector<std::string> tokens;  // id -> token (byte-level string, or an added token's text)
  std::vector<int32_t> token_types;
  std::vector<std::string> merges;                // "a b", by rank
  int64_t eos_id = -1, bos_id = -1, pad_id = -1;  // -1 when absent
  bool add_bos = false;
};

// The config of a Qwen3 GGUF (named by its path): general.architecture "qwen3", the qwen3.*
// hyperparameters, vocab from token_embd.weight, tied when output.weight is absent. Throws
// Error for another architecture, missing or mistyped keys, RoPE scaling, or a config
// ValidateConfig rejects.
Qwen3Config ReadGgufConfig(const GgufFile& file);

class GgufCheckpoint {
 public:
  static GgufCheckpoint Open(const std::string& path);

  const Qwen3Config& config() const { return config_; }
  const GgufFile& file() const { return *file_; }
  // Checked at Open: every expected name is present.
  const GgufTensor& Get(const std::string& name) const { return file_->Get(name); }
  bool Has(const std::string& name) const { return file_->Find(name) != nullptr; }
  bool tied() const { return config_.tied_embeddings; }
  const GgufTokenizerData& tokenizer() const { return tokenizer_; }
  const std::string& chat_template() const { return chat_template_; }  // empty when absent
  size_t bytes() const;                                                // of all tensors

 private:
  std::unique_ptr<GgufFile> file_;
  Qwen3Config config_;
  GgufTokenizerData tokenizer_;
  std::string chat_template_;
};

}  // namespace qwen3
