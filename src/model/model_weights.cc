#include "model/model_weights.h"

namespace qwen3 {

std::string ModelWeights::weight_type() const {
  bool seen[kNumWeightTypes] = {};
  const auto see = [&](const std::unique_ptr<Weight>& m) {
    if (m) seen[static_cast<int>(m->type())] = true;
  };
  for (const LayerWeights& l : layers) {
    for (const auto* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate_up, &l.w_down}) see(*m);
    for (const auto* experts : {&l.expert_gate_up, &l.expert_down}) {
      for (const auto& m : *experts) see(m);
    }
  }
  if (lm.rows) see(lm.weight);
  std::string out;
  for (int t = 0; t < kNumWeightTypes; ++t) {
    if (!seen[t]) continue;
    if (!out.empty()) out.push_back('+');
    out.append(ToString(static_cast<WeightType>(t)));
  }
  return out;
}

size_t ModelWeights::bytes() const {
  size_t n = lm.bytes() + (embed ? embed->bytes() : 0);
  for (const LayerWeights& l : layers) n += l.bytes();
  return n;
}

}  // namespace qwen3
