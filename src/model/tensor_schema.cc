#include "model/tensor_schema.h"

namespace qwen3 {
namespace {

enum class Dim { kNone, kHidden, kQ, kKv, kHeadDim, kInter, kVocab, kExperts, kMoeInter };

size_t Size(const Qwen3Config& c, Dim d) {
  switch (d) {
    case Dim::kHidden:
      return static_cast<size_t>(c.hidden);
    case Dim::kQ:
      return static_cast<size_t>(c.QDim());
    case Dim::kKv:
      return static_cast<size_t>(c.KvDim());
    case Dim::kHeadDim:
      return static_cast<size_t>(c.head_dim);
    case Dim::kInter:
      return static_cast<size_t>(c.intermediate);
    case Dim::kVocab:
      return static_cast<size_t>(c.vocab);
    case Dim::kExperts:
      return static_cast<size_t>(c.experts);
    case Dim::kMoeInter:
      return static_cast<size_t>(c.moe_intermediate);
    case Dim::kNone:
      break;
  }
  return 0;
}

struct Row {
  TensorRole role;
  TensorKind kind;
  const char* hf;
  const char* gguf;
  Dim out, in;  // in = kNone: a vector
  WeightRole weight_role;
  std::unique_ptr<Weight> LayerWeights::*slot;
  std::vector<std::unique_ptr<Weight>> LayerWeights::*experts_slot = nullptr;  // per expert
};

using K = TensorKind;
using R = TensorRole;
using W = WeightRole;
using L = LayerWeights;

// One row per tensor of a decoder layer, in HF's order: attention, then a dense MLP or MoE.
const Row kAttentionRows[] = {
    {R::kInputNorm, K::kNorm, "input_layernorm.weight", "attn_norm.weight", Dim::kHidden, Dim::kNone, W::kNorm, &L::input_norm},
    {R::kPostNorm, K::kNorm, "post_attention_layernorm.weight", "ffn_norm.weight", Dim::kHidden, Dim::kNone, W::kNorm, &L::post_norm},
    {R::kQ, K::kLinear, "self_attn.q_proj.weight", "attn_q.weight", Dim::kQ, Dim::kHidden, W::kQ, &L::wq},
    {R::kK, K::kLinear, "self_attn.k_proj.weight", "attn_k.weight", Dim::kKv, Dim::kHidden, W::kK, &L::wk},
    {R::kV, K::kLinear, "self_attn.v_proj.weight", "attn_v.weight", Dim::kKv, Dim::kHidden, W::kV, &L::wv},
    {R::kO, K::kLinear, "self_attn.o_proj.weight", "attn_output.weight", Dim::kHidden, Dim::kQ, W::kO, &L::wo},
    {R::kQNorm, K::kNorm, "self_attn.q_norm.weight", "attn_q_norm.weight", Dim::kHeadDim, Dim::kNone, W::kNorm, &L::q_norm},
    {R::kKNorm, K::kNorm, "self_attn.k_norm.weight", "attn_k_norm.weight", Dim::kHeadDim, Dim::kNone, W::kNorm, &L::k_norm},
};
const Row kDenseMlpRows[] = {
    {R::kGate, K::kGate, "mlp.gate_proj.weight", "ffn_gate.weight", Dim::kInter, Dim::kHidden, W::kGateUp, &L::w_gate_up},
    {R::kUp, K::kUp, "mlp.up_proj.weight", "ffn_up.weight", Dim::kInter, Dim::kHidden, W::kGateUp, &L::w_gate_up},
    {R::kDown, K::kLinear, "mlp.down_proj.weight", "ffn_down.weight", Dim::kHidden, Dim::kInter, W::kDown, &L::w_down},
};
// Qwen3-MoE (transformers' Qwen3MoeSparseMoeBlock; llama.cpp's qwen3moe stacks the experts).
const Row kMoeRows[] = {
    {R::kRouter, K::kRouter, "mlp.gate.weight", "ffn_gate_inp.weight", Dim::kExperts, Dim::kHidden, W::kRouter, &L::router},
    {R::kExpertGate, K::kGate, "mlp.experts.{e}.gate_proj.weight", "ffn_gate_exps.weight", Dim::kMoeInter, Dim::kHidden, W::kGateUp, nullptr, &L::expert_gate_up},
    {R::kExpertUp, K::kUp, "mlp.experts.{e}.up_proj.weight", "ffn_up_exps.weight", Dim::kMoeInter, Dim::kHidden, W::kGateUp, nullptr, &L::expert_gate_up},
    {R::kExpertDown, K::kLinear, "mlp.experts.{e}.down_proj.weight", "ffn_down_exps.weight", Dim::kHidden, Dim::kMoeInter, W::kDown, nullptr, &L::expert_down},
};

TensorSpec Spec(const Qwen3Config& c, const Row& r, int layer, std::string hf, std::string gguf) {
  std::vector<size_t> shape = {Size(c, r.out)};
  if (r.in != Dim::kNone) shape.push_back(Size(c, r.in));
  TensorSpec t{r.role, r.kind, layer, std::move(hf), std::move(gguf), std::move(shape),
               r.weight_role, r.slot};
  if (r.experts_slot != nullptr) {
    t.experts = c.experts;
    t.experts_slot = r.experts_slot;
  }
  return t;
}

}  // namespace

std::string TensorSpec::HfExpert(int e) const {
  const size_t at = hf.find("{e}");
  return hf.substr(0, at) + std::to_string(e) + hf.substr(at + 3);
}

std::vector<std::string> TensorSpec::HfTensors() const {
  if (experts == 0) return {hf};
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(experts));
  for (int e = 0; e < experts; ++e) names.push_back(HfExpert(e));
  return names;
}

std::vector<uint64_t> TensorSpec::GgufDims() const {
  std::vector<uint64_t> dims(shape.rbegin(), shape.rend());
  if (experts > 0) dims.push_back(static_cast<uint64_t>(experts));
  return dims;
}

std::vector<TensorSpec> TensorSchema(const Qwen3Config& c) {
  const Row embed = {R::kEmbed, K::kEmbedding, "", "", Dim::kVocab, Dim::kHidden, W::kEmbedding, nullptr};
  const Row final_norm = {R::kFinalNorm, K::kNorm, "", "", Dim::kHidden, Dim::kNone, W::kNorm, nullptr};
  const Row lm_head = {R::kLmHead, K::kLinear, "", "", Dim::kVocab, Dim::kHidden, W::kLmHead, nullptr};
  std::vector<TensorSpec> t;
  t.reserve(3 + (std::size(kAttentionRows) + std::size(kMoeRows)) * static_cast<size_t>(c.layers));
  t.push_back(Spec(c, embed, -1, HfNames::Embed(), GgufNames::Embed()));
  for (int i = 0; i < c.layers; ++i) {
    const auto add = [&](const auto& rows) {
      for (const Row& r : rows) {
        t.push_back(Spec(c, r, i, HfNames::Layer(i, r.hf), GgufNames::Layer(i, r.gguf)));
      }
    };
    add(kAttentionRows);
    if (c.IsMoeLayer(i)) {
      add(kMoeRows);
    } else {
      add(kDenseMlpRows);
    }
  }
  t.push_back(Spec(c, final_norm, -1, HfNames::FinalNorm(), GgufNames::FinalNorm()));
  if (!c.tied_embeddings) t.push_back(Spec(c, lm_head, -1, HfNames::LmHead(), GgufNames::LmHead()));
  return t;
}

}  // namespace qwen3
