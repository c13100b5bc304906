#include "exec/moe_routing.h"

#include <cmath>

#include "base/error.h"

namespace qwen3 {

void RouteTopK(const float* logits, size_t experts, size_t k, bool norm, float* probs,
               int32_t* ids, float* weights) {
  QW_ASSERT(k >= 1 && k <= experts);
  float max = logits[0];
  for (size_t e = 1; e < experts; ++e) max = std::fmax(max, logits[e]);
  float sum = 0;
  for (size_t e = 0; e < experts; ++e) {
    probs[e] = std::exp(logits[e] - max);
    sum += probs[e];
  }
  for (size_t e = 0; e < experts; ++e) probs[e] /= sum;
  float chosen = 0;
  for (size_t j = 0; j < k; ++j) {  // k passes: strictly greater keeps the lower id on ties
    size_t best = experts;
    for (size_t e = 0; e < experts; ++e) {
      if (probs[e] < 0) continue;  // taken
      if (best == experts || probs[e] > probs[best]) best = e;
    }
    ids[j] = static_cast<int32_t>(best);
    weights[j] = probs[best];
    chosen += probs[best];
    probs[best] = -1.0f;
  }
  if (norm) {
    for (size_t j = 0; j < k; ++j) weights[j] /= chosen;
  }
}

}  // namespace qwen3
