// All weights of a Qwen3 model, packed once by an executor: one LayerWeights per decoder layer,
// the final norm + LM head, and the token embedding (io/load_weights.h builds them from a
// checkpoint). A tied model stores its embedding once, as the packed LM head, and looks
// embedding rows up there.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/layer_weights.h"

namespace qwen3 {

struct ModelWeights {
  Qwen3Config config;
  std::vector<LayerWeights> layers;
  LmHeadWeights lm;               // final norm + [hidden -> vocab]
  std::unique_ptr<Weight> embed;  // [vocab, hidden]; null when tied (the LM head holds it)

  // The table Executor::Embed reads rows of.
  const Weight& embedding() const { return embed ? *embed : *lm.weight; }
  // Bytes the engine keeps resident for the weights.
  size_t bytes() const;
  // The projections' and LM head's weight types: "bf16", "q8_0", ..., or the mix, widest
  // first ("q4_k+q6_k").
  std::string weight_type() const;
  bool quantized() const { return lm.weight && lm.weight->type() != WeightType::kBf16; }
};

}  // namespace qwen3
