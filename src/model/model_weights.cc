#include "model/model_weights.h"

#include <cstring>

#include "base/error.h"

namespace qwen3 {

void ModelWeights::Embed(int32_t token, bf16* out) const {
  const size_t h = config.hidden, t = static_cast<size_t>(token);
  QW_ASSERT(token >= 0 && t < static_cast<size_t>(config.vocab));
  if (!embed.empty()) {
    std::memcpy(out, embed.data() + t * h, h * sizeof(bf16));
  } else {
    for (size_t k = 0; k < h; ++k) out[k] = lm.weight.At(k, t);
  }
}

size_t ModelWeights::bytes() const {
  size_t n = lm.weight.bytes() + lm.final_norm.size() * 4 + embed.size() * sizeof(bf16);
  for (const LayerWeights& l : layers) n += l.bytes();
  return n;
}

}  // namespace qwen3
