#include "model/tensor_schema.h"

namespace qwen3 {
namespace {

enum class Dim { kNone, kHidden, kQ, kKv, kHeadDim, kInter, kVocab };

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
};

using K = TensorKind;
using R = TensorRole;
using W = WeightRole;
using L = LayerWeights;

// One row per tensor of a decoder layer, in HF's order.
const Row kLayerRows[] = {
    {R::kInputNorm, K::kNorm, "input_layernorm.weight", "attn_norm.weight", Dim::kHidden, Dim::kNone, W::kNorm, &L::input_norm},
    {R::kPostNorm, K::kNorm, "post_attention_layernorm.weight", "ffn_norm.weight", Dim::kHidden, Dim::kNone, W::kNorm, &L::post_norm},
    {R::kQ, K::kLinear, "self_attn.q_proj.weight", "attn_q.weight", Dim::kQ, Dim::kHidden, W::kQ, &L::wq},
    {R::kK, K::kLinear, "self_attn.k_proj.weight", "attn_k.weight", Dim::kKv, Dim::kHidden, W::kK, &L::wk},
    {R::kV, K::kLinear, "self_attn.v_proj.weight", "attn_v.weight", Dim::kKv, Dim::kHidden, W::kV, &L::wv},
    {R::kO, K::kLinear, "self_attn.o_proj.weight", "attn_output.weight", Dim::kHidden, Dim::kQ, W::kO, &L::wo},
    {R::kQNorm, K::kNorm, "self_attn.q_norm.weight", "attn_q_norm.weight", Dim::kHeadDim, Dim::kNone, W::kNorm, &L::q_norm},
    {R::kKNorm, K::kNorm, "self_attn.k_norm.weight", "attn_k_norm.weight", Dim::kHeadDim, Dim::kNone, W::kNorm, &L::k_norm},
    {R::kGate, K::kGate, "mlp.gate_proj.weight", "ffn_gate.weight", Dim::kInter, Dim::kHidden, W::kGateUp, &L::w_gate_up},
    {R::kUp, K::kUp, "mlp.up_proj.weight", "ffn_up.weight", Dim::kInter, Dim::kHidden, W::kGateUp, &L::w_gate_up},
    {R::kDown, K::kLinear, "mlp.down_proj.weight", "ffn_down.weight", Dim::kHidden, Dim::kInter, W::kDown, &L::w_down},
};

TensorSpec Spec(const Qwen3Config& c, const Row& r, int layer, std::string hf, std::string gguf) {
  std::vector<size_t> shape = {Size(c, r.out)};
  if (r.in != Dim::kNone) shape.push_back(Size(c, r.in));
  return {r.role, r.kind, layer, std::move(hf), std::move(gguf), std::move(shape), r.weight_role,
          r.slot};
}

}  // namespace

std::vector<TensorSpec> TensorSchema(const Qwen3Config& c) {
  const Row embed = {R::kEmbed, K::kEmbedding, "", "", Dim::kVocab, Dim::kHidden, W::kEmbedding, nullptr};
  const Row final_norm = {R::kFinalNorm, K::kNorm, "", "", Dim::kHidden, Dim::kNone, W::kNorm, nullptr};
  const Row lm_head = {R::kLmHead, K::kLinear, "", "", Dim::kVocab, Dim::kHidden, W::kLmHead, nullptr};
  std::vector<TensorSpec> t;
  t.reserve(3 + std::size(kLayerRows) * static_cast<size_t>(c.layers));
  t.push_back(Spec(c, embed, -1, HfNames::Embed(), GgufNames::Embed()));
  for (int i = 0; i < c.layers; ++i) {
    for (const Row& r : kLayerRows) {
      t.push_back(Spec(c, r, i, HfNames::Layer(i, r.hf), GgufNames::Layer(i, r.gguf)));
    }
  }
  t.push_back(Spec(c, final_norm, -1, HfNames::FinalNorm(), GgufNames::FinalNorm()));
  if (!c.tied_embeddings) t.push_back(Spec(c, lm_head, -1, HfNames::LmHead(), GgufNames::LmHead()));
  return t;
}

}  // namespace qwen3
