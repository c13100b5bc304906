// The tensors of a Qwen3 model, one row each: what the tensor is for, its Hugging Face and
// GGUF (llama.cpp) names, its shape and the types a file may hold it in, and where the engine
// keeps it. The HF and GGUF validators, both loaders and the synthetic checkpoint writer all
// read this table: adding a tensor is one row (plus its use in the layer program).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "exec/executor.h"
#include "model/config.h"
#include "model/layer_weights.h"

namespace qwen3 {

enum class TensorRole {
  kEmbed, kFinalNorm, kLmHead,  // the model's
  kInputNorm, kPostNorm, kQ, kK, kV, kO, kQNorm, kKNorm, kGate, kUp, kDown,  // each layer's
  kRouter, kExpertGate, kExpertUp, kExpertDown,  // an MoE layer's FFN (instead of gate/up/down)
};

// How a tensor is packed: a norm vector (float types only), a projection (quantized GGUF
// types allowed), half of the gate|up pair (gate first, then up: one executor weight), or an
// MoE router (float types only, held in fp32).
enum class TensorKind { kNorm, kLinear, kGate, kUp, kEmbedding, kRouter };

struct TensorSpec {
  TensorRole role;
  TensorKind kind;
  int layer;  // -1: the model's own
  // experts > 0: one [out, in] matrix per expert, packed one by one (experts_slot): HF stores
  // them as tensors HfExpert(e), GGUF as one 3-D tensor, ggml dims {in, out, experts}.
  std::string hf, gguf;  // hf: the name, or for experts the name with "{e}" for the expert
  std::vector<size_t> shape;  // [out, in] as HF stores it (GGUF's dims are the reverse), or [n]
  WeightRole weight_role;     // what the executor is told (tensor parallelism shards by it)
  std::unique_ptr<Weight> LayerWeights::*slot;  // where a layer's tensor goes (null: model's)
  int experts = 0;
  std::vector<std::unique_ptr<Weight>> LayerWeights::*experts_slot = nullptr;

  bool matrix() const { return shape.size() == 2; }
  std::string HfExpert(int e) const;
  // The HF tensors of this row: hf, or each expert's.
  std::vector<std::string> HfTensors() const;
  // GGUF dims, ne0 first: the shape reversed, then the expert count.
  std::vector<uint64_t> GgufDims() const;
};

// Every tensor a checkpoint of c holds, in HF's order: embedding, each layer's, final norm,
// LM head (absent when tied).
std::vector<TensorSpec> TensorSchema(const Qwen3Config& c);

// HF and GGUF tensor names of the model's own tensors and a layer's.
struct HfNames {
  static std::string Embed() { return "model.embed_tokens.weight"; }
  static std::string FinalNorm() { return "model.norm.weight"; }
  static std::string LmHead() { return "lm_head.weight"; }
  static std::string Layer(int layer, const std::string& leaf) {
    return "model.layers." + std::to_string(layer) + "." + leaf;
  }
};
// llama.cpp's names (llama-arch.cpp, LLM_ARCH_QWEN3).
struct GgufNames {
  static std::string Embed() { return "token_embd.weight"; }
  static std::string FinalNorm() { return "output_norm.weight"; }
  static std::string LmHead() { return "output.weight"; }  // absent when tied
  static std::string Layer(int layer, const std::string& leaf) {
    return "blk." + std::to_string(layer) + "." + leaf;
  }
};

}  // namespace qwen3
