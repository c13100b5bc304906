#include "exec/finite.h"

#include <cmath>
#include <cstring>

#include "base/error.h"

namespace qwen3 {

AlignedBuffer<float> CopyFinite(const float* src, size_t n, const std::string& name,
                                Pages pages) {
  AlignedBuffer<float> out(n, pages);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(src[i])) {
      throw Error("tensor " + name + ": element " + std::to_string(i) + " is " +
                  (std::isnan(src[i]) ? "NaN" : "Inf") + ": expected finite values");
    }
    out[i] = src[i];
  }
  return out;
}

AlignedBuffer<bf16> CopyFiniteBf16(const bf16* src, size_t rows, size_t cols,
                                   const std::string& name) {
  AlignedBuffer<bf16> out(rows * cols);
  std::memcpy(out.data(), src, rows * cols * sizeof(bf16));
  for (size_t i = 0; i < out.size(); ++i) {
    if (!IsFiniteBf16(out[i])) {
      throw Error("tensor " + name + ": element [" + std::to_string(i / cols) + ", " +
                  std::to_string(i % cols) + "] is not finite: expected finite weights");
    }
  }
  return out;
}

}  // namespace qwen3
