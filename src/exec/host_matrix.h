// A weight matrix as io hands it to an executor: host memory (usually the file mapping) that
// the executor packs into its own layout (io produces tensors, the executor packs them).
#pragma once

#include <cstddef>
#include <string>

#include "exec/weight_type.h"

namespace qwen3 {

struct HostMatrix {
  std::string name;  // the tensor's name in its file, for errors
  // bf16 values (io rounds F16 / F32 files to bf16), or the blocks of a GGUF quantized type
  // (row by row, ggml's layout).
  WeightType type = WeightType::kBf16;
  const void* data = nullptr;
  size_t out = 0, in = 0;  // outputs x inputs
  // Stored [in, out] (the seed's layout) rather than [out, in] (nn.Linear, GGUF); bf16 only.
  bool in_out = false;
};

}  // namespace qwen3
