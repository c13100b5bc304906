// The seed harness's inputs (spec §4, decode_layer.py build_tensor_specs), made reproducible:
// every tensor is drawn from a counter-based stream keyed by (seed, tensor), in fp32, then
// cast to its dtype (bf16 round-to-nearest-even), exactly as the seed creates and casts.
//   hidden, input_rms_weight, rope_cos/sin, k_cache: U[0,1) - 0.5
//   wq, wk: U/sqrt(H); wv: s*U/sqrt(H); wo, w_gate, w_up, lm_head: s*(U-0.5)/sqrt(H);
//   w_down: s*(U-0.5)/sqrt(I); v_cache: s*(U-0.5); q/k/post/final norm weights: 1; s = 0.5.
//   seq_lens: all max_seq (--max-seq) or uniform in 1..max_seq; block_table: user b's block
//   sb is b * max_blocks_per_seq + sb (the seed's arange); slot_mapping from seq_lens.
#pragma once

#include <cstdint>

#include "model/layer_tensors.h"

namespace qwen3 {

class ThreadPool;

struct SyntheticOptions {
  uint64_t seed = 0;
  bool all_max_seq = false;
  LmHeadMode lm_head = LmHeadMode::kFull;
  // The spec's proj scale s.
  float proj_scale = 0.5f;
};

LayerTensors MakeSyntheticLayer(const LayerShape& shape, const SyntheticOptions& options,
                                ThreadPool& pool);

}  // namespace qwen3
