#include "model/layer_weights.h"

namespace qwen3 {
namespace {

// A seed-layout [in, out] bf16 matrix.
HostMatrix SeedMatrix(const AlignedBuffer<bf16>& m, size_t in, size_t out, const char* name) {
  return {name, WeightType::kBf16, m.data(), out, in, true};
}

size_t BytesOf(const std::unique_ptr<Weight>& w) { return w ? w->bytes() : 0; }

}  // namespace

LayerWeights LayerWeights::FromSeedLayout(const Qwen3Config& c, const LayerTensors& t,
                                          Executor& x) {
  const size_t h = c.hidden, q = c.QDim(), kv = c.KvDim(), inter = c.intermediate;
  LayerWeights w;
  w.input_norm = x.PackNorm(t.input_rms_weight.data(), h, "input_rms_weight");
  w.post_norm = x.PackNorm(t.post_rms_weight.data(), h, "post_rms_weight");
  w.q_norm = x.PackNorm(t.q_norm_weight.data(), c.head_dim, "q_norm_weight");
  w.k_norm = x.PackNorm(t.k_norm_weight.data(), c.head_dim, "k_norm_weight");
  w.wq = x.PackLinear(SeedMatrix(t.wq, h, q, "wq"), WeightRole::kQ, {});
  w.wk = x.PackLinear(SeedMatrix(t.wk, h, kv, "wk"), WeightRole::kK, {});
  w.wv = x.PackLinear(SeedMatrix(t.wv, h, kv, "wv"), WeightRole::kV, {});
  w.wo = x.PackLinear(SeedMatrix(t.wo, q, h, "wo"), WeightRole::kO, {});
  w.w_gate_up = x.PackGateUp(SeedMatrix(t.w_gate, h, inter, "w_gate"),
                             SeedMatrix(t.w_up, h, inter, "w_up"), {});
  w.w_down = x.PackLinear(SeedMatrix(t.w_down, inter, h, "w_down"), WeightRole::kDown, {});
  return w;
}

size_t LayerWeights::bytes() const {
  size_t n = 0;
  for (const auto* p : {&input_norm, &post_norm, &q_norm, &k_norm, &wq, &wk, &wv, &wo,
                        &w_gate_up, &w_down, &router}) {
    n += BytesOf(*p);
  }
  for (const auto* experts : {&expert_gate_up, &expert_down}) {
    for (const auto& w : *experts) n += BytesOf(w);
  }
  return n;
}

LmHeadWeights LmHeadWeights::FromSeedLayout(const Qwen3Config& c, const LayerTensors& t,
                                            Executor& x) {
  LmHeadWeights w;
  w.final_norm = x.PackNorm(t.final_norm_weight.data(), c.hidden, "final_norm_weight");
  w.rows = t.lm_rows;
  if (w.rows > 0) {  // [rows, hidden]: nn.Linear's layout
    w.weight = x.PackLinear({"lm_head", WeightType::kBf16, t.lm_head.data(), w.rows,
                             static_cast<size_t>(c.hidden), false},
                            WeightRole::kLmHead, {});
  }
  return w;
}

size_t LmHeadWeights::bytes() const { return BytesOf(final_norm) + BytesOf(weight); }

ModelDims DimsOf(const Qwen3Config& c) {
  ModelDims d;
  d.hidden = static_cast<size_t>(c.hidden);
  d.heads = static_cast<size_t>(c.heads);
  d.kv_heads = static_cast<size_t>(c.kv_heads);
  d.head_dim = static_cast<size_t>(c.head_dim);
  d.intermediate = static_cast<size_t>(c.intermediate);
  d.vocab = static_cast<size_t>(c.vocab);
  d.eps = static_cast<float>(c.rms_norm_eps);
  d.experts = static_cast<size_t>(c.experts);
  d.experts_used = static_cast<size_t>(c.experts_used);
  d.moe_intermediate = static_cast<size_t>(c.moe_intermediate);
  d.norm_topk = c.norm_topk_prob;
  return d;
}

}  // namespace qwen3
