// All weights of a Qwen3 model, packed once for the cube: one LayerWeights per decoder layer,
// the final norm + LM head, and the token embedding (io/load_weights.h builds them from a
// Hugging Face checkpoint). A tied model stores its embedding once, as the packed LM head, and
// looks embedding rows up there.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/aligned_buffer.h"
#include "base/bf16.h"
#include "model/config.h"
#include "model/layer_weights.h"

namespace qwen3 {

struct ModelWeights {
  Qwen3Config config;
  std::vector<LayerWeights> layers;
  LmHeadWeights lm;              // final norm + [hidden -> vocab]
  AlignedBuffer<bf16> embed;     // [vocab, hidden] bf16; empty when tied or quantized
  cpu::WeightMatrix embed_q;     // a quantized table as [hidden -> vocab]; n() == 0 if none

  // out[hidden] = embedding row of token (0 <= token < vocab, checked by the caller).
  void Embed(int32_t token, bf16* out) const;
  // Bytes the engine keeps resident for the weights.
  size_t bytes() const;
  // The projections' and LM head's weight types: "bf16", "q8_0", ..., or the mix, widest
  // first ("q4_k+q6_k").
  std::string weight_type() const;
  bool quantized() const { return lm.weight.quantized(); }
};

}  // namespace qwen3
