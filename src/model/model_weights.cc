#include "model/model_weights.h"

#include <cstring>

#include "base/error.h"

namespace qwen3 {

void ModelWeights::Embed(int32_t token, bf16* out) const {
  const size_t h = config.hidden, t = static_cast<size_t>(token);
  QW_ASSERT(token >= 0 && t < static_cast<size_t>(config.vocab));
  if (!embed.empty()) {
    std::memcpy(out, embed.data() + t * h, h * sizeof(bf16));
  } else if (embed_q.n() != 0) {
    for (size_t k = 0; k < h; ++k) out[k] = F32ToBf16(embed_q.At(k, t));
  } else {
    for (size_t k = 0; k < h; ++k) out[k] = F32ToBf16(lm.weight.At(k, t));
  }
}

std::string ModelWeights::weight_type() const {
  bool seen[5] = {};
  const auto see = [&](const cpu::WeightMatrix& m) { seen[static_cast<int>(m.type())] = true; };
  for (const LayerWeights& l : layers) {
    for (const cpu::WeightMatrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate_up, &l.w_down}) see(*m);
  }
  if (lm.rows) see(lm.weight);
  std::string out;
  for (int t = 0; t < 5; ++t) {
    if (!seen[t]) continue;
    if (!out.empty()) out.push_back('+');
    out.append(cpu::ToString(static_cast<cpu::WeightType>(t)));
  }
  return out;
}

size_t ModelWeights::bytes() const {
  size_t n = lm.weight.bytes() + lm.final_norm.size() * 4 + embed.size() * sizeof(bf16) +
             embed_q.bytes();
  for (const LayerWeights& l : layers) n += l.bytes();
  return n;
}

}  // namespace qwen3
