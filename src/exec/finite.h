// Copies of host weights that refuse NaN and Inf, naming the tensor and the element.
#pragma once

#include <cstddef>
#include <string>

#include "base/aligned_buffer.h"
#include "base/bf16.h"

namespace qwen3 {

// Copies n fp32 values, throwing Error naming `name` and the index of a NaN/Inf.
AlignedBuffer<float> CopyFinite(const float* src, size_t n, const std::string& name,
                                Pages pages = Pages::kAny);
// Copies a [rows, cols] bf16 matrix, throwing Error naming `name` and [row, col] of a NaN/Inf.
AlignedBuffer<bf16> CopyFiniteBf16(const bf16* src, size_t rows, size_t cols,
                                   const std::string& name);

}  // namespace qwen3
